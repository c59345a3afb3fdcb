// Package loadgen is a load generator for RFC 6962 logs: it submits unique
// precertificate chains to add-pre-chain (RFC 6962 section 4.1) with
// concurrent clients and measures throughput, latency and merge delay, the
// time from an SCT's timestamp to the first STH (section 4.3) whose tree
// includes the entry.
//
// Everything that is not the log's work happens off the clock: the
// precertificates are signed before the first submission, and SCT
// signatures are verified after the last one.
//
// Merge delay is measured from the log's own timestamps: get-sth is polled
// every Config.STHInterval during and after the load and every distinct STH
// is recorded; after the load, get-entries (section 4.6) gives each
// submission's index, found by its leaf hash. An entry's merge delay is the
// timestamp of the first observed STH with tree_size > index minus the SCT's
// timestamp, so it is exact when no STH was missed between polls and an
// upper bound otherwise.
package loadgen

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
)

// Config says what to submit, where, and how hard.
type Config struct {
	// LogURL is the log's base URL, as a log list has it, e.g.
	// "http://127.0.0.1:6962/testflume2026h2/"; "ct/v1/..." is appended.
	LogURL string
	// LogPublicKey is the log's public key (DER SubjectPublicKeyInfo, the
	// "key" of a v3 log list). When set, STH signatures are verified as
	// they are polled, and SCT signatures after the load (see VerifySample).
	// Optional.
	LogPublicKey []byte
	// MonitoringURL, when set, makes the log a Static CT API (tiled) log
	// with this monitoring prefix: no STH is polled, and after the load
	// every SCT's leaf_index is checked against the checkpoint and
	// VerifySample entries are proven from the tiles.
	MonitoringURL string
	// ServerPID, when set, is the log server's process on this machine,
	// whose CPU time during the load Result.ServerCPU reports (Linux).
	ServerPID int
	// ServerIdle is how long the server's CPU is sampled, before the load,
	// for Result.ServerIdleCPU: what the process burns with no submission
	// (the other shards' timers, its own publication loops). Default 5 s
	// with ServerPID; negative skips it.
	ServerIdle time.Duration
	// VerifySample is how many SCTs, evenly spread over the accepted
	// submissions, are verified after the load; 0 verifies every one.
	// Ignored without LogPublicKey.
	VerifySample int

	// Issuer signs the precertificates. Required.
	Issuer *x509.Certificate
	// IssuerSigner is Issuer's private key. Required.
	IssuerSigner crypto.Signer
	// Chain is sent after Issuer in every submission: the certificates
	// above it, in order, normally just the root.
	Chain []*x509.Certificate
	// NotAfter is the NotAfter of every precertificate; it must fall in the
	// log's temporal interval. Required.
	NotAfter time.Time

	// Clients is the number of concurrent submitters. Default 1.
	Clients int
	// Total is the number of submissions, all generated before the clock
	// starts. When 0, Rate and Duration must both be set and Total is
	// Rate×Duration.
	Total int
	// Duration, when set, ends the submissions after this long even if
	// fewer than Total were made.
	Duration time.Duration
	// Rate is a steady target of submissions per second across all clients,
	// each submission scheduled at start + i/Rate (a client that falls
	// behind catches up); 0 submits as fast as the clients can. Latency
	// counts from the moment a client sends, so when the log cannot keep up
	// (all clients busy), the wait for a free client is not in it: compare
	// Result.AcceptedPerSec with Rate.
	Rate float64

	// RequestTimeout bounds each submission, ct-go's retries included.
	// Default 30 s.
	RequestTimeout time.Duration
	// STHInterval is how often get-sth is polled. Default 20 ms.
	STHInterval time.Duration
	// MergeWait bounds the wait after the load for every accepted entry to
	// be integrated; those still missing then count as failures. Default 30 s.
	MergeWait time.Duration
	// HTTPClient carries every request. Default: a client keeping
	// Clients+4 idle connections to the log.
	HTTPClient *http.Client
	// Logger receives progress messages, and ct-go's retry messages at
	// Debug level. Default: discard.
	Logger *slog.Logger
	// Now is the clock for the precertificates' NotBefore. Default time.Now.
	Now func() time.Time
}

// ErrConfig reports a Config that Run cannot use.
var ErrConfig = errors.New("invalid load generator config")

