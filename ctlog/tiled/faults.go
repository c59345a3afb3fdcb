package tiled

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The hooks of ctstage's faults (package ctlog/faults) that need the
// log's internals: a hold on publication (no_publish), a skewed SCT clock
// (sct_timestamp_skew) and older checkpoints (sth_rollback). None of them
// changes what is stored: Tessera goes on integrating and publishing; the
// hold only changes what readers are shown, and a release shows all of it.

// maxHistory bounds the checkpoints remembered for holds and rollbacks.
const maxHistory = 1024

// seenCheckpoint is a published checkpoint and when it was first read.
type seenCheckpoint struct {
	note []byte
	size uint64
	seen time.Time
}

// faultState is the log's hold, skew and checkpoint history.
type faultState struct {
	mu      sync.Mutex
	history []seenCheckpoint // by size, ascending
	hold    bool
	after   time.Duration // 0 with hold: held until released
	since   time.Time
	stop    context.CancelFunc
	skew    time.Duration
}

// remember records a checkpoint read from storage.
func (f *faultState) remember(note []byte, size uint64, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.history); n > 0 && f.history[n-1].size >= size {
		return
	}
	f.history = append(f.history, seenCheckpoint{note: note, size: size, seen: now})
	if len(f.history) > maxHistory {
		f.history = f.history[len(f.history)-maxHistory:]
	}
}

// held returns the checkpoint readers are shown under a hold at now.
func (f *faultState) held(now time.Time) (seenCheckpoint, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hold || len(f.history) == 0 {
		return seenCheckpoint{}, false
	}
	// The newest checkpoint seen before the hold, or, with a delay, the
	// newest seen at least the delay ago (but never one older than the
	// hold's start: readers saw that much already).
	cut := f.since
	if f.after > 0 && now.Add(-f.after).After(cut) {
		cut = now.Add(-f.after)
	}
	best := f.history[0]
	for _, c := range f.history {
		if !c.seen.After(cut) {
			best = c
		}
	}
	return best, true
}

// Hold stops the published checkpoint from advancing for readers: they
// are shown the checkpoint of when Hold was called, or, with after above
// zero, each checkpoint only once it is after old (an MMD violation when
// after exceeds the MMD). Submissions get their SCTs once sequenced, as
// a log that does not publish gives them. Release ends the hold.
func (l *Log) Hold(ctx context.Context, after time.Duration) error {
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	size, err := l.notePublished(cp)
	if err != nil {
		return err
	}
	f := &l.faults
	// The checkpoint held must be in the history even when no larger one
	// was read before (an empty log's, or the one read at start).
	f.remember(cp, size, time.Now())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stop != nil {
		f.stop()
	}
	f.hold, f.after, f.since = true, after, time.Now()
	// While held, the checkpoints Tessera publishes are read and
	// remembered, so that a delayed hold can show each in turn.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.stop = cancel
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
				if cp, err := l.reader.ReadCheckpoint(bg); err == nil {
					l.notePublished(cp)
				}
			}
		}
	}()
	return nil
}

// Release ends a hold: readers see the log as published again.
func (l *Log) Release() {
	f := &l.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stop != nil {
		f.stop()
		f.stop = nil
	}
	f.hold = false
}

// holding reports whether a hold is on.
func (l *Log) holding() bool {
	l.faults.mu.Lock()
	defer l.faults.mu.Unlock()
	return l.faults.hold
}

// SetSkew offsets the timestamps of new entries and their SCTs from the
// true time by d (negative: the past), as a log with a wrong clock does;
// 0 ends it. The SCTs are validly signed over the skewed timestamp, which
// the entry in the tree carries too.
func (l *Log) SetSkew(d time.Duration) {
	l.faults.mu.Lock()
	l.faults.skew = d
	l.faults.mu.Unlock()
}

func (l *Log) skew() time.Duration {
	l.faults.mu.Lock()
	defer l.faults.mu.Unlock()
	return l.faults.skew
}

// servedCheckpoint is the checkpoint readers are shown, and its size.
func (l *Log) servedCheckpoint(ctx context.Context) ([]byte, uint64, error) {
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, 0, err
	}
	size, err := l.notePublished(cp)
	if err != nil {
		return nil, 0, err
	}
	if h, ok := l.faults.held(time.Now()); ok {
		return h.note, h.size, nil
	}
	return cp, size, nil
}

// servedSize is the size of the tree readers are shown, read again only
// when the size known is below need.
func (l *Log) servedSize(ctx context.Context, need uint64) (uint64, error) {
	if h, ok := l.faults.held(time.Now()); ok {
		return h.size, nil
	}
	return l.publishedSize(ctx, need)
}

// OlderCheckpoint is a validly signed checkpoint of a smaller tree than
// the one readers are shown now: the newest such checkpoint this process
// read, or, when it read none, a fresh signature over the empty tree
// timestamped an hour ago. It is what a log that rolled back serves.
func (l *Log) OlderCheckpoint(ctx context.Context) ([]byte, error) {
	_, size, err := l.servedCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	l.faults.mu.Lock()
	var older []byte
	for _, c := range l.faults.history {
		if c.size < size {
			older = c.note
		}
	}
	l.faults.mu.Unlock()
	if older != nil {
		return older, nil
	}
	return l.signCheckpoint(0, emptyRoot(), time.Now().Add(-time.Hour))
}

// signCheckpoint signs a checkpoint of size and root at ts with the
// log's key: the checkpoint format Tessera writes.
func (l *Log) signCheckpoint(size uint64, root []byte, ts time.Time) ([]byte, error) {
	s, err := newCheckpointSigner(l.opts.Origin, l.opts.Key, func() time.Time { return ts })
	if err != nil {
		return nil, err
	}
	body := fmt.Sprintf("%s\n%d\n%s\n", l.opts.Origin, size, base64.StdEncoding.EncodeToString(root))
	sig, err := s.Sign([]byte(body))
	if err != nil {
		return nil, err
	}
	var kid [4]byte
	kid[0], kid[1], kid[2], kid[3] = byte(s.keyID>>24), byte(s.keyID>>16), byte(s.keyID>>8), byte(s.keyID)
	return []byte(body + "\n— " + l.opts.Origin + " " + base64.StdEncoding.EncodeToString(append(kid[:], sig...)) + "\n"), nil
}

func emptyRoot() []byte {
	h := sha256.Sum256(nil)
	return h[:]
}

// Head is the size and root hash of the newest published checkpoint.
func (l *Log) Head(ctx context.Context) (uint64, []byte, error) {
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return 0, nil, err
	}
	if _, err := l.notePublished(cp); err != nil {
		return 0, nil, err
	}
	body, _, _ := strings.Cut(string(cp), "\n\n")
	return parseCheckpointBody(body+"\n", l.opts.Origin)
}
