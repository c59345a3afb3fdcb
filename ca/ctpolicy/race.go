package ctpolicy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	ct "github.com/google/certificate-transparency-go"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Submitter. Zero fields take the defaults named.
type Options struct {
	// Logs are the candidate logs, usually LogsFromList of a v3 log list.
	Logs []*Log
	// Initial is how many submissions the race starts at once. Default 2.
	Initial int
	// Stagger is how long the race waits before adding one more log while
	// the policy is not met. Default 500ms.
	Stagger time.Duration
	// LogTimeout bounds one submission to one log. Default 5s.
	LogTimeout time.Duration
	// Deadline bounds the whole race. Default 10s.
	Deadline time.Duration
	// MaxFuture is how far in the future an SCT's timestamp may be and still
	// count. Default 5s.
	MaxFuture time.Duration
	// MaxAge is how old an SCT's timestamp may be and still count.
	// Default 24h.
	MaxAge time.Duration
	// Now is the clock SCT timestamps are checked against. Default time.Now.
	Now func() time.Time
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives one line per failed submission. Default slog.Default().
	Logger *slog.Logger
}

// Submitter obtains SCTs for precertificates and submits final
// certificates. It is safe for concurrent use.
type Submitter struct {
	opts    Options
	logs    atomic.Pointer[[]*Log]
	metrics *metrics
}

// SCT is one SCT that passed every check, and the log that issued it.
type SCT struct {
	Log *Log
	SCT *ct.SignedCertificateTimestamp
	// Latency is how long the log took to answer.
	Latency time.Duration
}

// NewSubmitter checks opts and fills in defaults.
func NewSubmitter(opts Options) (*Submitter, error) {
	if len(opts.Logs) == 0 {
		return nil, errors.New("ctpolicy: no logs")
	}
	setDefault(&opts.Initial, 2)
	setDefault(&opts.Stagger, 500*time.Millisecond)
	setDefault(&opts.LogTimeout, 5*time.Second)
	setDefault(&opts.Deadline, 10*time.Second)
	setDefault(&opts.MaxFuture, 5*time.Second)
	setDefault(&opts.MaxAge, 24*time.Hour)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Submitter{opts: opts, metrics: m}
	s.SetLogs(opts.Logs)
	return s, nil
}

// SetLogs replaces the candidate logs (a new log list: states changed,
// logs came or went). Races already running keep the logs they began with.
func (s *Submitter) SetLogs(logs []*Log) {
	logs = slices.Clone(logs)
	s.logs.Store(&logs)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Logs returns the candidate logs.
func (s *Submitter) Logs() []*Log { return *s.logs.Load() }

// GetSCTs submits the precertificate chain (precertificate, its issuer, ...
// up to but excluding nothing: the root may be left out) to logs that accept
// its NotAfter, racing as Boulder's ctpolicy does: Initial submissions at
// once, one more after each Stagger, a failed one replaced at once, each
// bounded by LogTimeout and all by Deadline. It returns as soon as the SCTs
// obtained meet Check for the lifetime notAfter - notBefore, cancelling the
// submissions still running. Only SCTs that verify with their log's key and
// have a timestamp within [now-MaxAge, now+MaxFuture] count.
//
// When the logs that accept the certificate could not meet the policy even
// if all answered, it fails at once, without submitting, with an error
// wrapping ErrPolicy. When they fail to, the error wraps ErrPolicy and joins
// every log's failure.
func (s *Submitter) GetSCTs(ctx context.Context, chain [][]byte, notBefore, notAfter time.Time) ([]SCT, error) {
	lifetime := notAfter.Sub(notBefore)
	cands := s.candidates(notAfter)
	if err := Check(lifetime, sources(cands)); err != nil {
		return nil, fmt.Errorf("too few usable logs for NotAfter %s (%d accept it): %w",
			notAfter.UTC().Format(time.RFC3339), len(cands), err)
	}
	entry, err := precertEntry(chain)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Deadline)
	defer cancel()
	r := &race{s: s, ctx: ctx, chain: chain, entry: entry, lifetime: lifetime, cands: cands,
		results: make(chan result, len(cands)), inflOp: map[string]int{}, gotOp: map[string]int{}}
	return r.run()
}

