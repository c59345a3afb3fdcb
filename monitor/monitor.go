package monitor

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctstage/ctstage/sctverify"
)

const userAgent = "ctstage monitor (+https://github.com/ctstage/ctstage)"

// Options configure a Monitor.
type Options struct {
	// Logs are the logs followed (sctverify.LoadLogList of a v3 list).
	Logs *sctverify.LogList
	// StateDir keeps each log's verified tree head, its tree heads and
	// the compact range of the entries read, so that a restart resumes.
	StateDir string
	// Watch are DNS name suffixes: certificates for names under any of
	// them are reported.
	Watch []string
	// SCTs are SCTs whose entries must be in their logs within the
	// logs' MMD (mmd_violation); see SCTsOf.
	SCTs []SCT
	// CAURL is a running ctstage CA's management endpoint: the SCTs of
	// every certificate it issued (GET /issuances) are checked too.
	CAURL string
	// Vantages are other ways of reaching every log (an HTTP client from
	// another client address, say): each poll compares what each shows
	// with the verified head, and a fork between them is a split_view.
	Vantages []Vantage
	// Heads are tree heads learned elsewhere (another monitor's, a
	// gossip file), compared with the verified ones likewise.
	Heads []ForeignHead
	// Sink receives the alerts and the watched certificates.
	Sink Sink
	// HTTPClient reads the logs; nil is a client with a 30 s timeout.
	HTTPClient *http.Client
	// MaxAge is how old a log's newest tree head may be before it is
	// stale. Default 24 h.
	MaxAge time.Duration
	// Unreachable is how long a log may fail to answer, or to serve the
	// entries its tree head commits to, before it is unreachable.
	// Default (zero) 5 minutes; negative is at the first failure, which
	// is what a single pass (ctstage monitor --once) wants.
	Unreachable time.Duration
	// RequestTimeout bounds each tree head and consistency proof read.
	// Default 30 s.
	RequestTimeout time.Duration
	// Parallel is how many get-entries run at once per RFC 6962 log, and
	// how many data tiles' entries are parsed at once per tiled log.
	// Default 4.
	Parallel int
	// SaveEvery is how many entries are read between two saves of the
	// state. Default 10,000.
	SaveEvery uint64
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger receives progress lines, every ProgressEvery (default 10 s)
	// while a log is caught up on.
	Logger        *slog.Logger
	ProgressEvery time.Duration
	// Progress, when set (a terminal), gets a progress line rewritten
	// every second during catch-up.
	Progress io.Writer
	// Registerer receives the monitor's metrics (ctstage_monitor_*); nil
	// registers none.
	Registerer prometheus.Registerer
}

// Monitor follows the logs of Options.Logs.
type Monitor struct {
	opts      Options
	ttyMu     sync.Mutex // one progress line at a time
	metrics   *metrics
	followers []*follower
	mu        sync.Mutex
	alerts    int
}

