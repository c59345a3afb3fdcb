package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ctstage/ctstage/sctverify"
)

func TestReadHeads(t *testing.T) {
	id := strings.Repeat("ab", 32)
	root := strings.Repeat("01", 32)
	in := `{"log_id":"` + id + `","size":5,"root":"` + root + `","time":"2026-12-01T00:00:00Z"}` + "\n\n" +
		`{"log_id":"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=","size":6,"root":"` + root + `","time":"2026-12-01T00:00:01Z"}` + "\n"
	hs, err := ReadHeads(strings.NewReader(in), "gossip")
	if err != nil || len(hs) != 2 {
		t.Fatalf("%v, %d heads", err, len(hs))
	}
	if hs[0].LogID != hs[1].LogID || hs[0].Head.Size != 5 || hs[1].Head.Root[0] != 1 || hs[1].Source != "gossip line 3" {
		t.Errorf("%+v", hs)
	}
	for _, bad := range []string{
		`{"log_id":"abcd","size":1,"root":"` + root + `"}`,
		`{"log_id":"` + id + `","size":1,"root":"0102"}`,
		`{"log_id":"` + id + `","size":"x"}`,
		`not json`,
	} {
		if _, err := ReadHeads(strings.NewReader(bad), "bad"); err == nil {
			t.Errorf("took %s", bad)
		}
	}
}

// FuzzReadHeads: heads from other monitors never panic the parser.
func FuzzReadHeads(f *testing.F) {
	f.Add([]byte(`{"log_id":"` + strings.Repeat("ab", 32) + `","size":5,"root":"` + strings.Repeat("01", 32) + `","time":"2026-12-01T00:00:00Z"}`))
	f.Add([]byte("{}\n{\"size\":1}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := ReadHeads(bytes.NewReader(b), "fuzz")
		if err == nil {
			for _, h := range hs {
				if h.Source == "" {
					t.Fatal("a head without its source")
				}
			}
		}
	})
}

// fakeSource answers heads, and fails entry reads, as told.
type fakeSource struct {
	h          Head
	err        error
	entriesErr error
}

func (s *fakeSource) head(context.Context) (Head, error)                          { return s.h, s.err }
func (s *fakeSource) consistency(context.Context, Head, Head) error               { return nil }
func (s *fakeSource) included(context.Context, Hash, *uint64, Head) (bool, error) { return true, nil }
func (s *fakeSource) entries(context.Context, uint64, uint64, Head, func(Entry) error) error {
	return s.entriesErr
}

type sinkFunc func(Event)

func (f sinkFunc) Emit(e Event) { f(e) }

// TestAlertsOncePerCondition: an outage, or a stale head, is one alert
// however many polls see it; a new outage is another.
func TestAlertsOncePerCondition(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var got []Event
	m := &Monitor{opts: Options{Now: func() time.Time { return now }, Unreachable: time.Minute, MaxAge: time.Hour, RequestTimeout: time.Second,
		Sink: sinkFunc(func(e Event) { got = append(got, e) }), SaveEvery: 1, Logger: slog.New(slog.DiscardHandler)}, metrics: newMetrics(nil)}
	src := &fakeSource{err: errors.New("connection refused")}
	st, err := loadState(t.TempDir(), [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{m: m, log: &sctverify.Log{Description: "fake"}, src: src, st: st, seen: map[string]bool{}}
	for range 5 {
		f.poll(t.Context())
		now = now.Add(30 * time.Second)
		src.err = fmt.Errorf("timeout %d", len(got)) // the error changes
	}
	if len(got) != 1 || got[0].Alert != AlertUnreachable {
		t.Fatalf("one outage: %+v", got)
	}
	src.err, src.h = nil, Head{Size: 0, Root: Hash(rfc6962.DefaultHasher.EmptyRoot()), Time: now.Add(-2 * time.Hour)}
	for range 3 {
		f.poll(t.Context())
		now = now.Add(time.Minute)
	}
	if len(got) != 2 || got[1].Alert != AlertStale {
		t.Fatalf("a stale head: %+v", got)
	}
	src.err = errors.New("down again")
	for range 4 {
		f.poll(t.Context())
		now = now.Add(30 * time.Second)
	}
	if len(got) != 3 || got[2].Alert != AlertUnreachable {
		t.Fatalf("a second outage: %+v", got)
	}
}

// TestUnreadableEntries: a log whose tree heads verify but whose entries
// cannot be read (tiles that 404, get-entries that fail) is unreachable
// once that lasts the threshold: one alert per outage, none before it,
// and at the first failure with a negative threshold (--once).
func TestUnreadableEntries(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var got []Event
	newFollower := func(unreachable time.Duration, src source) *follower {
		m := &Monitor{opts: Options{Now: func() time.Time { return now }, Unreachable: unreachable, MaxAge: time.Hour, RequestTimeout: time.Second,
			Sink: sinkFunc(func(e Event) { got = append(got, e) }), SaveEvery: 1, Logger: slog.New(slog.DiscardHandler)}, metrics: newMetrics(nil)}
		st, err := loadState(t.TempDir(), [32]byte{2})
		if err != nil {
			t.Fatal(err)
		}
		return &follower{m: m, log: &sctverify.Log{Description: "fake"}, src: src, st: st, seen: map[string]bool{}}
	}
	// A head of size 1; its entry never comes.
	src := &fakeSource{h: Head{Size: 1, Root: Hash{9}, Time: now}, entriesErr: errors.New("tile/data/000.p/1: 404 Not Found")}
	f := newFollower(time.Minute, src)
	for i := range 4 {
		f.poll(t.Context())
		if i < 2 && len(got) != 0 {
			t.Fatalf("poll %d, %v into the failure: %+v", i, time.Duration(i)*30*time.Second, got)
		}
		now = now.Add(30 * time.Second)
		src.h.Time = now
		src.entriesErr = fmt.Errorf("attempt %d: 404", i) // the error changes
	}
	if len(got) != 1 || got[0].Alert != AlertUnreachable || !strings.Contains(got[0].Detail, "from index 0") {
		t.Fatalf("one outage of the entries: %+v", got)
	}
	// --once: the first failure is the alert.
	got = nil
	g := newFollower(-1, &fakeSource{h: Head{Size: 1, Root: Hash{9}, Time: now}, entriesErr: errors.New("get-entries: 500")})
	g.poll(t.Context())
	if len(got) != 1 || got[0].Alert != AlertUnreachable {
		t.Fatalf("--once: %+v", got)
	}
}
