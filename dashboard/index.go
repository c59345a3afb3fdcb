package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ctstage/ctstage/monitor"
	"github.com/ctstage/ctstage/sctverify"
)

// record is one log entry in the search index.
type record struct {
	Shard     string
	Index     uint64
	Timestamp time.Time // the entry's, which is its SCT's
	// IntegratedBy is the time of the first tree head the index saw
	// covering the entry: integration happened after the head before it
	// and by this one. Zero for entries read in the catch-up at start,
	// whose integration time the index cannot tell.
	IntegratedBy time.Time
	Precert      bool
	Names        []string
	Serial       string // lower-case hex
	Issuer       string
	Subject      string
	NotBefore    time.Time
	NotAfter     time.Time
	SHA256       string // of the certificate or precertificate DER, lower-case hex
	ParseErr     string
}

// MergeDelay is IntegratedBy - Timestamp, or 0 when not known.
func (r *record) MergeDelay() time.Duration {
	if r.IntegratedBy.IsZero() {
		return 0
	}
	return max(r.IntegratedBy.Sub(r.Timestamp), 0)
}

// sample is one point of a shard's charts.
type sample struct {
	At          time.Time
	Size        uint64
	Submissions uint64        // the process's count of add-chain and add-pre-chain requests
	MergeDelay  time.Duration // median of the entries integrated since the last sample; 0 when none
}

// shardIndex is the index's view of one shard.
type shardIndex struct {
	log     *sctverify.Log
	reader  *monitor.Reader
	head    monitor.Head // the newest verified
	headErr string
	records []*record // by index: records[i].Index == i
	samples []sample
	pending []time.Duration // merge delays since the last sample
}

// index is the dashboard's search index, built asynchronously from the
// entries the logs integrated, so that the write path never waits for
// it: tree heads through each log's public API, entries in the process
// (direct) or through the API.
type index struct {
	log *slog.Logger
	hc  *http.Client
	// submissions reads a shard's count of submissions; nil: none.
	submissions func(shard string) uint64
	// direct, when set, reads an RFC 6962 shard's entries in the
	// process (ctlog.Server.ReadEntries) instead of through get-entries.
	direct func(ctx context.Context, shard string, start, end uint64, fn func(index uint64, leafInput, extraData []byte) error) error

	mu       sync.RWMutex
	shards   map[string]*shardIndex
	order    []string             // shard names, in log-list order
	bySuffix map[string][]*record // every name and each of its parent domains, lower case
	bySerial map[string][]*record
	bySHA    map[string][]*record
	total    int
}

func newIndex(log *slog.Logger, hc *http.Client) *index {
	return &index{log: log, hc: hc, shards: map[string]*shardIndex{},
		bySuffix: map[string][]*record{}, bySerial: map[string][]*record{}, bySHA: map[string][]*record{}}
}

// sampleEvery is the charts' resolution; chartSpan how far back they go.
const (
	sampleEvery = 10 * time.Second
	chartSpan   = time.Hour
)

// setLogs makes the index follow the logs of ll, keyed by shard name.
func (x *index) setLogs(logs map[string]*sctverify.Log, order []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, l := range logs {
		if _, ok := x.shards[name]; ok {
			continue
		}
		r, err := monitor.NewReader(l, x.hc)
		if err != nil {
			x.log.Warn("dashboard: can't read log", "shard", name, "err", err)
			continue
		}
		x.shards[name] = &shardIndex{log: l, reader: r}
	}
	x.order = slices.Clone(order)
}

// poll reads every shard's new entries once.
func (x *index) poll(ctx context.Context) {
	x.mu.RLock()
	names := slices.Clone(x.order)
	x.mu.RUnlock()
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() { x.pollShard(ctx, name) })
	}
	wg.Wait()
}