// New sets up a follower per log, with its state from StateDir.
func New(opts Options) (*Monitor, error) {
	if opts.Logs == nil || len(opts.Logs.Logs) == 0 {
		return nil, errors.New("monitor: no logs to follow")
	}
	if opts.StateDir == "" {
		return nil, errors.New("monitor: no state directory")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 24 * time.Hour
	}
	if opts.Unreachable == 0 {
		opts.Unreachable = 5 * time.Minute
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.SaveEvery == 0 {
		opts.SaveEvery = 10_000
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	for i, w := range opts.Watch {
		opts.Watch[i] = strings.ToLower(strings.Trim(strings.TrimSpace(w), "."))
	}
	m := &Monitor{opts: opts, metrics: newMetrics(opts.Registerer)}
	for _, l := range opts.Logs.Logs {
		var src source
		var err error
		if l.Tiled {
			src, err = newTiledSource(l.URL, l.Key, opts.HTTPClient, opts.Parallel)
		} else {
			src, err = newRFCSource(l.URL, l.Key, opts.HTTPClient, opts.Parallel)
		}
		if err != nil {
			return nil, fmt.Errorf("monitor: log %s: %w", l.Description, err)
		}
		st, err := loadState(opts.StateDir, l.ID)
		if err != nil {
			return nil, fmt.Errorf("monitor: log %s: %w", l.Description, err)
		}
		f := &follower{m: m, log: l, src: src, st: st, seen: map[string]bool{}}
		for _, v := range opts.Vantages {
			var vs source
			if l.Tiled {
				vs, err = newTiledSource(l.URL, l.Key, v.HTTPClient, 1)
			} else {
				vs, err = newRFCSource(l.URL, l.Key, v.HTTPClient, 1)
			}
			if err != nil {
				return nil, fmt.Errorf("monitor: log %s, vantage %s: %w", l.Description, v.Name, err)
			}
			f.vantages = append(f.vantages, vantage{name: v.Name, src: vs})
		}
		for _, h := range opts.Heads {
			if h.LogID == l.ID {
				f.foreign = append(f.foreign, h)
			}
		}
		for _, s := range opts.SCTs {
			if s.LogID == l.ID {
				f.pending = append(f.pending, s)
			}
		}
		m.followers = append(m.followers, f)
	}
	return m, nil
}

// Alerts is how many alerts were emitted so far.
func (m *Monitor) Alerts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alerts
}

// Once polls every log once, reading its entries up to its newest tree
// head, and returns the number of alerts emitted.
func (m *Monitor) Once(ctx context.Context) int {
	m.pullCAOnce(ctx)
	var wg sync.WaitGroup
	for _, f := range m.followers {
		wg.Add(1)
		go func() { defer wg.Done(); f.poll(ctx) }()
	}
	wg.Wait()
	return m.Alerts()
}

// Run polls every log each interval until ctx ends.
func (m *Monitor) Run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	if m.opts.CAURL != "" {
		wg.Go(func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				m.pullCAOnce(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	for _, f := range m.followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				f.poll(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}

// pullCAOnce reads the CA's new issuances, logging a failure.
func (m *Monitor) pullCAOnce(ctx context.Context) {
	if m.opts.CAURL == "" {
		return
	}
	n, err := m.pullCA(ctx)
	if err != nil && ctx.Err() == nil {
		m.opts.Logger.Warn("couldn't read the CA's issuances", "ca", m.opts.CAURL, "err", err)
	}
	if n > 0 {
		m.opts.Logger.Info("CA issuances read", "certificates", n)
	}
}

// follower checks one log.
type follower struct {
	// mu guards st.Verified against HeadsHandler; polls are one at a time.
	mu  sync.Mutex
	m   *Monitor
	log *sctverify.Log
	src source
	st  *state
	// seen dedupes alerts: one line per kind and detail.
	seen             map[string]bool
	lastTTY, lastLog time.Time // the last progress line of each kind
	failingSince     time.Time
	firstErr         error // of the outage since failingSince
	// readFailingSince is when reading the entries a verified tree head
	// commits to began to fail (from index readFrom, first with readErr):
	// a log that signs a tree it cannot serve is unreachable too.
	readFailingSince time.Time
	readFrom         uint64
	readErr          error
	// pending are the SCTs of this log whose entries were not seen yet
	// (pmu: AddSCTs adds to them while the follower polls).
	pmu     sync.Mutex
	pending []SCT
	// vantages are the other views of this log; foreign the heads of it
	// learned elsewhere.
	vantages []vantage
	foreign  []ForeignHead
}

type vantage struct {
	name string
	src  source
}

func (f *follower) alert(kind, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if f.seen[kind+"\x00"+detail] {
		return
	}
	f.seen[kind+"\x00"+detail] = true
	f.m.mu.Lock()
	f.m.alerts++
	f.m.mu.Unlock()
	f.m.metrics.alerts.WithLabelValues(f.log.Description, kind).Inc()
	f.m.opts.Sink.Emit(Event{Time: f.m.opts.Now(), Log: f.log.Description, URL: f.log.URL, Alert: kind, Detail: detail})
}

// poll reads the newest tree head, checks it against the last verified
// one, and reads the entries up to it.
func (f *follower) poll(ctx context.Context) {
	now := f.m.opts.Now()
	hctx, cancel := context.WithTimeout(ctx, f.m.opts.RequestTimeout)
	h, err := f.src.head(hctx)
	cancel()
	switch {
	case errors.Is(err, errSignature):
		f.alert(AlertSTHSignature, "%v", err)
		return
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		f.m.metrics.polls.WithLabelValues(f.log.Description, "error").Inc()
		if f.failingSince.IsZero() {
			f.failingSince, f.firstErr = now, err
		}
		if now.Sub(f.failingSince) >= max(f.m.opts.Unreachable, 0) {
			// The detail names the outage, not its length or its last
			// error, so that an outage is one alert.
			f.alert(AlertUnreachable, "no tree head since %s, over %s: %v", f.failingSince.UTC().Format(time.RFC3339), max(f.m.opts.Unreachable, 0), f.firstErr)
		}
		return
	}
	f.failingSince = time.Time{}
	f.m.metrics.polls.WithLabelValues(f.log.Description, "ok").Inc()
	f.m.metrics.sthAge.WithLabelValues(f.log.Description).Set(now.Sub(h.Time).Seconds())
	if !f.checkHead(ctx, h, now) {
		return
	}
	f.read(ctx, h)
	f.checkSCTs(ctx, h, now)
	f.checkViews(ctx, h)
}

// checkViews compares the verified head h with what every vantage shows
// and with the heads learned elsewhere: two heads of one size with two
// roots, or a consistency proof that fails between them, are a split
// view. The proof is asked of the view with the larger head (or, for a
// foreign head, of the log as this monitor reaches it).
func (f *follower) checkViews(ctx context.Context, h Head) {
	for _, v := range f.vantages {
		cctx, cancel := context.WithTimeout(ctx, f.m.opts.RequestTimeout)
		vh, err := v.src.head(cctx)
		if err == nil {
			f.compare(cctx, h, vh, f.src, v.src, "vantage "+v.name)
		} else if errors.Is(err, errSignature) {
			f.alert(AlertSTHSignature, "vantage %s: %v", v.name, err)
		}
		cancel()
	}
	for _, fh := range f.foreign {
		cctx, cancel := context.WithTimeout(ctx, f.m.opts.RequestTimeout)
		f.compare(cctx, h, fh.Head, f.src, f.src, fh.Source)
		cancel()
	}
}

func (f *follower) compare(ctx context.Context, a, b Head, aSrc, bSrc source, what string) {
	var err error
	switch {
	case a.Size == b.Size && a.Root != b.Root:
		f.alert(AlertSplitView, "%s shows a tree of size %d with root %s, this monitor's view %s", what, b.Size, b.Root, a.Root)
		return
	case a.Size == b.Size:
		return
	case a.Size < b.Size:
		err = bSrc.consistency(ctx, a, b)
	default:
		err = aSrc.consistency(ctx, b, a)
	}
	if errors.Is(err, errInconsistent) {
		f.alert(AlertSplitView, "%s shows a tree of size %d (root %s) that does not join this monitor's of size %d (root %s): %v",
			what, b.Size, b.Root, a.Size, a.Root, err)
	}
}

// checkSCTs looks for the entry of each pending SCT in the verified tree
// h: found, it is done; not found once the SCT is older than the log's
// MMD, it is an mmd_violation.
func (f *follower) checkSCTs(ctx context.Context, h Head, now time.Time) {
	f.pmu.Lock()
	pending := f.pending
	f.pending = nil
	f.pmu.Unlock()
	var still []SCT
	defer func() {
		f.pmu.Lock()
		f.pending = append(still, f.pending...)
		f.pmu.Unlock()
	}()
	for _, s := range pending {
		cctx, cancel := context.WithTimeout(ctx, f.m.opts.RequestTimeout)
		ok, err := f.src.included(cctx, s.LeafHash, s.LeafIndex, h)
		cancel()
		switch {
		case errors.Is(err, errBadEntry) || errors.Is(err, errInconsistent):
			f.alert(AlertMMDViolation, "%s: %v", s.Source, err)
		case err != nil:
			if ctx.Err() == nil {
				f.m.opts.Logger.Warn("couldn't look for an SCT's entry", "log", f.log.Description, "sct", s.Source, "err", err)
			}
			still = append(still, s)
		case ok:
		case now.Sub(s.Time) > f.log.MMD:
			f.alert(AlertMMDViolation, "%s: the entry of the SCT of %s is not in the newest tree (size %d, signed at %s), %s after the SCT (MMD %s)",
				s.Source, stamp(s.Time), h.Size, stamp(h.Time), now.Sub(s.Time).Round(time.Second), f.log.MMD)
		default:
			still = append(still, s)
		}
	}
}

// checkHead checks h against the last verified head; true when h is
// now the verified head.
func (f *follower) checkHead(ctx context.Context, h Head, now time.Time) bool {
	if now.Sub(h.Time) > f.m.opts.MaxAge {
		f.alert(AlertStale, "the newest tree head (size %d, signed at %s) is older than %s", h.Size, stamp(h.Time), f.m.opts.MaxAge)
	}
	v := f.st.Verified
	if v == nil {
		f.accept(h)
		return true
	}
	switch {
	case h.Time.Before(v.Time):
		f.alert(AlertTimestampRegression, "tree head of size %d at %s is older than one seen before (size %d at %s)",
			h.Size, stamp(h.Time), v.Size, stamp(v.Time))
		return false
	case h.Size < v.Size:
		f.alert(AlertInconsistent, "tree head of size %d is smaller than one seen before (%d)", h.Size, v.Size)
		return false
	case h.Size == v.Size && h.Root != v.Root:
		f.alert(AlertInconsistent, "two tree heads of size %d with different roots (%s, %s)", h.Size, v.Root, h.Root)
		return false
	case h.Size == v.Size:
		f.accept(h)
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, f.m.opts.RequestTimeout)
	defer cancel()
	if err := f.src.consistency(cctx, *v, h); err != nil {
		if errors.Is(err, errInconsistent) {
			f.alert(AlertInconsistent, "%v", err)
		} else if ctx.Err() == nil {
			f.m.opts.Logger.Warn("couldn't get a consistency proof", "log", f.log.Description, "err", err)
		}
		return false
	}
	f.accept(h)
	return true
}

// accept makes h the verified head and keeps it; a head already the
// verified one (the same size, root and time: most polls) costs no write.
func (f *follower) accept(h Head) {
	f.m.metrics.treeSize.WithLabelValues(f.log.Description).Set(float64(h.Size))
	if v := f.st.Verified; v != nil && v.Size == h.Size && v.Root == h.Root && v.Time.Equal(h.Time) {
		return
	}
	f.mu.Lock()
	f.st.Verified = &h
	f.mu.Unlock()
	if err := f.st.appendHead(h); err != nil {
		f.m.opts.Logger.Warn("couldn't keep a tree head", "log", f.log.Description, "err", err)
	}
	if err := f.st.save(); err != nil {
		f.m.opts.Logger.Warn("couldn't save the monitor's state", "log", f.log.Description, "err", err)
	}
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// read reads the entries from the state's range end up to h, appending
// their leaf hashes to the compact range, and compares its root with h.
func (f *follower) read(ctx context.Context, h Head) {
	r, err := f.st.compactRange()
	if err != nil {
		f.m.opts.Logger.Warn("the saved compact range is unusable; reading from 0", "log", f.log.Description, "err", err)
		r = rangeFactory.NewEmptyRange(0)
	}
	if r.End() > h.Size {
		return // read past this head already (a newer one was verified)
	}
	start := r.End()
	began := time.Now()
	err = f.src.entries(ctx, start, h.Size, h, func(e Entry) error {
		if e.Index != r.End() {
			return fmt.Errorf("entry %d out of order (want %d)", e.Index, r.End())
		}
		if err := r.Append(e.LeafHash[:], nil); err != nil {
			return err
		}
		if e.Err != nil {
			f.alert(AlertBadEntry, "entry %d does not parse: %v", e.Index, e.Err)
		} else {
			f.watch(e)
		}
		if (r.End()-start)%f.m.opts.SaveEvery == 0 {
			f.st.setRange(r)
			f.st.save()
		}
		if r.End()%1024 == 0 {
			f.tick(start, r.End(), h.Size, began)
		}
		return nil
	})
	if err != nil {
		switch {
		case errors.Is(err, errBadEntry):
			f.alert(AlertBadEntry, "%v", err)
		case ctx.Err() == nil:
			f.m.opts.Logger.Warn("couldn't read entries", "log", f.log.Description, "from", r.End(), "err", err)
			now := f.m.opts.Now()
			if f.readFailingSince.IsZero() {
				f.readFailingSince, f.readFrom, f.readErr = now, r.End(), err
			}
			if now.Sub(f.readFailingSince) >= max(f.m.opts.Unreachable, 0) {
				f.alert(AlertUnreachable, "the entries from index %d, which tree head %d commits to, unreadable since %s, over %s: %v",
					f.readFrom, h.Size, f.readFailingSince.UTC().Format(time.RFC3339), max(f.m.opts.Unreachable, 0), f.readErr)
			}
		}
		f.st.setRange(r)
		f.st.save()
		return
	}
	f.readFailingSince = time.Time{}
	root, err := r.GetRootHash(nil)
	if h.Size == 0 {
		root = rfc6962.DefaultHasher.EmptyRoot()
	}
	if err != nil || Hash(root) != h.Root {
		// The entries do not make the tree the log signed: read them
		// again from the last range that matched a tree head.
		f.alert(AlertRootMismatch, "the %d entries read hash to %x, the tree head of size %d says %s", h.Size, root, h.Size, h.Root)
		f.st.resetToGood()
		f.st.save()
		return
	}
	f.st.setGood(r)
	f.m.metrics.read.WithLabelValues(f.log.Description).Set(float64(r.End()))
	if err := f.st.save(); err != nil {
		f.m.opts.Logger.Warn("couldn't save the monitor's state", "log", f.log.Description, "err", err)
	}
	if h.Size-start >= 10_000 || h.Size > start && time.Since(began) >= f.m.opts.ProgressEvery {
		f.progress(start, h.Size, h.Size, began) // the end of a catch-up, not of every poll
	}
}

// tick reports catch-up progress: a log line every ProgressEvery, and a
// line on Options.Progress (a terminal) every second.
func (f *follower) tick(start, at, end uint64, began time.Time) {
	now := time.Now()
	if f.m.opts.Progress != nil && now.Sub(f.lastTTY) >= time.Second {
		f.lastTTY = now
		rate, eta := rates(start, at, end, began)
		f.m.ttyMu.Lock()
		fmt.Fprintf(f.m.opts.Progress, "\r%s: %d of %d entries, %d/s, %d remaining, ETA %s   ", f.log.Description, at, end, int(rate), end-at, eta)
		f.m.ttyMu.Unlock()
	}
	if now.Sub(f.lastLog) >= f.m.opts.ProgressEvery {
		f.lastLog = now
		f.progress(start, at, end, began)
	}
}

func rates(start, at, end uint64, began time.Time) (float64, time.Duration) {
	d := time.Since(began).Seconds()
	rate := float64(at-start) / max(d, 1e-9)
	return rate, (time.Duration(float64(end-at)/max(rate, 1e-9)) * time.Second).Round(time.Second)
}

func (f *follower) progress(start, at, end uint64, began time.Time) {
	rate, eta := rates(start, at, end, began)
	f.m.opts.Logger.Info("monitor progress", "log", f.log.Description, "entries", at, "of", end,
		"rate_per_s", int(rate), "remaining", end-at, "eta", eta)
	if f.m.opts.Progress != nil && at == end {
		f.m.ttyMu.Lock()
		fmt.Fprintf(f.m.opts.Progress, "\r%s: %d entries read, %d/s%30s\n", f.log.Description, end, int(rate), "")
		f.m.ttyMu.Unlock()
	}
}

// watch reports e when a name of it is under a watched suffix.
func (f *follower) watch(e Entry) {
	for _, n := range e.Names {
		n = strings.ToLower(strings.TrimPrefix(n, "*."))
		for _, w := range f.m.opts.Watch {
			if n == w || strings.HasSuffix(n, "."+w) {
				idx := e.Index
				sum := sha256Hex(e.Cert)
				f.m.opts.Sink.Emit(Event{Time: f.m.opts.Now(), Log: f.log.Description, URL: f.log.URL, Event: "certificate",
					Index: &idx, SHA256: sum, Precert: e.Precert, Names: e.Names})
				return
			}
		}
	}
}

func sha256Hex(b []byte) string {
	h := sha256Sum(b)
	return hex.EncodeToString(h[:])
}

func msTime(ms uint64) time.Time { return time.UnixMilli(int64(ms)) }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func ctPublicKey(der []byte) (crypto.PublicKey, error) {
	pk, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	return pk, nil
}