// candidates returns the usable logs that take notAfter, shuffled, with
// operators interleaved and the kinds of log alternating between them:
// the first operator's RFC 6962 logs come first, the second's tiled logs,
// and so on. So the first two candidates are of two operators and, where
// both kinds exist, one of each kind: the certificate carries SCTs from
// both, including the RFC 6962 SCT that Check (RuleRFC6962) asks for.
// Qualified logs come after every usable one.
func (s *Submitter) candidates(notAfter time.Time) []*Log {
	byOp := map[string][]*Log{}
	var ops []string
	now := s.opts.Now()
	for _, l := range s.Logs() {
		if !l.Accepts(notAfter, now) {
			continue
		}
		if byOp[l.Operator] == nil {
			ops = append(ops, l.Operator)
		}
		byOp[l.Operator] = append(byOp[l.Operator], l)
	}
	rand.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	// Issuance safety: Chrome's log-state guidance is that a CA should not
	// depend on qualified logs, which may still be rejected. The usable
	// logs, interleaved, come first and the qualified ones after, so the
	// race reaches a qualified log only when the usable ones cannot (or
	// did not) meet the policy on their own.
	usable, qualified := map[string][]*Log{}, map[string][]*Log{}
	for j, op := range ops {
		ls := byOp[op]
		rand.Shuffle(len(ls), func(i, j int) { ls[i], ls[j] = ls[j], ls[i] })
		rfcFirst := j%2 == 0
		stablePartition(ls, func(l *Log) bool { return l.RFC6962 == rfcFirst })
		for _, l := range ls {
			if l.State == "qualified" {
				qualified[op] = append(qualified[op], l)
			} else {
				usable[op] = append(usable[op], l)
			}
		}
	}
	var out []*Log
	for _, group := range []map[string][]*Log{usable, qualified} {
		for i := 0; hasIndex(group, ops, i); i++ {
			for _, op := range ops {
				if i < len(group[op]) {
					out = append(out, group[op][i])
				}
			}
		}
	}
	return out
}

func hasIndex(byOp map[string][]*Log, ops []string, i int) bool {
	for _, op := range ops {
		if i < len(byOp[op]) {
			return true
		}
	}
	return false
}

func stablePartition(ls []*Log, first func(*Log) bool) {
	out := make([]*Log, 0, len(ls))
	for _, l := range ls {
		if first(l) {
			out = append(out, l)
		}
	}
	for _, l := range ls {
		if !first(l) {
			out = append(out, l)
		}
	}
	copy(ls, out)
}

func sources[T interface{ *Log | SCT }](xs []T) []Source {
	out := make([]Source, len(xs))
	for i, x := range xs {
		var l *Log
		switch v := any(x).(type) {
		case *Log:
			l = v
		case SCT:
			l = v.Log
		}
		out[i] = Source{Operator: l.Operator, RFC6962: l.RFC6962}
	}
	return out
}

// precertEntry builds the log entry the SCTs sign, with ct-go's x509 fork
// (which removes the poison and takes the issuer key hash).
func precertEntry(chain [][]byte) (ct.LogEntry, error) {
	if len(chain) < 2 {
		return ct.LogEntry{}, errors.New("ctpolicy: a precertificate chain needs the issuer")
	}
	certs := make([]*ctx509.Certificate, 2)
	for i := range certs {
		c, err := ctx509.ParseCertificate(chain[i])
		if ctx509.IsFatal(err) {
			return ct.LogEntry{}, fmt.Errorf("ctpolicy: couldn't parse chain[%d]: %w", i, err)
		}
		certs[i] = c
	}
	leaf, err := ct.MerkleTreeLeafFromChain(certs, ct.PrecertLogEntryType, 0)
	if err != nil {
		return ct.LogEntry{}, fmt.Errorf("ctpolicy: %w", err)
	}
	return ct.LogEntry{Leaf: *leaf}, nil
}

type result struct {
	log *Log
	sct SCT
	err error
}

// race is one GetSCTs call.
type race struct {
	s        *Submitter
	ctx      context.Context
	chain    [][]byte
	entry    ct.LogEntry
	lifetime time.Duration
	cands    []*Log // not yet started
	results  chan result
	inflight int
	inflOp   map[string]int // submissions in flight per operator
	gotOp    map[string]int // SCTs obtained per operator
	rfcInfl  int            // submissions to RFC 6962 logs in flight
	got      []SCT
	errs     []error
}

func (r *race) run() ([]SCT, error) {
	for range r.s.opts.Initial {
		r.startNext()
	}
	stagger := time.NewTicker(r.s.opts.Stagger)
	defer stagger.Stop()
	for {
		if Check(r.lifetime, sources(r.got)) == nil {
			return r.got, nil // the deferred cancel stops the rest
		}
		if r.inflight == 0 && !r.startNext() {
			return nil, r.failure("every usable log was tried")
		}
		select {
		case res := <-r.results:
			r.inflight--
			r.inflOp[res.log.Operator]--
			if res.log.RFC6962 {
				r.rfcInfl--
			}
			if res.err != nil {
				r.fail(res.err)
				r.startNext()
				continue
			}
			r.got = append(r.got, res.sct)
			r.gotOp[res.log.Operator]++
		case <-stagger.C:
			r.startNext()
		case <-r.ctx.Done():
			return nil, r.failure(fmt.Sprintf("deadline of %s passed", r.s.opts.Deadline))
		}
	}
}

