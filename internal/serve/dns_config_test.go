package serve

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/config"
)

// TestLoadConfigDNS checks the precedence of the resolver's records:
// Options.DNS, then the file's acme.dns, then every name at 127.0.0.1.
func TestLoadConfigDNS(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ctstage.yaml")
	if err := os.WriteFile(file, []byte("acme:\n  dns:\n    hosts:\n      a.ctstage.test: [127.0.0.2]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	fromFile := config.DNS{DefaultAddresses: lo, Hosts: map[string][]netip.Addr{"a.ctstage.test": {netip.MustParseAddr("127.0.0.2")}}}
	goAPI := config.DNS{DefaultAddresses: []netip.Addr{netip.MustParseAddr("::1")}}
	for _, tc := range []struct {
		name    string
		file    string
		dns     *config.DNS
		want    config.DNS
		wantErr string
	}{
		{"Defaults", "", nil, config.DefaultDNS(), ""},
		{"File", file, nil, fromFile, ""},
		{"GoAPIReplacesFile", file, &goAPI, goAPI, ""},
		{"InvalidGoAPI", "", &config.DNS{Hosts: map[string][]netip.Addr{"nodots": lo}}, config.DNS{}, `Options.ACME.DNS: hosts.nodots: "nodots" is not a DNS name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(Options{ConfigFile: tc.file, ACME: ACMEOptions{DNS: tc.dns}, Now: time.Now})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.DNS, tc.want) {
				t.Errorf("dns %+v, want %+v", cfg.DNS, tc.want)
			}
		})
	}
}
