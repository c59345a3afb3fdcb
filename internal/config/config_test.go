package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ctstage/ctstage/ca/ratelimit"
)

var now = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	off := ratelimit.Limit{}
	for _, tc := range []struct {
		name, yaml string
		want       func(*ratelimit.Config) // applied to ratelimit.Defaults()
	}{
		{"Empty", "", func(*ratelimit.Config) {}},
		{"NoACMESection", "logs:\n  sequencer_interval: 50ms\n", func(*ratelimit.Config) {}},
		{"EmptyACMESection", "acme: {}\n", func(*ratelimit.Config) {}},
		{"NullLimit", "acme:\n  rate_limits:\n    orders_per_account:\n", func(*ratelimit.Config) {}},
		{"PartialOverride", "acme:\n  rate_limits:\n    orders_per_account: {count: 2, window: 1h}\n",
			func(c *ratelimit.Config) { c.OrdersPerAccount = ratelimit.Limit{Count: 2, Window: time.Hour} }},
		{"CountZeroTurnsOneOff", "acme:\n  rate_limits:\n    accounts_per_ip:\n      count: 0\n",
			func(c *ratelimit.Config) { c.AccountsPerIP = off }},
		{"Disabled", "acme:\n  rate_limits:\n    disabled: true\n", func(c *ratelimit.Config) { c.Disabled = true }},
		{"BothSections", "logs:\n  sth_max_age: 5s\nacme:\n  rate_limits:\n    failed_validations: {count: 1, window: 90m}\n    duplicate_certificates: {count: 0}\n",
			func(c *ratelimit.Config) {
				c.FailedValidations = ratelimit.Limit{Count: 1, Window: 90 * time.Minute}
				c.DuplicateCertificates = off
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), now)
			if err != nil {
				t.Fatal(err)
			}
			want := ratelimit.Defaults()
			tc.want(&want)
			if cfg.RateLimits != want {
				t.Errorf("rate limits %+v, want %+v", cfg.RateLimits, want)
			}
			if len(cfg.Logs.Shards()) == 0 {
				t.Errorf("no shards")
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default(now)) {
		t.Errorf("empty file: %+v, want Default(now) %+v", cfg, Default(now))
	}
	if cfg, err := Parse([]byte("acme:\n  issue_timeout: 5s\n"), now); err != nil || cfg.IssueTimeout != 5*time.Second {
		t.Errorf("issue_timeout 5s: %v, %v", cfg.IssueTimeout, err)
	}
}