func (x *index) pollShard(ctx context.Context, name string) {
	x.mu.RLock()
	si := x.shards[name]
	x.mu.RUnlock()
	if si == nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	h, err := si.reader.Head(hctx)
	cancel()
	if err != nil {
		x.mu.Lock()
		si.headErr = err.Error()
		x.mu.Unlock()
		return
	}
	x.mu.RLock()
	read, prev := uint64(len(si.records)), si.head
	x.mu.RUnlock()
	live := !prev.Time.IsZero() // not the first read: integration times are known
	var batch []*record
	flush := func() {
		x.mu.Lock()
		for _, r := range batch {
			x.add(si, r)
		}
		x.mu.Unlock()
		batch = batch[:0]
	}
	if h.Size > read {
		each := func(e monitor.Entry) error {
			r := newRecord(name, e)
			if live {
				r.IntegratedBy = h.Time
			}
			if batch = append(batch, r); len(batch) == 1024 {
				flush()
			}
			return nil
		}
		if x.direct != nil && !si.log.Tiled {
			err = x.direct(ctx, name, read, h.Size, func(i uint64, leaf, extra []byte) error {
				return each(monitor.ParseEntry(i, leaf, extra))
			})
		} else {
			err = si.reader.Entries(ctx, read, h.Size, h, each)
		}
		flush()
		if err != nil && ctx.Err() == nil {
			x.log.Warn("dashboard: couldn't read entries", "shard", name, "from", len(si.records), "err", err)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	si.headErr = ""
	if uint64(len(si.records)) >= h.Size {
		si.head = h
	}
	now := time.Now()
	if n := len(si.samples); n == 0 || now.Sub(si.samples[n-1].At) >= sampleEvery {
		s := sample{At: now, Size: si.head.Size}
		if x.submissions != nil {
			s.Submissions = x.submissions(name)
		}
		if len(si.pending) > 0 {
			slices.Sort(si.pending)
			s.MergeDelay = si.pending[len(si.pending)/2]
			si.pending = si.pending[:0]
		}
		si.samples = append(si.samples, s)
		for len(si.samples) > 0 && now.Sub(si.samples[0].At) > chartSpan {
			si.samples = si.samples[1:]
		}
	}
}

// add indexes r; the caller holds mu.
func (x *index) add(si *shardIndex, r *record) {
	if r.Index != uint64(len(si.records)) {
		return // read twice after an error: already there
	}
	si.records = append(si.records, r)
	if d := r.MergeDelay(); d > 0 {
		si.pending = append(si.pending, d)
	}
	x.total++
	seen := map[string]bool{}
	for _, n := range r.Names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		for s := n; s != ""; {
			if !seen[s] {
				seen[s] = true
				x.bySuffix[s] = append(x.bySuffix[s], r)
			}
			_, rest, ok := strings.Cut(s, ".")
			if !ok {
				break
			}
			s = rest
		}
	}
	if r.Serial != "" {
		x.bySerial[r.Serial] = append(x.bySerial[r.Serial], r)
	}
	x.bySHA[r.SHA256] = append(x.bySHA[r.SHA256], r)
}

// newRecord parses what the pages show of an entry.
func newRecord(shard string, e monitor.Entry) *record {
	sum := sha256.Sum256(e.Cert)
	r := &record{Shard: shard, Index: e.Index, Timestamp: e.Timestamp, Precert: e.Precert, Names: e.Names, SHA256: hex.EncodeToString(sum[:])}
	if e.Err != nil {
		r.ParseErr = e.Err.Error()
	}
	// The reader parsed the certificate (the precertificate's TBS) once.
	f := e.Facts
	if f.Serial != nil {
		r.Serial = serialHex(f.Serial.Bytes())
	}
	if f.Issuer != nil {
		r.Issuer = f.Issuer.String()
	}
	if f.Subject != nil {
		r.Subject = f.Subject.String()
	}
	r.NotBefore, r.NotAfter = f.NotBefore, f.NotAfter
	return r
}

// serialHex is a serial number as ctstage's CA writes it: lower-case
// hex without leading zeroes.
func serialHex(b []byte) string {
	s := strings.TrimLeft(hex.EncodeToString(b), "0")
	if s == "" {
		return "0"
	}
	return s
}

// searchLimit bounds the results of one search.
const searchLimit = 500

// search finds the entries of q: a SHA-256 (64 hex digits), a serial
// (hex, with or without colons), or a DNS name, which matches the name
// and every name under it.
func (x *index) search(q string) (kind string, out []*record, more bool) {
	q = strings.ToLower(strings.TrimSpace(q))
	q = strings.TrimPrefix(q, "*.")
	x.mu.RLock()
	defer x.mu.RUnlock()
	var hits []*record
	switch {
	case len(q) == 64 && isHex(q):
		kind, hits = "SHA-256", x.bySHA[q]
	case isHex(strings.ReplaceAll(q, ":", "")) && len(x.bySerial[strings.TrimLeft(strings.ReplaceAll(q, ":", ""), "0")]) > 0:
		kind, hits = "serial", x.bySerial[strings.TrimLeft(strings.ReplaceAll(q, ":", ""), "0")]
	default:
		kind, hits = "name", x.bySuffix[strings.TrimSuffix(q, ".")]
	}
	// Newest first.
	out = make([]*record, 0, min(len(hits), searchLimit))
	for i := len(hits) - 1; i >= 0 && len(out) < searchLimit; i-- {
		out = append(out, hits[i])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Timestamp.After(out[j].Timestamp) })
	return kind, out, len(hits) > searchLimit
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// related are the entries of the same certificate: the same serial and
// issuer (a precertificate and its final certificate), in every shard.
func (x *index) related(r *record) []*record {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []*record
	for _, o := range x.bySerial[r.Serial] {
		if o.Issuer == r.Issuer {
			out = append(out, o)
		}
	}
	return out
}

// page is entries [from, from+n) of a shard counted from the newest.
func (x *index) page(shard string, from, n int) (out []*record, total int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	si := x.shards[shard]
	if si == nil {
		return nil, 0
	}
	total = len(si.records)
	for i := total - 1 - from; i >= 0 && len(out) < n; i-- {
		out = append(out, si.records[i])
	}
	return out, total
}

// shardStats is what the overview shows of a shard's index.
type shardStats struct {
	Head     monitor.Head
	HeadErr  string
	Indexed  int
	Rate     float64 // entries integrated per second over the last minute
	Subs     float64 // submissions per second to this process over the last minute
	P50, P99 time.Duration
	Samples  []sample
}

func (x *index) stats(shard string, now time.Time) (shardStats, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	si := x.shards[shard]
	if si == nil {
		return shardStats{}, false
	}
	st := shardStats{Head: si.head, HeadErr: si.headErr, Indexed: len(si.records), Samples: slices.Clone(si.samples)}
	// The rate from the samples of the last minute.
	for i := len(si.samples) - 1; i > 0; i-- {
		if now.Sub(si.samples[i-1].At) > time.Minute {
			a, b := si.samples[i-1], si.samples[len(si.samples)-1]
			if d := b.At.Sub(a.At).Seconds(); d > 0 {
				st.Rate = float64(b.Size-a.Size) / d
				st.Subs = float64(b.Submissions-a.Submissions) / d
			}
			break
		}
	}
	// Merge delays of the entries integrated in the last hour.
	var ds []time.Duration
	for i := len(si.records) - 1; i >= 0; i-- {
		r := si.records[i]
		if r.IntegratedBy.IsZero() || now.Sub(r.IntegratedBy) > chartSpan {
			break
		}
		ds = append(ds, r.MergeDelay())
	}
	if len(ds) > 0 {
		slices.Sort(ds)
		st.P50, st.P99 = ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)]
	}
	return st, true
}

