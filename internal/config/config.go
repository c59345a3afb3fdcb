// Package config reads ctstage's YAML config file (docs/config.md) and
// hands each package its section: logs to ctlog (ctlog.Config) and
// acme.rate_limits to ca/ratelimit (ratelimit.Section). Each package keeps
// its section's type, defaults and validation; this package decodes the
// file, strictly: an unknown key at any level is an error. The one
// section it defines itself is acme.dns (DNSSection), the built-in
// resolver's records, which ca/va's Zone takes as plain values.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/ctlog"
)

// File is the layout of the file; the section types are the reference
// for their keys. Every section is optional.
type File struct {
	// Logs configures the CT logs and their sequencer.
	Logs ctlog.Config `yaml:"logs"`
	// ACME configures the ACME server.
	ACME ACME `yaml:"acme"`
}

// ACME is the file's acme section.
type ACME struct {
	// RateLimits are the ACME rate limits; a limit left out keeps the
	// staging default (ratelimit.Defaults).
	RateLimits ratelimit.Section `yaml:"rate_limits"`
	// DNS holds the built-in resolver's records at start; left out,
	// every name resolves to 127.0.0.1.
	DNS DNSSection `yaml:"dns"`
	// IssueTimeout bounds one issuance through ACME finalize, CT
	// included, such as "60s"; an order still processing twice as long
	// (a crash cut its issuance short) reads invalid. Default 60s.
	IssueTimeout time.Duration `yaml:"issue_timeout"`
	// ExternalAccountBinding turns on EAB (RFC 8555 section 7.3.4).
	ExternalAccountBinding EABSection `yaml:"external_account_binding"`
}

// EABSection is acme.external_account_binding. The HMAC keys are never
// in the config file: keys_file names a file of their own.
type EABSection struct {
	// Required refuses newAccount without a binding
	// (externalAccountRequired in the directory's meta).
	Required bool `yaml:"required"`
	// KeysFile is a YAML map of key ID to base64url HMAC key, the form
	// certbot's --eab-hmac-key and lego's --hmac take:
	//
	//	kid-1: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W
	//
	// A relative path is relative to the config file's directory. The
	// file must not be readable by group or others (chmod 600).
	KeysFile string `yaml:"keys_file"`
}

// EAB is acme.external_account_binding resolved: the keys read.
type EAB struct {
	Required bool
	// Keys maps key IDs to HMAC keys; empty means EAB is off (a binding
	// sent anyway is accepted and ignored, as at Let's Encrypt).
	Keys map[string][]byte
}

// Config is a file's settings with the defaults filled in, validated.
type Config struct {
	// Logs are the logs' settings.
	Logs ctlog.Config
	// RateLimits are the ACME rate limits.
	RateLimits ratelimit.Config
	// DNS are the built-in resolver's records at start.
	DNS DNS
	// IssueTimeout bounds one ACME issuance.
	IssueTimeout time.Duration
	// EAB is the external account binding.
	EAB EAB
}

// Default is the configuration without a file: the default topology
// (ctlog.DefaultConfig), the staging rate limits, every name at 127.0.0.1.
func Default(now time.Time) Config {
	return Config{Logs: ctlog.DefaultConfig(now), RateLimits: ratelimit.Defaults(), DNS: DefaultDNS(), IssueTimeout: DefaultIssueTimeout}
}

// Load reads and parses the file at path; see Parse.
func Load(path string, now time.Time) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("couldn't read config: %w", err)
	}
	cfg, err := parse(b, now, filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a config file strictly and resolves every section: keys
// left out take their defaults (an empty file is Default(now)), and a
// value out of range is an error that names its key.
// A relative acme.external_account_binding.keys_file is relative to the
// working directory.
func Parse(b []byte, now time.Time) (Config, error) { return parse(b, now, ".") }

// parse is Parse with relative file names taken from dir.
func parse(b []byte, now time.Time, dir string) (Config, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("couldn't parse config: %w", withKeys(err, b))
	}
	logs, err := f.Logs.Resolve(now)
	if err != nil {
		return Config{}, err // ctlog's errors start with "config: "
	}
	limits, err := f.ACME.RateLimits.Config()
	if err != nil {
		return Config{}, fmt.Errorf("config: acme.rate_limits.%w", err)
	}
	dns, err := f.ACME.DNS.DNS()
	if err != nil {
		return Config{}, fmt.Errorf("config: acme.dns.%w", err)
	}
	issue := f.ACME.IssueTimeout
	switch {
	case issue == 0:
		issue = DefaultIssueTimeout
	case issue < time.Second:
		return Config{}, fmt.Errorf("config: acme.issue_timeout: %s is under 1s", issue)
	}
	eab, err := f.ACME.ExternalAccountBinding.resolve(dir)
	if err != nil {
		return Config{}, fmt.Errorf("config: acme.external_account_binding.%w", err)
	}
	return Config{Logs: logs, RateLimits: limits, DNS: dns, IssueTimeout: issue, EAB: eab}, nil
}

