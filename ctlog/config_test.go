package ctlog

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	for _, tc := range []struct {
		now  string
		want []string // shard names of one operator
	}{
		{"2026-11-22T10:00:00Z", []string{"2026h2", "2027h1", "2027h2"}},
		{"2026-01-01T00:00:00Z", []string{"2026h1", "2026h2", "2027h1"}},
		{"2026-06-30T23:59:59Z", []string{"2026h1", "2026h2", "2027h1"}},
		{"2026-07-01T00:00:00Z", []string{"2026h2", "2027h1", "2027h2"}},
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		cfg := DefaultConfig(now)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.now, err)
		}
		if len(cfg.Operators) != 2 {
			t.Fatalf("%s: %d operators", tc.now, len(cfg.Operators))
		}
		for i, op := range cfg.Operators {
			var got []string
			for j, s := range op.Shards {
				got = append(got, strings.TrimPrefix(s.Name, DefaultOperators[i].Log))
				if j > 0 && !s.NotAfterStart.Equal(op.Shards[j-1].NotAfterLimit) {
					t.Errorf("%s: gap between %s and %s", tc.now, op.Shards[j-1].Name, s.Name)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s: shards %v, want %v", tc.now, got, tc.want)
			}
			first, last := op.Shards[0], op.Shards[len(op.Shards)-1]
			if now.Before(first.NotAfterStart) || !now.Before(first.NotAfterLimit) {
				t.Errorf("%s: first shard %s does not hold now", tc.now, first.Name)
			}
			if last.NotAfterLimit.Before(now.AddDate(1, 0, 0)) {
				t.Errorf("%s: shards end at %v, less than a year ahead", tc.now, last.NotAfterLimit)
			}
		}
	}
}

func TestParseConfig(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"Empty", "", ""},
		{"OnlyTuning", "logs:\n  sequencer_interval: 50ms\n", ""},
		{"UnknownKey", "logs:\n  sequencer_intervall: 50ms\n", "sequencer_intervall"},
		{"UnknownTopLevel", "logz: {}\n", "logz"},
		{"BadShardName", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: Bad_Name\n", "shard name"},
		{"LongShardName", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: abcdefghijklmnopqrstuvwxyz\n", "shard name"},
		{"DuplicateShard", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n    - name: a\n", "twice"},
		{"HalfWindow", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n      not_after_start: 2026-01-01T00:00:00Z\n", "both"},
		{"InvertedWindow", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n      not_after_start: 2027-01-01T00:00:00Z\n      not_after_limit: 2026-01-01T00:00:00Z\n", "before"},
		{"BadState", "logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n      state: pending\n", "state"},
		{"NoShards", "logs:\n  operators:\n  - name: A\n", "no shards"},
		{"NoOperatorName", "logs:\n  operators:\n  - shards:\n    - name: a\n", "no name"},
		{"TinyBody", "logs:\n  max_body_bytes: 10\n", "max_body_bytes"},
		{"NotYAML", "logs: [\n", "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.yaml), now)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			case err == nil && len(cfg.Shards()) == 0:
				t.Fatalf("no shards")
			}
		})
	}
	cfg, err := ParseConfig([]byte("logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n"), now)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Shards()[0]
	if s.MMD != DefaultMMD || s.MaxGetEntries != DefaultMaxGetEntries || s.State != "usable" || cfg.SequencerInterval != DefaultSequencerInterval {
		t.Errorf("defaults not applied: %+v %+v", s, cfg)
	}
}

// FuzzParseConfig feeds arbitrary YAML to the config parser: it returns a
// config that validates, or an error, and never panics.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"", "logs: {}\n", "logs:\n  sequencer_interval: 5ms\n",
		"logs:\n  operators:\n  - name: A\n    shards:\n    - name: a\n      not_after_start: 2026-01-01T00:00:00Z\n      not_after_limit: 2026-07-01T00:00:00Z\n",
		"logs:\n  operators: [{name: A, shards: [{name: a, state: readonly, mmd: 1h}]}]\n", "logs: [", "\x00",
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b, now)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseConfig returned a config that does not validate: %v", err)
		}
	})
}
