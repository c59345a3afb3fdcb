// Package faults is the per-shard fault set of ctstage's logs: which
// faults are active on a shard, whether one touches a given request, and
// the HTTP middleware that applies the faults a log's handler need not
// know about (unavailable, drop, delay, reject and the corrupted answers).
// The faults that need the log's internals (no_integrate, no_publish,
// sct_timestamp_skew, sth_rollback, split_view) are applied by package
// ctlog through the Views a shard gives the middleware.
//
// Fault names, their parameters and the endpoint names are the interface
// that docs/faults.md documents and outside tests rely on.
package faults

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind names a fault.
type Kind string

// The fault kinds.
const (
	Unavailable      Kind = "unavailable"
	Drop             Kind = "drop"
	Delay            Kind = "delay"
	Reject           Kind = "reject"
	NoIntegrate      Kind = "no_integrate" // RFC 6962 shards
	NoPublish        Kind = "no_publish"   // tiled shards
	BadSCTSignature  Kind = "bad_sct_signature"
	SCTTimestampSkew Kind = "sct_timestamp_skew"
	BadSTHSignature  Kind = "bad_sth_signature"
	STHRollback      Kind = "sth_rollback"
	SplitView        Kind = "split_view"
	BadProof         Kind = "bad_proof"
	BadEntry         Kind = "bad_entry"
)

// Kinds lists every kind, in the order docs/faults.md has them.
var Kinds = []Kind{Unavailable, Drop, Delay, Reject, NoIntegrate, NoPublish, BadSCTSignature,
	SCTTimestampSkew, BadSTHSignature, STHRollback, SplitView, BadProof, BadEntry}

// Endpoint names, as Fault.Endpoints takes them.
var (
	// RFC6962Endpoints are an RFC 6962 shard's.
	RFC6962Endpoints = []string{"add-chain", "add-pre-chain", "get-sth", "get-sth-consistency",
		"get-proof-by-hash", "get-entries", "get-roots", "get-entry-and-proof"}
	// TiledEndpoints are a tiled shard's: "tile" is a hash tile
	// (tile/<L>/<N>), "data-tile" a data tile (tile/data/<N>).
	TiledEndpoints = []string{"add-chain", "add-pre-chain", "get-roots", "checkpoint", "tile", "data-tile", "issuer"}
)

// Fault is one active fault on a shard: its kind, which requests it
// touches (Fraction of those to Endpoints) and the kind's parameters. The
// JSON form is what the management API and the config file take.
type Fault struct {
	Kind Kind `json:"kind" yaml:"kind"`
	// Fraction of the requests to Endpoints the fault touches, 0 to 1.
	// Default 1. For split_view it is the fraction of client addresses
	// shown the fork (sticky per address).
	Fraction *float64 `json:"fraction,omitempty" yaml:"fraction"`
	// Endpoints narrows the fault to these endpoints; empty is all of
	// those the kind applies to.
	Endpoints []string `json:"endpoints,omitempty" yaml:"endpoints"`

	// Status is unavailable's answer: 503 (default), 500 or 429.
	Status int `json:"status,omitempty" yaml:"status"`
	// RetryAfterS is unavailable's Retry-After, in seconds. Default 5;
	// a 500 carries none.
	RetryAfterS int `json:"retry_after_s,omitempty" yaml:"retry_after_s"`
	// MinMS and MaxMS bound delay's latency, uniformly distributed.
	MinMS int `json:"min_ms,omitempty" yaml:"min_ms"`
	MaxMS int `json:"max_ms,omitempty" yaml:"max_ms"`
	// Names (DNS name suffixes of the leaf) and Issuers (common names of
	// the leaf's issuer) are what reject refuses; a submission matching
	// either is refused.
	Names   []string `json:"names,omitempty" yaml:"names"`
	Issuers []string `json:"issuers,omitempty" yaml:"issuers"`
	// AfterS is no_integrate's and no_publish's delay: entries are held
	// this many seconds after their SCT, then integrated (or the
	// checkpoint published) late. Omitted: held until the fault is cleared.
	AfterS *int `json:"after_s,omitempty" yaml:"after_s"`
	// OffsetMS is sct_timestamp_skew's offset from the true time; negative
	// is in the past.
	OffsetMS int64 `json:"offset_ms,omitempty" yaml:"offset_ms"`
	// Clients are the client addresses (IPs) split_view shows the fork
	// to; when set, Fraction is not used.
	Clients []string `json:"clients,omitempty" yaml:"clients"`

	// Set is when the fault was set (output only).
	Set time.Time `json:"set,omitzero" yaml:"-"`
}

// fraction is the fault's fraction, 1 when unset.
func (f *Fault) fraction() float64 {
	if f.Fraction == nil {
		return 1
	}
	return *f.Fraction
}