// resolve reads the keys file.
func (e EABSection) resolve(dir string) (EAB, error) {
	if e.KeysFile == "" {
		if e.Required {
			return EAB{}, errors.New("required: needs keys_file")
		}
		return EAB{}, nil
	}
	path := e.KeysFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return EAB{}, fmt.Errorf("keys_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return EAB{}, fmt.Errorf("keys_file: %s holds HMAC keys but is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return EAB{}, fmt.Errorf("keys_file: %w", err)
	}
	var raw map[string]string
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return EAB{}, fmt.Errorf("keys_file: %s is not a YAML map of key ID to base64url HMAC key: %w", path, err)
	}
	if len(raw) == 0 {
		return EAB{}, fmt.Errorf("keys_file: %s holds no keys", path)
	}
	keys := make(map[string][]byte, len(raw))
	for kid, v := range raw {
		k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
		switch {
		case kid == "":
			return EAB{}, fmt.Errorf("keys_file: %s: an empty key ID", path)
		case err != nil:
			return EAB{}, fmt.Errorf("keys_file: %s: key %q is not base64url", path, kid)
		case len(k) < 16:
			return EAB{}, fmt.Errorf("keys_file: %s: key %q has %d bytes; want at least 16", path, kid, len(k))
		}
		keys[kid] = k
	}
	return EAB{Required: e.Required, Keys: keys}, nil
}

// DefaultIssueTimeout is acme.issue_timeout left out.
const DefaultIssueTimeout = 60 * time.Second

// lineRE finds the line number yaml.v3 puts at the start of each of a
// TypeError's messages.
var lineRE = regexp.MustCompile(`^line (\d+): `)

// withKeys prefixes each message of a yaml.TypeError (a wrong type, an
// unknown key) with the dotted path of the key on its line, such as
// "acme.rate_limits.orders_per_account.window"; yaml.v3 reports only
// the line. Other errors are returned as they are.
func withKeys(err error, b []byte) error {
	var te *yaml.TypeError
	var root yaml.Node
	if !errors.As(err, &te) || yaml.Unmarshal(b, &root) != nil {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		sub := lineRE.FindStringSubmatch(m)
		if sub == nil {
			continue
		}
		line, _ := strconv.Atoi(sub[1])
		if key := keyAt(&root, line); key != "" {
			msgs[i] = key + ": " + m
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// keyAt is the dotted path of the key on line, or the longest path common
// to all keys on it (a flow mapping such as "{count: 2, window: x}"
// names its parent); "" when no key is on line.
func keyAt(root *yaml.Node, line int) string {
	var found [][]string
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := slices.Clone(path)
				if len(p) > 0 {
					p[len(p)-1] += "[" + strconv.Itoa(i) + "]"
				}
				walk(c, p)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := append(slices.Clone(path), k.Value)
				if k.Line == line {
					found = append(found, p)
				}
				walk(v, p)
			}
		}
	}
	walk(root, nil)
	if len(found) == 0 {
		return ""
	}
	common := found[0]
	for _, p := range found[1:] {
		n := 0
		for n < len(common) && n < len(p) && common[n] == p[n] {
			n++
		}
		if n < len(common) && n < len(p) && unindexed(common[n]) == unindexed(p[n]) {
			common = append(common[:n:n], unindexed(p[n])) // items of one list: name the list
			n++
		}
		common = common[:n]
	}
	return strings.Join(common, ".")
}

// unindexed is a path element without its "[i]".
func unindexed(key string) string {
	if i := strings.LastIndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
		return key[:i]
	}
	return key
}
