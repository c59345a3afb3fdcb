// Package deployments holds the docker-compose file and the Kubernetes
// manifests; its test checks them without a Docker engine or a cluster:
// the manifests decode strictly into k8s.io/api's types, and every flag,
// port and image they name is one that `ctstage serve` has.
package deployments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/ctstage/ctstage/internal/config"
)

// image is the one ctstage image the files name (deployments/Dockerfile).
const image = "ctstage:dev"

// serveFlags are the flags `ctstage serve --help` lists.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ctstage")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ctstage").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput() // exits 0 or 2
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	for _, f := range []string{"role", "election", "keys", "storage", "log-addr", "log-url", "acme-addr"} {
		if !flags[f] {
			t.Fatalf("serve --help lists no --%s:\n%s", f, out)
		}
	}
	return flags
}

// checkServeArgs checks a serve command line against the flags, and
// returns the ports of its listeners by flag.
func checkServeArgs(t *testing.T, where string, args []string, flags map[string]bool) map[string]int {
	t.Helper()
	if len(args) == 0 || args[0] != "serve" {
		t.Errorf("%s: the command is %q, want serve ...", where, args)
		return nil
	}
	ports := map[string]int{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !flags[name] {
			t.Errorf("%s: %q is not a flag of ctstage serve", where, a)
			continue
		}
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			val = args[i+1]
			i++
		}
		if strings.HasSuffix(name, "-addr") && val != "" {
			_, p, err := net.SplitHostPort(val)
			n, err2 := strconv.Atoi(p)
			if err != nil || err2 != nil {
				t.Errorf("%s: --%s %q is not HOST:PORT", where, name, val)
				continue
			}
			ports[name] = n
		}
	}
	if _, ok := ports["log-addr"]; !ok {
		ports["log-addr"] = 6962 // the default
	}
	return ports
}

