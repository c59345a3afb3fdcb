package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ca.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenSQLite(ctx, path); err == nil {
		t.Fatal("OpenSQLite on a newer schema succeeded")
	}
}

// gate makes the writer wait, before its next batch, until n requests are
// queued behind the one it took, so that the test knows the batch. The
// channel returned is closed once the writer has taken that first request.
func gate(t *testing.T, s *SQLite, n int) <-chan struct{} {
	t.Helper()
	var once sync.Once
	entered := make(chan struct{})
	s.w.c.BeforeBatch = func() {
		once.Do(func() {
			close(entered)
			deadline := time.Now().Add(10 * time.Second)
			for s.w.c.Waiting() < n && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		})
	}
	return entered
}

// queueInOrder starts each call in a goroutine once the previous one is
// queued (the first one taken by the writer: entered), so that they reach
// the writer in order, and returns their errors once all have returned.
func queueInOrder(t *testing.T, s *SQLite, entered <-chan struct{}, calls ...func() error) []error {
	t.Helper()
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		before := s.w.c.Waiting()
		wg.Go(func() { errs[i] = call() })
		if i == 0 {
			<-entered
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for s.w.c.Waiting() == before && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	wg.Wait()
	return errs
}

func openTest(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func preRecord(t testing.TB, serial string) *Record {
	return record(t, serial, issuerA, farFuture)
}

// TestSQLiteGroupCommit writes from many goroutines at once and checks
// that every write is stored and that they shared commits.
func TestSQLiteGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t)
	const n = 64
	recs := make([]*Record, n)
	for i := range n {
		recs[i] = preRecord(t, fmt.Sprintf("%x", 0x1000+i))
	}
	gate(t, s, n-1)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			serial := recs[i].Serial
			if err := s.AddPrecertificate(ctx, recs[i]); err != nil {
				errs <- err
				return
			}
			errs <- s.AddCertificate(ctx, serial, []byte("cert-"+serial), []SCT{{LogID: make([]byte, 32), LogURL: "http://a/", Timestamp: uint64(i), SCT: []byte{1}}}, time.UnixMilli(2), false)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if c := s.w.c.Commits(); c >= 2*n || c < 2 {
		t.Errorf("%d commits for %d writes, want them grouped", c, 2*n)
	} else {
		t.Logf("%d commits for %d writes", c, 2*n)
	}
	// Another connection to the file, as after a restart, finds them all.
	other, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range n {
		serial := fmt.Sprintf("%x", 0x1000+i)
		r, err := other.Get(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Certificate) != "cert-"+serial || len(r.SCTs) != 1 || r.SCTs[0].Timestamp != uint64(i) {
			t.Errorf("record %s = %+v", serial, r)
		}
	}
}