// FieldError is a fault refused for one field; the management API
// answers 400 with its text.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Decode reads one fault from JSON, refusing unknown fields, and
// validates it for a shard of the given kind (tiled or RFC 6962).
func Decode(b []byte, tiled bool) (Fault, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f Fault
	if err := dec.Decode(&f); err != nil {
		return Fault{}, fmt.Errorf("the body is not a fault: %w", err)
	}
	if dec.More() {
		return Fault{}, errors.New("the body holds more than one JSON value")
	}
	f.Set = time.Time{}
	return f, f.Validate(tiled)
}

// applies lists, per kind, the endpoints the kind can touch; nil is every
// endpoint of the shard.
func applies(k Kind, tiled bool) []string {
	switch k {
	case Reject, BadSCTSignature, SCTTimestampSkew, NoIntegrate, NoPublish:
		return []string{"add-chain", "add-pre-chain"}
	case BadSTHSignature, STHRollback:
		if tiled {
			return []string{"checkpoint"}
		}
		return []string{"get-sth"}
	case BadProof:
		if tiled {
			return []string{"tile"}
		}
		return []string{"get-proof-by-hash", "get-sth-consistency", "get-entry-and-proof"}
	case BadEntry:
		if tiled {
			return []string{"data-tile"}
		}
		return []string{"get-entries", "get-entry-and-proof"}
	case SplitView:
		if tiled {
			return []string{"checkpoint", "tile", "data-tile"}
		}
		return []string{"get-sth", "get-sth-consistency", "get-proof-by-hash", "get-entries", "get-entry-and-proof"}
	}
	return nil
}