func (r *race) fail(err error) {
	r.errs = append(r.errs, err)
	var se *SubmitError
	if errors.As(err, &se) {
		r.s.metrics.failure(se.Log, se.Kind)
		r.s.opts.Logger.Warn("CT log submission failed", "log", se.Log.Description, "kind", se.Kind, "err", se.Err)
	}
}

func (r *race) failure(why string) error {
	err := Check(r.lifetime, sources(r.got))
	return fmt.Errorf("couldn't get enough SCTs (%d obtained; %s): %w", len(r.got), why, errors.Join(append([]error{err}, r.errs...)...))
}

// startNext starts the next candidate that can help meet the policy,
// preferring operators with nothing obtained or in flight, then operators
// whose submissions are still in flight (one may hang). It reports false
// when none is left.
func (r *race) startNext() bool {
	for _, countInflight := range []bool{true, false} {
		for i, l := range r.cands {
			if !r.useful(l, countInflight) {
				continue
			}
			r.cands = append(r.cands[:i:i], r.cands[i+1:]...)
			r.inflight++
			r.inflOp[l.Operator]++
			if l.RFC6962 {
				r.rfcInfl++
			}
			go r.submit(l)
			return true
		}
	}
	return false
}

// useful reports whether one more SCT from l could bring the policy closer:
// up to 180 days a second SCT from one operator is never needed, and beyond
// a third from one operator does not count.
func (r *race) useful(l *Log, countInflight bool) bool {
	if l.RFC6962 && !r.haveRFC6962(countInflight) {
		// Check asks for an SCT from an RFC 6962 log: when the logs that
		// answered (or may) are all tiled, one more from an operator
		// already served is what the policy needs.
		return true
	}
	n := r.gotOp[l.Operator]
	if countInflight {
		n += r.inflOp[l.Operator]
	}
	if Required(r.lifetime) <= 2 {
		return n < 1
	}
	return n < 2
}

// haveRFC6962 reports whether an SCT from an RFC 6962 log was obtained
// (or, with countInflight, may come from a submission in flight).
func (r *race) haveRFC6962(countInflight bool) bool {
	if countInflight && r.rfcInfl > 0 {
		return true
	}
	for _, s := range r.got {
		if s.Log.RFC6962 {
			return true
		}
	}
	return false
}

func (r *race) submit(l *Log) {
	ctx, cancel := context.WithTimeout(r.ctx, r.s.opts.LogTimeout)
	defer cancel()
	start := time.Now()
	sct, err := l.post(ctx, ct.AddPreChainPath, r.chain)
	if err == nil {
		err = l.check(sct, r.entry, r.s.opts.Now(), r.s.opts.MaxFuture, r.s.opts.MaxAge)
	}
	d := time.Since(start)
	if err == nil {
		r.s.metrics.latency(l, d)
	}
	r.results <- result{log: l, sct: SCT{Log: l, SCT: sct, Latency: d}, err: err}
}

// SubmitFinal submits a final certificate chain to each of logs with
// add-chain (RFC 6962 section 4.1), each bounded by LogTimeout, and checks
// the SCTs returned. It returns the failures joined.
func (s *Submitter) SubmitFinal(ctx context.Context, chain [][]byte, logs []*Log) error {
	entry := ct.LogEntry{Leaf: *ct.CreateX509MerkleTreeLeaf(ct.ASN1Cert{Data: chain[0]}, 0)}
	errs := make(chan error, len(logs))
	for _, l := range logs {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, s.opts.LogTimeout)
			defer cancel()
			sct, err := l.post(ctx, ct.AddChainPath, chain)
			if err == nil {
				err = l.check(sct, entry, s.opts.Now(), s.opts.MaxFuture, s.opts.MaxAge)
			}
			var se *SubmitError
			if errors.As(err, &se) {
				s.metrics.failure(l, se.Kind)
			}
			s.metrics.final(err)
			errs <- err
		}()
	}
	var all []error
	for range logs {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// NewHTTPClient is an HTTP client suited to submissions: no overall timeout
// (the race sets deadlines per request) and enough idle connections for a
// busy CA. Every submission in flight holds a connection, and logs often
// share a host (ctstage's shards all do): a pool smaller than the
// submissions in flight closes connections after each burst and dials
// again.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: t}
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
