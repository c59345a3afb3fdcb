package ctlog

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
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
			var got, gotTiled []string
			var classic []Shard
			for j, s := range op.Shards {
				if s.Tiled() {
					gotTiled = append(gotTiled, strings.TrimPrefix(s.Name, DefaultOperators[i].Tiled))
					// Each tiled shard takes the NotAfter window of the
					// RFC 6962 shard before it.
					if j == 0 || op.Shards[j-1].Tiled() || !s.NotAfterStart.Equal(op.Shards[j-1].NotAfterStart) || !s.NotAfterLimit.Equal(op.Shards[j-1].NotAfterLimit) {
						t.Errorf("%s: tiled shard %s has no RFC 6962 twin", tc.now, s.Name)
					}
					continue
				}
				got = append(got, strings.TrimPrefix(s.Name, DefaultOperators[i].Log))
				if len(classic) > 0 && !s.NotAfterStart.Equal(classic[len(classic)-1].NotAfterLimit) {
					t.Errorf("%s: gap between %s and %s", tc.now, classic[len(classic)-1].Name, s.Name)
				}
				classic = append(classic, s)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || strings.Join(gotTiled, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s: shards %v and tiled %v, want %v", tc.now, got, gotTiled, tc.want)
			}
			first, last := classic[0], classic[len(classic)-1]
			if now.Before(first.NotAfterStart) || !now.Before(first.NotAfterLimit) {
				t.Errorf("%s: first shard %s does not hold now", tc.now, first.Name)
			}
			if last.NotAfterLimit.Before(now.AddDate(1, 0, 0)) {
				t.Errorf("%s: shards end at %v, less than a year ahead", tc.now, last.NotAfterLimit)
			}
		}
	}
}

// resolve decodes a logs section strictly, as internal/config does, and
// resolves it.
func resolve(section string, now time.Time) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(section))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	return c.Resolve(now)
}

func TestResolve(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"Empty", "", ""},
		{"OnlyTuning", "sequencer_interval: 50ms\n", ""},
		{"BadShardName", "operators:\n- name: A\n  shards:\n  - name: Bad_Name\n", "shard name"},
		{"LongShardName", "operators:\n- name: A\n  shards:\n  - name: abcdefghijklmnopqrstuvwxyz\n", "shard name"},
		{"DuplicateShard", "operators:\n- name: A\n  shards:\n  - name: a\n  - name: a\n", "twice"},
		{"HalfWindow", "operators:\n- name: A\n  shards:\n  - name: a\n    not_after_start: 2026-01-01T00:00:00Z\n", "both"},
		{"InvertedWindow", "operators:\n- name: A\n  shards:\n  - name: a\n    not_after_start: 2027-01-01T00:00:00Z\n    not_after_limit: 2026-01-01T00:00:00Z\n", "before"},
		{"BadState", "operators:\n- name: A\n  shards:\n  - name: a\n    state: frozen\n", "state"},
		{"BadFault", "operators:\n- name: A\n  shards:\n  - name: a\n    faults:\n    - kind: unavailable\n      fraction: 2\n", "fraction"},
		{"FaultKindOfOtherShard", "operators:\n- name: A\n  shards:\n  - name: a\n    faults:\n    - kind: no_publish\n", "no_integrate"},
		{"TwoFaultsOfAKind", "operators:\n- name: A\n  shards:\n  - name: a\n    faults:\n    - kind: drop\n    - kind: drop\n", "second"},
		{"NoShards", "operators:\n- name: A\n", "no shards"},
		{"NoOperatorName", "operators:\n- shards:\n  - name: a\n", "no name"},
		{"TinyBody", "max_body_bytes: 10\n", "max_body_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := resolve(tc.yaml, now)
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
	cfg, err := resolve("operators:\n- name: A\n  shards:\n  - name: a\n", now)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Shards()[0]
	if s.MMD != DefaultMMD || s.MaxGetEntries != DefaultMaxGetEntries || s.State != "usable" || cfg.SequencerInterval != DefaultSequencerInterval {
		t.Errorf("defaults not applied: %+v %+v", s, cfg)
	}
}

// TestResolveKeepsInput checks that Resolve fills in a copy: the decoded
// section it was given keeps its zero fields.
func TestResolveKeepsInput(t *testing.T) {
	in := Config{Operators: []Operator{{Name: "A", Shards: []Shard{{Name: "a"}}}}}
	if _, err := in.Resolve(time.Now()); err != nil {
		t.Fatal(err)
	}
	if s := in.Operators[0].Shards[0]; s.MMD != 0 || s.State != "" || in.SequencerInterval != 0 {
		t.Errorf("Resolve modified its input: %+v", in)
	}
}