// Validate checks a fault for a shard of the given kind: a known kind
// that the shard takes, endpoints it has, and parameters in range. The
// error is a *FieldError naming the field.
func (f *Fault) Validate(tiled bool) error {
	if !slices.Contains(Kinds, f.Kind) {
		return fieldErr("kind", "unknown fault %q (want one of %s)", f.Kind, kindList())
	}
	if f.Kind == NoIntegrate && tiled {
		return fieldErr("kind", "a tiled shard has no_publish, not no_integrate")
	}
	if f.Kind == NoPublish && !tiled {
		return fieldErr("kind", "an RFC 6962 shard has no_integrate, not no_publish")
	}
	if f.Fraction != nil && (*f.Fraction < 0 || *f.Fraction > 1 || *f.Fraction != *f.Fraction) {
		return fieldErr("fraction", "%v is not between 0 and 1", *f.Fraction)
	}
	if f.Fraction != nil && (f.Kind == NoIntegrate || f.Kind == NoPublish) && *f.Fraction != 1 {
		return fieldErr("fraction", "%s holds every entry of the shard; it takes no fraction", f.Kind)
	}
	all := RFC6962Endpoints
	if tiled {
		all = TiledEndpoints
	}
	can := applies(f.Kind, tiled)
	for _, e := range f.Endpoints {
		if !slices.Contains(all, e) {
			return fieldErr("endpoints", "unknown endpoint %q (want one of %s)", e, strings.Join(all, ", "))
		}
		if can != nil && !slices.Contains(can, e) {
			return fieldErr("endpoints", "%s does not apply to %s (it applies to %s)", f.Kind, e, strings.Join(can, ", "))
		}
	}
	if (f.Kind == NoIntegrate || f.Kind == NoPublish) && len(f.Endpoints) > 0 {
		return fieldErr("endpoints", "%s holds every entry of the shard; it takes no endpoints", f.Kind)
	}
	for _, p := range []struct {
		field string
		set   bool
		kind  Kind
	}{
		{"status", f.Status != 0, Unavailable},
		{"retry_after_s", f.RetryAfterS != 0, Unavailable},
		{"min_ms", f.MinMS != 0, Delay},
		{"max_ms", f.MaxMS != 0, Delay},
		{"names", len(f.Names) > 0, Reject},
		{"issuers", len(f.Issuers) > 0, Reject},
		{"offset_ms", f.OffsetMS != 0, SCTTimestampSkew},
		{"clients", len(f.Clients) > 0, SplitView},
	} {
		if p.set && f.Kind != p.kind {
			return fieldErr(p.field, "applies to %s only", p.kind)
		}
	}
	if f.AfterS != nil && f.Kind != NoIntegrate && f.Kind != NoPublish {
		return fieldErr("after_s", "applies to no_integrate and no_publish only")
	}
	switch f.Kind {
	case Unavailable:
		switch f.Status {
		case 0:
			f.Status = 503
		case 500, 503, 429:
		default:
			return fieldErr("status", "%d: want 503, 500 or 429", f.Status)
		}
		if f.RetryAfterS < 0 || f.RetryAfterS > 86400 {
			return fieldErr("retry_after_s", "%d: want 0 to 86400", f.RetryAfterS)
		}
	case Delay:
		if f.MinMS < 0 || f.MaxMS < 0 || f.MaxMS > 600_000 || f.MinMS > 600_000 {
			return fieldErr("max_ms", "want 0 to 600000 for min_ms and max_ms")
		}
		if f.MaxMS == 0 {
			f.MaxMS = f.MinMS
		}
		if f.MinMS > f.MaxMS {
			return fieldErr("min_ms", "%d is above max_ms %d", f.MinMS, f.MaxMS)
		}
		if f.MaxMS == 0 {
			return fieldErr("max_ms", "a delay needs min_ms or max_ms above 0")
		}
	case Reject:
		if len(f.Names) == 0 && len(f.Issuers) == 0 {
			return fieldErr("names", "reject needs names or issuers")
		}
		for _, n := range f.Names {
			if strings.TrimSpace(n) == "" {
				return fieldErr("names", "an empty name")
			}
		}
	case NoIntegrate, NoPublish:
		if f.AfterS != nil && (*f.AfterS < 0 || *f.AfterS > 30*86400) {
			return fieldErr("after_s", "%d: want 0 to 2592000 (30 days)", *f.AfterS)
		}
	case SCTTimestampSkew:
		const lim = 10 * 365 * 24 * 3600 * 1000
		if f.OffsetMS == 0 || f.OffsetMS > lim || f.OffsetMS < -lim {
			return fieldErr("offset_ms", "%d: want a non-zero offset within ten years", f.OffsetMS)
		}
	case SplitView:
		for i, c := range f.Clients {
			ip := net.ParseIP(strings.TrimSpace(c))
			if ip == nil {
				return fieldErr("clients", "%q is not an IP address", c)
			}
			f.Clients[i] = ip.String() // as Client has a peer's
		}
	}
	return nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Set is the faults active on one shard. It is safe for concurrent use;
// a shard with none costs a request one atomic load.
type Set struct {
	tiled  bool
	any    atomic.Bool
	mu     sync.RWMutex
	faults map[Kind]Fault
	seed   uint64
	// onChange, when set, is called (without the lock) after the set changed.
	onChange func()
}

// NewSet returns an empty set for a shard of the given kind.
func NewSet(tiled bool) *Set {
	return &Set{tiled: tiled, faults: map[Kind]Fault{}, seed: rand.Uint64()}
}

// Tiled reports the kind of shard the set is for.
func (s *Set) Tiled() bool { return s.tiled }

// OnChange registers fn to run after every change of the set.
func (s *Set) OnChange(fn func()) {
	s.mu.Lock()
	s.onChange = fn
	s.mu.Unlock()
}

// Add validates f and makes it active, replacing an active fault of the
// same kind.
func (s *Set) Add(f Fault, now time.Time) error {
	if err := f.Validate(s.tiled); err != nil {
		return err
	}
	f.Set = now.UTC().Truncate(time.Millisecond)
	s.mu.Lock()
	s.faults[f.Kind] = f
	s.any.Store(true)
	fn := s.onChange
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
	return nil
}

// Clear removes every fault; it reports how many were active.
func (s *Set) Clear() int {
	s.mu.Lock()
	n := len(s.faults)
	s.faults = map[Kind]Fault{}
	s.any.Store(false)
	fn := s.onChange
	s.mu.Unlock()
	if fn != nil && n > 0 {
		fn()
	}
	return n
}

// List returns the active faults, ordered by kind.
func (s *Set) List() []Fault {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return slices.Index(Kinds, out[i].Kind) < slices.Index(Kinds, out[j].Kind) })
	return out
}

// Get returns the active fault of kind k, ignoring endpoints and fraction.
func (s *Set) Get(k Kind) (Fault, bool) {
	if !s.any.Load() {
		return Fault{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.faults[k]
	return f, ok
}

// Hits returns the active fault of kind k if it touches a request to
// endpoint from client (an IP address): the endpoint is one the fault
// applies to, and the request falls in its fraction (for split_view: the
// client is one of its clients, or its address falls in the fraction).
func (s *Set) Hits(k Kind, endpoint, client string) (Fault, bool) {
	f, ok := s.Get(k)
	if !ok {
		return Fault{}, false
	}
	if can := applies(k, s.tiled); can != nil && !slices.Contains(can, endpoint) {
		return Fault{}, false
	}
	if len(f.Endpoints) > 0 && !slices.Contains(f.Endpoints, endpoint) {
		return Fault{}, false
	}
	if k == SplitView {
		if len(f.Clients) > 0 {
			return f, slices.Contains(f.Clients, client)
		}
		// SHA-256, not FNV: FNV's high bits hardly move between
		// addresses that differ in their last characters.
		h := sha256.Sum256(fmt.Appendf(nil, "%d/%s", s.seed, client))
		return f, float64(binary.BigEndian.Uint64(h[:8])>>11)/(1<<53) < f.fraction()
	}
	fr := f.fraction()
	return f, fr >= 1 || rand.Float64() < fr
}