// TestParseErrors checks that unknown keys at every level and bad values
// are refused with an error that names the key.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each must be in the error
	}{
		{"UnknownTopLevel", "logz: {}\n", []string{"logz: line 1: field logz not found"}},
		{"UnknownInLogs", "logs:\n  sequencer_intervall: 50ms\n", []string{"logs.sequencer_intervall: line 2"}},
		{"UnknownInOperator", "logs:\n  operators:\n  - nam: A\n", []string{"logs.operators[0].nam: line 3"}},
		{"UnknownInShard", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n      mmdd: 1h\n",
			[]string{"logs.operators[0].shards[0].mmdd: line 6"}},
		{"UnknownInACME", "acme:\n  rate_limit: {}\n", []string{"acme.rate_limit: line 2: field rate_limit not found"}},
		{"UnknownInRateLimits", "acme:\n  rate_limits:\n    orders_per_acount: {count: 1, window: 1h}\n",
			[]string{"acme.rate_limits.orders_per_acount: line 3"}},
		{"UnknownInLimit", "acme:\n  rate_limits:\n    orders_per_account:\n      count: 1\n      windw: 1h\n",
			[]string{"acme.rate_limits.orders_per_account.windw: line 5"}},
		{"UnknownInFlowLimit", "acme:\n  rate_limits:\n    orders_per_account: {count: 1, windw: 1h}\n",
			[]string{"acme.rate_limits.orders_per_account: line 3", "windw"}},
		{"NegativeCount", "acme:\n  rate_limits:\n    failed_validations: {count: -1, window: 1h}\n",
			[]string{"acme.rate_limits.failed_validations: count -1 is negative"}},
		{"NoWindow", "acme:\n  rate_limits:\n    orders_per_account: {count: 2}\n",
			[]string{"acme.rate_limits.orders_per_account: count 2 needs a positive window"}},
		{"ZeroWindow", "acme:\n  rate_limits:\n    accounts_per_ip: {count: 5, window: 0s}\n",
			[]string{"acme.rate_limits.accounts_per_ip: count 5 needs a positive window"}},
		{"ShortIssueTimeout", "acme:\n  issue_timeout: 500ms\n", []string{"acme.issue_timeout: 500ms is under 1s"}},
		{"NegativeWindow", "acme:\n  rate_limits:\n    certificates_per_domain: {count: 5, window: -1h}\n",
			[]string{"acme.rate_limits.certificates_per_domain: count 5 needs a positive window"}},
		{"BadWindow", "acme:\n  rate_limits:\n    orders_per_account:\n      count: 2\n      window: 1 hour\n",
			[]string{"acme.rate_limits.orders_per_account.window: line 5", "1 hour"}},
		{"BadCount", "acme:\n  rate_limits:\n    orders_per_account:\n      count: many\n",
			[]string{"acme.rate_limits.orders_per_account.count: line 4", "many"}},
		{"BadDisabled", "acme:\n  rate_limits:\n    disabled: maybe\n", []string{"acme.rate_limits.disabled: line 3"}},
		{"LimitNotAMapping", "acme:\n  rate_limits:\n    orders_per_account: 5\n", []string{"acme.rate_limits.orders_per_account: line 3"}},
		{"BadSequencerInterval", "logs:\n  sequencer_interval: fast\n", []string{"logs.sequencer_interval: line 2"}},
		{"TinyBody", "logs:\n  max_body_bytes: 10\n", []string{"max_body_bytes"}},
		{"BadShardState", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n      state: frozen\n", []string{"state"}},
		{"FlowList", "logs:\n  operators: [{name: A, shards: [{name: a, mmd: soon}]}]\n", []string{"logs.operators: line 2", "soon"}},
		{"NotYAML", "logs: [\n", []string{"couldn't parse config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), now)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestLogsOnlyFiles checks that files written before the acme section
// existed parse as before, with the staging rate limits.
func TestLogsOnlyFiles(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(t *testing.T, c Config)
	}{
		{"DocsExample", `logs:
  sequencer_interval: 100ms   # how often queued entries are integrated
  sequencer_batch_size: 4096  # most entries one shard integrates per run
  sth_max_age: 1m             # an idle shard signs a fresh STH at least this often
  max_body_bytes: 2097152     # add-chain / add-pre-chain bodies above this get 400
  request_timeout: 10s        # bound on each request's work in the log
  operators:
  - name: Example CT
    email: [ct@example.test]
    shards:
    - name: example2026h2         # URL prefix and tree name: [a-z0-9-], <= 20 chars
      description: Example 2026 H2
      not_after_start: 2026-07-01T00:00:00Z   # accepted NotAfter: [start, limit)
      not_after_limit: 2027-01-01T00:00:00Z
      mmd: 24h                    # announced in the log list
      reject_expired: false
      ext_key_usages: [ServerAuth] # ctfe names; empty accepts any
      max_get_entries: 256        # get-entries answers hold at most this many
      state: usable               # usable, qualified, readonly (refuses adds) or retired
`, func(t *testing.T, c Config) {
			s := c.Logs.Shards()
			if len(s) != 1 || s[0].Name != "example2026h2" || s[0].MaxGetEntries != 256 || s[0].Operator != "Example CT" ||
				!s[0].NotAfterLimit.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || s[0].ExtKeyUsages[0] != "ServerAuth" {
				t.Errorf("shards %+v", s)
			}
		}},
		{"TuningOnly", "logs:\n  sequencer_batch_size: 64\n", func(t *testing.T, c Config) {
			if c.Logs.SequencerBatchSize != 64 || len(c.Logs.Operators) != 2 || c.Logs.STHMaxAge != time.Minute {
				t.Errorf("logs %+v", c.Logs)
			}
		}},
		{"OneShardDefaults", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n", func(t *testing.T, c Config) {
			if s := c.Logs.Shards(); len(s) != 1 || s[0].MMD != 24*time.Hour || s[0].State != "usable" || s[0].MaxGetEntries != 1000 {
				t.Errorf("shards %+v", s)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), now)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.RateLimits != ratelimit.Defaults() {
				t.Errorf("rate limits %+v, want the defaults", cfg.RateLimits)
			}
			tc.check(t, cfg)
		})
	}
}

// TestExamples parses every file under deployments/config, so that the
// examples never rot; ctstage.yaml must say exactly the defaults.
func TestExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "deployments", "config")
	var n int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		cfg, err := Load(path, now)
		if err != nil {
			t.Errorf("%v", err)
			return nil
		}
		if d.Name() == "ctstage.yaml" && !reflect.DeepEqual(cfg, Default(now)) {
			t.Errorf("%s differs from the defaults:\n%+v\nwant\n%+v", path, cfg, Default(now))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Errorf("found %d files under %s, want ctstage.yaml and ci-fast.yaml at least", n, dir)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("acme:\n  rate_limits:\n    orders_per_account: {count: -3, window: 1h}\n"), 0o644)
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"Missing", filepath.Join(dir, "none.yaml"), []string{"couldn't read config", "none.yaml"}},
		{"Invalid", bad, []string{bad + ": config: acme.rate_limits.orders_per_account: count -3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path, now)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want one containing %q", err, w)
				}
			}
		})
	}
}