// strictJSON decodes YAML into v, refusing unknown fields.
func strictJSON(doc []byte, v any) error {
	j, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func TestKubernetesManifests(t *testing.T) {
	flags := serveFlags(t)
	raw, err := os.ReadFile("kubernetes/ctstage.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var deployments []*appsv1.Deployment
	var services []*corev1.Service
	configMaps := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	for i, doc := range regexp.MustCompile(`(?m)^---$`).Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			deployments, obj = append(deployments, d), d
		case "v1 Service":
			s := &corev1.Service{}
			services, obj = append(services, s), s
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1 Secret":
			obj = &corev1.Secret{}
		default:
			t.Fatalf("document %d: %s %s is not a kind this test knows", i, meta.APIVersion, meta.Kind)
		}
		if err := strictJSON([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, meta.Kind, err)
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *corev1.Secret:
			secrets[o.Name] = o
		}
	}
	roles := map[string]bool{}
	for _, d := range deployments {
		where := "Deployment " + d.Name
		sel := d.Spec.Selector.MatchLabels
		for k, v := range sel {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("%s: the selector %s=%s does not match the pod template", where, k, v)
			}
		}
		pod := d.Spec.Template.Spec
		vols := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			vols[v.Name] = v
			if v.Secret != nil && secrets[v.Secret.SecretName] == nil {
				t.Errorf("%s: volume %s names a Secret %s that the manifests do not hold", where, v.Name, v.Secret.SecretName)
			}
			if v.ConfigMap != nil && configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("%s: volume %s names a ConfigMap %s that the manifests do not hold", where, v.Name, v.ConfigMap.Name)
			}
		}
		for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
			if c.Image != image {
				t.Errorf("%s: container %s runs %s, want %s", where, c.Name, c.Image, image)
			}
			for _, m := range c.VolumeMounts {
				if _, ok := vols[m.Name]; !ok {
					t.Errorf("%s: container %s mounts %s, which is not a volume of the pod", where, c.Name, m.Name)
				}
			}
		}
		if len(pod.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", where, len(pod.Containers))
		}
		c := pod.Containers[0]
		ports := checkServeArgs(t, where, c.Args, flags)
		for i, a := range c.Args {
			if a == "--role" && i+1 < len(c.Args) {
				roles[c.Args[i+1]] = true
			}
		}
		named := map[string]int32{}
		for _, p := range c.Ports {
			named[p.Name] = p.ContainerPort
		}
		if named["logs"] != int32(ports["log-addr"]) {
			t.Errorf("%s: port logs is %d, --log-addr listens on %d", where, named["logs"], ports["log-addr"])
		}
		if p, ok := ports["acme-addr"]; ok && named["acme"] != int32(p) {
			t.Errorf("%s: port acme is %d, --acme-addr listens on %d", where, named["acme"], p)
		}
		// Readiness is /healthz (the parts and their storage); liveness
		// is /livez (the process serves), so that an outage of the
		// database or of the sequencers restarts nothing.
		for what, probe := range map[string]struct {
			pr   *corev1.Probe
			path string
		}{"readiness": {c.ReadinessProbe, "/healthz"}, "liveness": {c.LivenessProbe, "/livez"}} {
			pr := probe.pr
			if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != probe.path || named[pr.HTTPGet.Port.StrVal] != int32(ports["log-addr"]) {
				t.Errorf("%s: the %s probe is not GET %s on the logs port", where, what, probe.path)
			}
		}
		for _, e := range c.Env {
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
				s := secrets[r.SecretKeyRef.Name]
				if s == nil || (s.StringData[r.SecretKeyRef.Key] == "" && s.Data[r.SecretKeyRef.Key] == nil) {
					t.Errorf("%s: env %s names a Secret key %s/%s that the manifests do not hold", where, e.Name, r.SecretKeyRef.Name, r.SecretKeyRef.Key)
				}
			}
		}
		if cfg := configMaps["ctstage-config"]; cfg != nil {
			f := filepath.Join(t.TempDir(), "ctstage.yaml")
			os.WriteFile(f, []byte(cfg.Data["ctstage.yaml"]), 0o644)
			if _, err := config.Load(f, time.Now()); err != nil {
				t.Errorf("the ConfigMap's ctstage.yaml: %v", err)
			}
		}
	}
	for _, r := range []string{"log", "sequencer", "ca"} {
		if !roles[r] {
			t.Errorf("no Deployment runs --role %s", r)
		}
	}
	for _, s := range services {
		found := false
		for _, d := range deployments {
			match := true
			for k, v := range s.Spec.Selector {
				if d.Spec.Template.Labels[k] != v {
					match = false
				}
			}
			if !match {
				continue
			}
			found = true
			for _, p := range s.Spec.Ports {
				ok := slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Ports, func(cp corev1.ContainerPort) bool {
					return cp.Name == p.TargetPort.StrVal
				})
				if !ok {
					t.Errorf("Service %s: targetPort %s is not a port of Deployment %s", s.Name, p.TargetPort.StrVal, d.Name)
				}
			}
		}
		if !found {
			t.Errorf("Service %s selects no Deployment", s.Name)
		}
	}
}

func TestCompose(t *testing.T) {
	flags := serveFlags(t)
	raw, err := os.ReadFile("compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Command     []string       `yaml:"command"`
			Ports       []string       `yaml:"ports"`
			DependsOn   map[string]any `yaml:"depends_on"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for name, s := range f.Services {
		for dep := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			}
		}
		if len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no health check", name)
		}
		if s.Image != image {
			continue
		}
		where := "service " + name
		ports := checkServeArgs(t, where, s.Command, flags)
		for i, a := range s.Command {
			if a == "--role" && i+1 < len(s.Command) {
				count[s.Command[i+1]]++
			}
		}
		hc := strings.Join(s.Healthcheck.Test, " ")
		if !strings.Contains(hc, fmt.Sprintf(":%d/healthz", ports["log-addr"])) {
			t.Errorf("%s: the health check %q is not /healthz on the --log-addr port %d", where, hc, ports["log-addr"])
		}
		for _, p := range s.Ports {
			_, inner, _ := strings.Cut(p, ":")
			n, _ := strconv.Atoi(inner)
			if n != ports["log-addr"] && n != ports["acme-addr"] {
				t.Errorf("%s: publishes port %d, which no listener of its command uses (%v)", where, n, ports)
			}
		}
	}
	// The deployment the issue asks for: 2 frontends, 2 sequencers, 1 CA.
	if count["log"] != 2 || count["sequencer"] != 2 || count["ca"] != 1 {
		t.Errorf("roles %v, want 2 log, 2 sequencer, 1 ca", count)
	}
	for _, s := range []string{"mariadb", "etcd"} {
		if _, ok := f.Services[s]; !ok {
			t.Errorf("no %s service", s)
		}
	}
}