// TestSQLiteBatchErrorIsolation puts failing writes in one batch with good
// ones: each failure is its caller's alone, a failed write leaves nothing
// behind (its savepoint is rolled back), and the good writes, including
// ones that depend on writes earlier in the batch, are committed.
func TestSQLiteBatchErrorIsolation(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	goodSCTs := []SCT{{LogID: make([]byte, 32), LogURL: "http://a/", Timestamp: 1, SCT: []byte{1}}}
	badSCTs := append(slices.Clone(goodSCTs), SCT{LogID: nil, LogURL: "http://b/", Timestamp: 2, SCT: []byte{2}}) // log_id NOT NULL
	aa, bb := preRecord(t, "aa"), preRecord(t, "bb")
	calls := []func() error{
		func() error { return s.AddPrecertificate(ctx, aa) },
		func() error { return s.AddPrecertificate(ctx, aa) },
		func() error { return s.AddCertificate(ctx, "ff", []byte("c"), nil, time.UnixMilli(2), false) },
		func() error { return s.Revoke(ctx, "aa", 1, time.UnixMilli(3)) },
		func() error { return s.Revoke(ctx, "aa", 4, time.UnixMilli(4)) },
		func() error { return s.Revoke(ctx, "ff", 1, time.UnixMilli(4)) },
		func() error { return s.AddPrecertificate(ctx, bb) },
		func() error { return s.AddCertificate(ctx, "bb", []byte("cert-bb"), badSCTs, time.UnixMilli(2), false) },
		func() error {
			return s.AddCertificate(ctx, "aa", []byte("cert-aa"), goodSCTs, time.UnixMilli(2), false)
		},
	}
	entered := gate(t, s, len(calls)-1)
	errs := queueInOrder(t, s, entered, calls...)
	if c := s.w.c.Commits(); c != 1 {
		t.Errorf("%d commits, want the batch in 1", c)
	}
	for i, check := range []func(error) bool{
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.Is(err, ErrDuplicate) },
		func(err error) bool { return errors.Is(err, ErrNotFound) },
		func(err error) bool { return err == nil },
		func(err error) bool { return errors.Is(err, ErrAlreadyRevoked) },
		func(err error) bool { return errors.Is(err, ErrNotFound) },
		func(err error) bool { return err == nil },
		func(err error) bool { return err != nil && !errors.Is(err, ErrDuplicate) },
		func(err error) bool { return err == nil },
	} {
		if !check(errs[i]) {
			t.Errorf("write %d: unexpected result %v", i, errs[i])
		}
	}
	if r, err := s.Get(ctx, "aa"); err != nil || string(r.Certificate) != "cert-aa" || len(r.SCTs) != 1 {
		t.Errorf("aa: %+v, %v", r, err)
	}
	if r, err := s.Get(ctx, "aa"); err != nil || r.Revocation == nil || r.Revocation.Reason != 1 {
		t.Errorf("aa's revocation, written in the batch that stored it: %+v, %v", r, err)
	}
	// bb's failed AddCertificate left neither the certificate nor an SCT;
	// a correct one succeeds.
	if r, err := s.Get(ctx, "bb"); err != nil || r.Certificate != nil || len(r.SCTs) != 0 {
		t.Errorf("bb after the failed AddCertificate: %+v, %v", r, err)
	}
	if err := s.AddCertificate(ctx, "bb", []byte("cert-bb"), goodSCTs, time.UnixMilli(2), false); err != nil {
		t.Errorf("AddCertificate(bb) again: %v", err)
	}
}

// TestSQLiteDurable checks that the writer commits with synchronous=FULL in
// WAL mode, and that a write is visible to another connection as soon as
// it returns nil.
func TestSQLiteDurable(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t)
	var sync, mode string
	if err := s.w.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := s.w.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if sync != "2" || mode != "wal" {
		t.Errorf("writer connection: synchronous=%s journal_mode=%s, want 2 (FULL) and wal", sync, mode)
	}
	reader, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for i := range 20 {
		serial := fmt.Sprintf("%x", 0x100+i)
		if err := s.AddPrecertificate(ctx, preRecord(t, serial)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM issuances WHERE serial = ?", serial).Scan(&n); err != nil || n != 1 {
			t.Fatalf("after AddPrecertificate(%s) returned: %d rows, %v", serial, n, err)
		}
	}
}

// TestSQLiteCanceledAndClosed checks that a write whose context has ended
// is not made, and that writes racing Close either succeed and are stored
// or fail with ErrClosed.
func TestSQLiteCanceledAndClosed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ca.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.AddPrecertificate(canceled, preRecord(t, "cc")); !errors.Is(err, context.Canceled) {
		t.Errorf("AddPrecertificate with a canceled context: %v", err)
	}
	const n = 200
	results := make([]error, n)
	recs := make([]*Record, n)
	for i := range n {
		recs[i] = preRecord(t, fmt.Sprintf("%x", 0x1000+i))
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = s.AddPrecertificate(ctx, recs[i]) })
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, "cc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the canceled write was stored: %v", err)
	}
	stored := 0
	for i, werr := range results {
		_, gerr := s.Get(ctx, fmt.Sprintf("%x", 0x1000+i))
		switch {
		case werr == nil && gerr == nil:
			stored++
		case errors.Is(werr, ErrClosed) && errors.Is(gerr, ErrNotFound):
		default:
			t.Errorf("write %d: %v, then Get: %v", i, werr, gerr)
		}
	}
	t.Logf("%d of %d writes racing Close were stored", stored, n)
}