func (c *Config) check() error {
	var problems []string
	if c.LogURL == "" {
		problems = append(problems, "LogURL is empty")
	}
	if c.Issuer == nil || c.IssuerSigner == nil {
		problems = append(problems, "Issuer and IssuerSigner are required")
	}
	if c.NotAfter.IsZero() {
		problems = append(problems, "NotAfter is required")
	}
	if c.Clients < 0 || c.Total < 0 || c.Rate < 0 || c.Duration < 0 {
		problems = append(problems, "Clients, Total, Rate and Duration cannot be negative")
	}
	if c.Total == 0 && (c.Rate == 0 || c.Duration == 0) {
		problems = append(problems, "Total is needed unless Rate and Duration are both set")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.Clients = max(c.Clients, 1)
	if c.Total == 0 {
		c.Total = int(math.Ceil(c.Rate * c.Duration.Seconds()))
	}
	if c.ServerIdle == 0 {
		c.ServerIdle = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.STHInterval == 0 {
		c.STHInterval = 20 * time.Millisecond
	}
	if c.MergeWait == 0 {
		c.MergeWait = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// outcome is what one submission got.
type outcome struct {
	done    bool
	latency time.Duration
	sct     *ct.SignedCertificateTimestamp
	err     error
}

// Run generates the precertificates, submits them, waits for the log to
// integrate them, and reports. A Result comes back whenever the load
// started, with an error too when ctx ended it early; the error is nil even
// when submissions failed: the Result counts them (see Result.OK).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.close()
	return r.run(ctx)
}

type runner struct {
	cfg     Config
	started time.Time // the first submission
	hc      *http.Client
	ownHC   bool
	retries atomic.Int64
	sths    *sthPoller
	pcs     []precert
	out     []outcome
}

func newRunner(cfg Config) (*runner, error) {
	r := &runner{cfg: cfg, hc: cfg.HTTPClient}
	if r.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = cfg.Clients + 4
		tr.MaxIdleConnsPerHost = cfg.Clients + 4
		r.hc, r.ownHC = &http.Client{Transport: tr}, true
	}
	lc, err := r.newClient(cfg.LogPublicKey)
	if err != nil {
		return nil, err
	}
	r.sths = &sthPoller{lc: lc}
	return r, nil
}

func (r *runner) close() {
	if r.ownHC {
		r.hc.CloseIdleConnections()
	}
}

// newClient makes a ct-go client of its own, so that one client's retry
// backoff does not stall the others.
func (r *runner) newClient(pubDER []byte) (*client.LogClient, error) {
	lc, err := client.New(r.cfg.LogURL, r.hc, jsonclient.Options{
		PublicKeyDER: pubDER,
		Logger:       retryLogger{n: &r.retries, log: r.cfg.Logger},
		UserAgent:    "ctstage-bench",
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't create a log client: %w", err)
	}
	return lc, nil
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	log := r.cfg.Logger
	iss, err := newPrecertIssuer(&r.cfg, r.cfg.Now())
	if err != nil {
		return nil, err
	}
	log.Info("generating precertificates", "n", r.cfg.Total)
	genStart := time.Now()
	if r.pcs, err = iss.generate(ctx, r.cfg.Total); err != nil {
		return nil, err
	}
	log.Info("generated precertificates", "n", r.cfg.Total, "took", time.Since(genStart).Round(time.Millisecond))
	tiled := r.cfg.MonitoringURL != ""
	var start sth
	pollCtx, stopPolling := context.WithCancel(ctx)
	var pollDone sync.WaitGroup
	defer func() { stopPolling(); pollDone.Wait() }()
	if !tiled {
		if start, err = r.sths.poll(ctx); err != nil {
			return nil, fmt.Errorf("couldn't get the log's STH before the load: %w", err)
		}
		pollDone.Go(func() { r.sths.run(pollCtx, r.cfg.STHInterval) })
	}

	log.Info("submitting", "log", r.cfg.LogURL, "clients", r.cfg.Clients, "total", r.cfg.Total,
		"rate", r.cfg.Rate, "duration", r.cfg.Duration, "start_tree_size", start.size, "tiled", tiled)
	var cpu0 time.Duration
	var idle Millis
	if r.cfg.ServerPID != 0 {
		if idle, err = idleCPU(ctx, r.cfg.ServerPID, r.cfg.ServerIdle); err != nil {
			return nil, err
		}
		if cpu0, err = processCPU(r.cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	elapsed, loadErr := r.submit(ctx)
	res := r.tally(elapsed)
	res.StartSize, res.Tiled = start.size, tiled
	if r.cfg.ServerPID != 0 {
		cpu1, err := processCPU(r.cfg.ServerPID)
		if err != nil {
			return res, err
		}
		res.setServerCPU(Millis(cpu1-cpu0), idle, elapsed)
	}
	if loadErr != nil {
		return res, loadErr
	}
	log.Info("submitted; checking the entries are in the log", "accepted", res.Accepted,
		"elapsed", elapsed.Round(time.Millisecond))
	if tiled {
		if err := r.checkTiled(ctx, res); err != nil {
			return res, err
		}
	} else {
		if err := r.measureMerge(ctx, res, start.size); err != nil {
			return res, err
		}
		stopPolling()
		pollDone.Wait()
		res.STHs, res.STHErrors = r.sths.stats()
	}
	if err := r.verifySCTs(ctx, res); err != nil {
		return res, err
	}
	res.Failed = res.Submitted - res.Accepted + res.NotIntegrated + res.InvalidSCTs
	return res, nil
}

// submit runs the clients until Total submissions, Duration, or ctx ends,
// and returns how long the load took: first submission to last answer.
func (r *runner) submit(ctx context.Context) (time.Duration, error) {
	r.out = make([]outcome, len(r.pcs))
	start := time.Now()
	r.started = start
	var deadline time.Time
	if r.cfg.Duration > 0 {
		deadline = start.Add(r.cfg.Duration)
	}
	next := r.dispatch(ctx, start, deadline)
	var wg sync.WaitGroup
	for range r.cfg.Clients {
		lc, err := r.newClient(nil)
		if err != nil {
			return 0, err
		}
		wg.Go(func() {
			for i, ok := next(); ok; i, ok = next() {
				r.submitOne(ctx, lc, i)
			}
		})
	}
	wg.Wait()
	return time.Since(start), ctx.Err()
}

// dispatch returns the function with which the clients take the index of
// their next submission; it reports false when there is none left.
func (r *runner) dispatch(ctx context.Context, start, deadline time.Time) func() (int, bool) {
	over := func() bool {
		return ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline))
	}
	if r.cfg.Rate == 0 {
		var n atomic.Int64
		return func() (int, bool) {
			i := int(n.Add(1) - 1)
			return i, i < len(r.pcs) && !over()
		}
	}
	ch := make(chan int)
	go func() {
		defer close(ch)
		interval := time.Duration(float64(time.Second) / r.cfg.Rate)
		for i := range r.pcs {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
			if over() {
				return
			}
			select {
			case ch <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() (int, bool) {
		i, ok := <-ch
		return i, ok
	}
}

func (r *runner) submitOne(ctx context.Context, lc *client.LogClient, i int) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	t := time.Now()
	sct, err := lc.AddPreChain(ctx, r.pcs[i].chain)
	r.out[i] = outcome{done: true, latency: time.Since(t), sct: sct, err: err}
}

// tally counts the submissions' outcomes.
func (r *runner) tally(elapsed time.Duration) *Result {
	res := &Result{
		LogURL: r.cfg.LogURL, Clients: r.cfg.Clients, TargetRate: r.cfg.Rate, Planned: len(r.pcs),
		Errors: Counts{}, Started: r.started.UTC(), Elapsed: Millis(elapsed), Retries: r.retries.Load(),
	}
	var lat []time.Duration
	for _, o := range r.out {
		if !o.done {
			continue
		}
		res.Submitted++
		if o.err != nil {
			res.Errors.add(errorKey(o.err, r.cfg.RequestTimeout), 1)
			continue
		}
		res.Accepted++
		lat = append(lat, o.latency)
	}
	res.Latency = summarize(lat)
	if elapsed > 0 {
		res.AcceptedPerSec = float64(res.Accepted) / elapsed.Seconds()
	}
	res.Failed = res.Submitted - res.Accepted
	return res
}

// errorKey turns a submission error into a message under which to count it.
func errorKey(err error, timeout time.Duration) string {
	var rsp jsonclient.RspError
	switch {
	case errors.As(err, &rsp) && rsp.StatusCode != 0:
		body := strings.Join(strings.Fields(string(rsp.Body)), " ")
		if len(body) > 120 {
			body = body[:120] + "..."
		}
		return fmt.Sprintf("HTTP %d: %s", rsp.StatusCode, body)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", timeout)
	default:
		return err.Error()
	}
}

// retryLogger counts the retries ct-go's client announces.
type retryLogger struct {
	n   *atomic.Int64
	log *slog.Logger
}

func (l retryLogger) Printf(format string, args ...any) {
	l.n.Add(1)
	l.log.Debug("ct-go client: " + fmt.Sprintf(format, args...))
}