// FuzzParse feeds arbitrary YAML to Parse: it returns a config whose
// sections validate, or an error, and never panics.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", "logs: {}\n", "logs:\n  sequencer_interval: 5ms\n", "acme: {rate_limits: {disabled: true}}\n",
		"acme:\n  rate_limits:\n    orders_per_account: {count: 2, window: 1h}\n    accounts_per_ip: {count: 0}\n",
		"acme:\n  rate_limits:\n    orders_per_account: {count: 2, windw: 1h}\n",
		"logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n      not_after_start: 2026-01-01T00:00:00Z\n      not_after_limit: 2026-07-01T00:00:00Z\n",
		"logs:\n  operators: [{name: A, shards: [{name: a, state: readonly, mmd: 1h}]}]\n", "logs: [", "\x00",
		"a: &x {b: *x}\n", "- [[[[x]]]]\n",
		"acme:\n  dns:\n    default_addresses: ['::1']\n    hosts: {'*.a.test': [127.0.0.2]}\n    caa: {a.test: [{flag: 128, tag: issue, value: x}]}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b, now)
		if err != nil {
			return
		}
		if err := cfg.Logs.Validate(); err != nil {
			t.Fatalf("Parse returned logs that do not validate: %v", err)
		}
		if err := cfg.RateLimits.Validate(); err != nil {
			t.Fatalf("Parse returned rate limits that do not validate: %v", err)
		}
		if err := cfg.DNS.Validate(); err != nil || len(cfg.DNS.DefaultAddresses) == 0 {
			t.Fatalf("Parse returned DNS records that do not validate: %v %+v", err, cfg.DNS)
		}
	})
}

func TestEAB(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	good := write("good.yaml", "kid-1: "+key+"\n", 0o600)
	loose := write("loose.yaml", "kid-1: "+key+"\n", 0o644)
	notB64 := write("bad.yaml", "kid-1: '***'\n", 0o600)
	short := write("short.yaml", "kid-1: AAAA\n", 0o600)
	empty := write("empty.yaml", "{}\n", 0o600)
	for _, tc := range []struct {
		name, yaml, wantErr string
		wantKeys            int
	}{
		{"off", "", "", 0},
		{"keys", "acme:\n  external_account_binding:\n    keys_file: " + good + "\n", "", 1},
		{"required", "acme:\n  external_account_binding:\n    required: true\n    keys_file: " + good + "\n", "", 1},
		{"required without keys", "acme:\n  external_account_binding:\n    required: true\n", "external_account_binding.required", 0},
		{"readable by others", "acme:\n  external_account_binding:\n    keys_file: " + loose + "\n", "chmod 600", 0},
		{"not base64url", "acme:\n  external_account_binding:\n    keys_file: " + notB64 + "\n", "not base64url", 0},
		{"short key", "acme:\n  external_account_binding:\n    keys_file: " + short + "\n", "at least 16", 0},
		{"no keys", "acme:\n  external_account_binding:\n    keys_file: " + empty + "\n", "no keys", 0},
		{"missing file", "acme:\n  external_account_binding:\n    keys_file: /nonexistent\n", "keys_file", 0},
		{"unknown key", "acme:\n  external_account_binding:\n    hmac: x\n", "hmac", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), time.Now())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.EAB.Keys) != tc.wantKeys {
				t.Errorf("%d keys, want %d", len(cfg.EAB.Keys), tc.wantKeys)
			}
		})
	}
	// A relative keys_file is relative to the config file.
	cfgFile := write("ctstage.yaml", "acme:\n  external_account_binding:\n    keys_file: good.yaml\n", 0o644)
	if cfg, err := Load(cfgFile, time.Now()); err != nil || len(cfg.EAB.Keys["kid-1"]) != 48 {
		t.Errorf("Load with a relative keys_file: %v, %v", cfg.EAB.Keys, err)
	}
}
