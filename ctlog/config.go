package ctlog

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ctstage/ctstage/ctlog/faults"
)

// Config is the logs section of ctstage's YAML config file (docs/config.md),
// which package internal/config decodes strictly: unknown keys are errors.
// This commented struct is the reference for the section's keys.
type Config struct {
	// Operators run the shards. A certificate that must satisfy browser
	// policies needs SCTs from two distinct operators, so the default has two.
	Operators []Operator `yaml:"operators"`
	// SequencerInterval is how often queued entries are integrated into the
	// trees. Default 100ms.
	SequencerInterval time.Duration `yaml:"sequencer_interval"`
	// SequencerBatchSize is the most entries one shard integrates in one
	// sequencer run. Default 4096.
	SequencerBatchSize int `yaml:"sequencer_batch_size"`
	// STHMaxAge is how old the newest STH may get while a shard is idle
	// before the shard signs a fresh one (Trillian's MaxRootDuration; a
	// tiled shard re-signs its checkpoint). Default 1m. A shard with no new STH for 2 x STHMaxAge + 5s is
	// stalled: /healthz answers 503 naming it.
	STHMaxAge time.Duration `yaml:"sth_max_age"`
	// MaxBodyBytes bounds the body of add-chain and add-pre-chain. Default 2 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RequestTimeout bounds each request's work in the log. Default 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// Operator is one log operator and its shards.
type Operator struct {
	// Name as it appears in the log list ("operators[].name").
	Name string `yaml:"name"`
	// Email addresses for the log list; optional.
	Email []string `yaml:"email"`
	// Shards are this operator's logs, usually temporal shards.
	Shards []Shard `yaml:"shards"`
}

// Shard is one RFC 6962 log: its own Trillian tree, key and URL prefix.
type Shard struct {
	// Name is the URL prefix (/<name>/ct/v1/...) and the Trillian tree's
	// display name: lower-case letters, digits and '-', at most 20 characters.
	// A shard is found again on restart by this name.
	Name string `yaml:"name"`
	// Description goes into the log list. Optional.
	Description string `yaml:"description"`
	// NotAfterStart and NotAfterLimit bound the NotAfter of accepted
	// certificates: [start, limit). Both are required for a temporal shard;
	// leave both zero for a log that takes any NotAfter.
	NotAfterStart time.Time `yaml:"not_after_start"`
	NotAfterLimit time.Time `yaml:"not_after_limit"`
	// MMD is the maximum merge delay announced in the log list. Default 24h;
	// entries are in fact integrated within about a second.
	MMD time.Duration `yaml:"mmd"`
	// RejectExpired refuses certificates whose NotAfter is in the past.
	RejectExpired bool `yaml:"reject_expired"`
	// ExtKeyUsages, when set, requires the leaf to carry one of these
	// extended key usages (ctfe's names: "ServerAuth", "ClientAuth", "Any", ...).
	ExtKeyUsages []string `yaml:"ext_key_usages"`
	// MaxGetEntries is the most entries one get-entries answer holds.
	// Default 1000.
	MaxGetEntries int64 `yaml:"max_get_entries"`
	// State is the shard's state in Chrome's log lifecycle: "pending",
	// "qualified", "usable" (default), "readonly", "retired" or
	// "rejected" (docs/faults.md). readonly and retired shards refuse
	// submissions with 403 and freeze their tree; rejected ones answer
	// 403 to everything.
	State string `yaml:"state"`
	// StateAt is when State takes effect; before it the shard is usable
	// (pending, for a pending shard). A future time is "retires at".
	// Default: when the shard was created. A state set through the
	// management API wins over the file's until the file's state or
	// state_at is edited.
	StateAt time.Time `yaml:"state_at"`
	// Faults are active from the start (docs/faults.md); the management
	// API changes them at run time.
	Faults []faults.Fault `yaml:"faults"`
	// Type is "rfc6962" (default: ctfe on Trillian) or "tiled": a Static
	// CT API log on Tessera (package ctlog/tiled), listed under the
	// operator's tiled_logs, its tiles under --data/tiled/<name>. Tiled
	// shards take no ext_key_usages or reject_expired yet.
	Type string `yaml:"type"`
}

// Defaults for the Config fields.
const (
	DefaultSequencerInterval  = 100 * time.Millisecond
	DefaultSequencerBatchSize = 4096
	DefaultSTHMaxAge          = time.Minute
	DefaultMaxBodyBytes       = 2 << 20
	DefaultRequestTimeout     = 10 * time.Second
	DefaultMMD                = 24 * time.Hour
	DefaultTiledMMD           = time.Minute
	DefaultMaxGetEntries      = 1000
)

// DefaultOperators names the two operators of the default topology and
// their two logs: an RFC 6962 log (Log) and a Static CT API one (Tiled).
var DefaultOperators = []struct{ Name, Log, Tiled string }{
	{Name: "ctstage Local Testflume", Log: "testflume", Tiled: "testflumetiles"},
	{Name: "ctstage Local Testtube", Log: "testtube", Tiled: "testtubetiles"},
}

// DefaultConfig is the topology that `ctstage serve` runs without a config
// file: two operators, each with an RFC 6962 log and a tiled log, both in
// half-year temporal shards (<log><year>h1 for NotAfter in [Jan 1, Jul 1),
// <log><year>h2 for [Jul 1, Jan 1)) from the half-year of now to at least
// a year ahead. A certificate can so get SCTs from four logs of two
// operators: three for lifetimes beyond 180 days, with one log down.
func DefaultConfig(now time.Time) Config {
	var cfg Config
	for _, op := range DefaultOperators {
		o := Operator{Name: op.Name}
		for _, h := range halfYears(now) {
			half := fmt.Sprintf("%dh%d", h.Year(), 1+int(h.Month()-1)/6)
			o.Shards = append(o.Shards, Shard{
				Name:          op.Log + half,
				Description:   fmt.Sprintf("%s %s, local staging log", op.Name, h.Format("2006-01")),
				NotAfterStart: h,
				NotAfterLimit: h.AddDate(0, 6, 0),
			}, Shard{
				Name:          op.Tiled + half,
				Description:   fmt.Sprintf("%s %s, local staging tiled log", op.Name, h.Format("2006-01")),
				NotAfterStart: h,
				NotAfterLimit: h.AddDate(0, 6, 0),
				Type:          "tiled",
			})
		}
		cfg.Operators = append(cfg.Operators, o)
	}
	cfg.setDefaults()
	return cfg
}

// halfYears returns the starts of the half-years from the one holding now
// until one that ends at least a year after now.
func halfYears(now time.Time) []time.Time {
	now = now.UTC()
	start := time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	if now.Month() >= time.July {
		start = start.AddDate(0, 6, 0)
	}
	var out []time.Time
	for h := start; !h.After(now.AddDate(1, 0, 0)); h = h.AddDate(0, 6, 0) {
		out = append(out, h)
	}
	return out
}

// Resolve returns c, as decoded from the logs section of ctstage's config
// file, with the defaults of the fields left out filled in (the default
// topology when c names no operators), and validates it. Package
// internal/config reads the file; c is not modified.
func (c Config) Resolve(now time.Time) (Config, error) {
	ops := make([]Operator, len(c.Operators))
	for i, o := range c.Operators {
		o.Shards = slices.Clone(o.Shards)
		ops[i] = o
	}
	c.Operators = ops
	if len(c.Operators) == 0 {
		c.Operators = DefaultConfig(now).Operators
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) setDefaults() {
	setDefault(&c.SequencerInterval, DefaultSequencerInterval)
	setDefault(&c.SequencerBatchSize, DefaultSequencerBatchSize)
	setDefault(&c.STHMaxAge, DefaultSTHMaxAge)
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.RequestTimeout, DefaultRequestTimeout)
	for i := range c.Operators {
		for j := range c.Operators[i].Shards {
			s := &c.Operators[i].Shards[j]
			if s.Type == "tiled" {
				// Static CT API logs announce a minute (Sunlight's, and
				// Apple's program's bound for them).
				setDefault(&s.MMD, DefaultTiledMMD)
			}
			setDefault(&s.MMD, DefaultMMD)
			setDefault(&s.MaxGetEntries, DefaultMaxGetEntries)
			setDefault(&s.State, "usable")
		}
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

var shardName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,19}$`)

// Validate refuses configurations that cannot be served.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	if len(c.Operators) == 0 {
		return errors.New("config: no operators")
	}
	for _, o := range c.Operators {
		if o.Name == "" {
			return errors.New("config: an operator has no name")
		}
		if len(o.Shards) == 0 {
			return fmt.Errorf("config: operator %q has no shards", o.Name)
		}
		for _, s := range o.Shards {
			if err := s.validate(); err != nil {
				return err
			}
			if seen[s.Name] {
				return fmt.Errorf("config: shard %q appears twice", s.Name)
			}
			seen[s.Name] = true
		}
	}
	if c.SequencerInterval < time.Millisecond || c.SequencerBatchSize < 1 || c.STHMaxAge < time.Second ||
		c.MaxBodyBytes < 64<<10 || c.RequestTimeout < 100*time.Millisecond {
		return errors.New("config: sequencer_interval >= 1ms, sequencer_batch_size >= 1, sth_max_age >= 1s, max_body_bytes >= 64KiB and request_timeout >= 100ms are required")
	}
	return nil
}

func (s Shard) validate() error {
	if !shardName.MatchString(s.Name) {
		return fmt.Errorf("config: shard name %q: want lower-case letters, digits and '-', at most 20 characters", s.Name)
	}
	if s.NotAfterStart.IsZero() != s.NotAfterLimit.IsZero() {
		return fmt.Errorf("config: shard %q: set both not_after_start and not_after_limit, or neither", s.Name)
	}
	if !s.NotAfterStart.IsZero() && !s.NotAfterStart.Before(s.NotAfterLimit) {
		return fmt.Errorf("config: shard %q: not_after_start must be before not_after_limit", s.Name)
	}
	if s.MMD < time.Second || s.MaxGetEntries < 1 {
		return fmt.Errorf("config: shard %q: mmd must be at least 1s and max_get_entries at least 1", s.Name)
	}
	if !slices.Contains(States, s.State) {
		return fmt.Errorf("config: shard %q: state %q: want one of %s", s.Name, s.State, strings.Join(States, ", "))
	}
	switch s.Type {
	case "", "rfc6962":
	case "tiled":
		if len(s.ExtKeyUsages) > 0 || s.RejectExpired {
			return fmt.Errorf("config: shard %q: a tiled shard takes no ext_key_usages or reject_expired yet", s.Name)
		}
	default:
		return fmt.Errorf("config: shard %q: type %q: want rfc6962 or tiled", s.Name, s.Type)
	}
	seen := map[faults.Kind]bool{}
	for i := range s.Faults {
		f := s.Faults[i]
		if err := f.Validate(s.Tiled()); err != nil {
			return fmt.Errorf("config: shard %q: faults[%d]: %w", s.Name, i, err)
		}
		if seen[f.Kind] {
			return fmt.Errorf("config: shard %q: faults[%d]: a second %s fault", s.Name, i, f.Kind)
		}
		seen[f.Kind] = true
	}
	return nil
}

// Tiled reports whether the shard is a Static CT API log.
func (s Shard) Tiled() bool { return s.Type == "tiled" }

// Shards lists every shard with its operator's name.
func (c *Config) Shards() []ShardOf {
	var out []ShardOf
	for _, o := range c.Operators {
		for _, s := range o.Shards {
			out = append(out, ShardOf{Operator: o.Name, Shard: s})
		}
	}
	return out
}

// ShardOf is a shard together with its operator's name.
type ShardOf struct {
	Operator string
	Shard
}