// lookup is the record of shard at idx.
func (x *index) lookup(shard string, idx uint64) (*record, *shardIndex) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	si := x.shards[shard]
	if si == nil || idx >= uint64(len(si.records)) {
		return nil, nil
	}
	return si.records[idx], si
}

// entryDER reads the DER of entry idx of shard from the log again (the
// index keeps no certificates).
func (x *index) entryDER(ctx context.Context, shard string, idx uint64) ([]byte, error) {
	x.mu.RLock()
	si := x.shards[shard]
	var h monitor.Head
	if si != nil {
		h = si.head
	}
	x.mu.RUnlock()
	if si == nil || idx >= h.Size {
		return nil, errNotIndexed
	}
	var der []byte
	var err error
	if x.direct != nil && !si.log.Tiled {
		err = x.direct(ctx, shard, idx, idx+1, func(i uint64, leaf, extra []byte) error {
			if e := monitor.ParseEntry(i, leaf, extra); e.Index == idx {
				der = e.Cert
			}
			return nil
		})
	} else {
		err = si.reader.Entries(ctx, idx, idx+1, h, func(e monitor.Entry) error {
			if e.Index == idx {
				der = e.Cert
			}
			return nil
		})
	}
	if err == nil && der == nil {
		err = errNotIndexed
	}
	return der, err
}
