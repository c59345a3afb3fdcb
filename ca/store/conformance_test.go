package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage"
)

// Two test issuers, told apart by their subject key identifiers.
var (
	issuerA = []byte("issuer-A-key-id-20b.")
	issuerB = []byte("issuer-B-key-id-20b.")
)

var testKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

// precert signs a small certificate for serial (hex) under an issuer with
// subject key identifier issuerKeyID, valid until notAfter. The store reads
// only its serial, authority key identifier and NotAfter.
func precert(t testing.TB, serial string, issuerKeyID []byte, notAfter time.Time) []byte {
	t.Helper()
	n, ok := new(big.Int).SetString(serial, 16)
	if !ok {
		t.Fatalf("bad test serial %q", serial)
	}
	parent := &x509.Certificate{Subject: pkix.Name{CommonName: "test issuer"}, SubjectKeyId: issuerKeyID}
	tmpl := &x509.Certificate{SerialNumber: n, NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter,
		DNSNames: []string{"example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, testKey().Public(), testKey())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// farFuture is a NotAfter that no test clock reaches.
var farFuture = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

func record(t testing.TB, serial string, issuerKeyID []byte, notAfter time.Time) *Record {
	t.Helper()
	return &Record{Serial: serial, Profile: "classic", Precertificate: precert(t, serial, issuerKeyID, notAfter), Created: time.UnixMilli(1000)}
}

func mustAdd(t testing.TB, s Store, recs ...*Record) {
	t.Helper()
	for _, r := range recs {
		if err := s.AddPrecertificate(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func testSCTs(n int) []SCT {
	var out []SCT
	for i := range n {
		out = append(out, SCT{LogID: make([]byte, 32), LogURL: fmt.Sprintf("http://log%d/", i), Timestamp: uint64(i + 1), SCT: []byte{byte(i)}})
	}
	return out
}

// conformance is one behaviour every Store has. reopen closes the store
// and opens it again on the same data, as after a restart.
var conformance = []struct {
	name string
	run  func(t *testing.T, s Store, reopen func() Store)
}{
	{"add, complete and get", func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		notAfter := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
		r := record(t, "abc", issuerA, notAfter)
		mustAdd(t, s, r)
		got, err := s.Get(ctx, "abc")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Precertificate) != string(r.Precertificate) || got.Certificate != nil || got.Revocation != nil ||
			string(got.IssuerKeyID) != string(issuerA) || !got.NotAfter.Equal(notAfter) || !got.Created.Equal(r.Created) {
			t.Errorf("Get after AddPrecertificate = %+v", got)
		}
		issued := time.UnixMilli(2000)
		if err := s.AddCertificate(ctx, "abc", []byte("cert"), testSCTs(3), issued, false); err != nil {
			t.Fatal(err)
		}
		s = reopen()
		got, err = s.Get(ctx, "abc")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Certificate) != "cert" || !got.Issued.Equal(issued) || len(got.SCTs) != 3 ||
			got.SCTs[2].LogURL != "http://log2/" || got.SCTs[2].Timestamp != 3 || len(got.SCTs[2].LogID) != 32 {
			t.Errorf("Get after AddCertificate and reopening = %+v", got)
		}
	}},
	{"unknown serial", func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		if _, err := s.Get(ctx, "ffff"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get: %v, want ErrNotFound", err)
		}
		if err := s.AddCertificate(ctx, "ffff", []byte("c"), nil, time.UnixMilli(1), false); !errors.Is(err, ErrNotFound) {
			t.Errorf("AddCertificate: %v, want ErrNotFound", err)
		}
		if err := s.Revoke(ctx, "ffff", 1, time.UnixMilli(1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Revoke: %v, want ErrNotFound", err)
		}
	}},
	{"duplicates", func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		r := record(t, "d0", issuerA, farFuture)
		mustAdd(t, s, r)
		if err := s.AddPrecertificate(ctx, r); !errors.Is(err, ErrDuplicate) {
			t.Errorf("second AddPrecertificate: %v, want ErrDuplicate", err)
		}
		if err := s.AddCertificate(ctx, "d0", []byte("one"), testSCTs(1), time.UnixMilli(1), false); err != nil {
			t.Fatal(err)
		}
		if err := s.AddCertificate(ctx, "d0", []byte("two"), testSCTs(2), time.UnixMilli(2), false); !errors.Is(err, ErrDuplicate) {
			t.Errorf("second AddCertificate: %v, want ErrDuplicate", err)
		}
		if got, err := s.Get(ctx, "d0"); err != nil || string(got.Certificate) != "one" || len(got.SCTs) != 1 {
			t.Errorf("after the refused AddCertificate: %+v, %v", got, err)
		}
	}},
	{"bad precertificate refused", func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		noAKI := record(t, "e0", nil, farFuture)
		wrongSerial := record(t, "f0", issuerA, farFuture)
		wrongSerial.Serial = "10"
		for name, r := range map[string]*Record{
			"not DER":      {Serial: "c0", Profile: "classic", Precertificate: []byte("pre")},
			"no AKI":       noAKI,
			"wrong serial": wrongSerial,
		} {
			if err := s.AddPrecertificate(ctx, r); err == nil || errors.Is(err, ErrDuplicate) {
				t.Errorf("%s: AddPrecertificate = %v, want a plain error", name, err)
			}
			if _, err := s.Get(ctx, r.Serial); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: stored anyway (%v)", name, err)
			}
		}
	}},
	{"failed certificate leaves nothing", func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		mustAdd(t, s, record(t, "b0", issuerA, farFuture))
		bad := append(testSCTs(1), SCT{LogID: nil, LogURL: "http://b/", Timestamp: 2, SCT: []byte{2}}) // log_id NOT NULL
		if err := s.AddCertificate(ctx, "b0", []byte("c"), bad, time.UnixMilli(2), false); err == nil || errors.Is(err, ErrDuplicate) {
			t.Fatalf("AddCertificate with a NULL log ID: %v, want a plain error", err)
		}
		if r, err := s.Get(ctx, "b0"); err != nil || r.Certificate != nil || len(r.SCTs) != 0 {
			t.Errorf("after the failed AddCertificate: %+v, %v", r, err)
		}
		if err := s.AddCertificate(ctx, "b0", []byte("c"), testSCTs(2), time.UnixMilli(2), false); err != nil {
			t.Errorf("AddCertificate again: %v", err)
		}
	}},
	{"revoke", func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		mustAdd(t, s, record(t, "1a", issuerA, farFuture))
		if err := s.AddCertificate(ctx, "1a", []byte("c"), testSCTs(2), time.UnixMilli(2), false); err != nil {
			t.Fatal(err)
		}
		at := time.UnixMilli(1_700_000_000_123)
		if err := s.Revoke(ctx, "1a", 1, at); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, "1a", 4, at.Add(time.Hour)); !errors.Is(err, ErrAlreadyRevoked) {
			t.Errorf("second Revoke: %v, want ErrAlreadyRevoked", err)
		}
		s = reopen()
		r, err := s.Get(ctx, "1a")
		if err != nil {
			t.Fatal(err)
		}
		if want := (Revocation{Serial: "1a", Reason: 1, At: at}); r.Revocation == nil || *r.Revocation != want {
			t.Errorf("revocation after reopening = %+v, want %+v (the first one)", r.Revocation, want)
		}
	}},
	{"revoke a precertificate alone", func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		mustAdd(t, s, record(t, "2a", issuerA, farFuture))
		if err := s.Revoke(ctx, "2a", 0, time.UnixMilli(5)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddCertificate(ctx, "2a", []byte("c"), nil, time.UnixMilli(6), false); err != nil {
			t.Errorf("AddCertificate after Revoke: %v", err)
		}
		if r, err := s.Get(ctx, "2a"); err != nil || r.Revocation == nil || r.Revocation.Reason != 0 {
			t.Errorf("Get = %+v, %v", r, err)
		}
	}},
	{"list revoked", func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
		mustAdd(t, s,
			record(t, "a1", issuerA, farFuture),           // revoked second
			record(t, "a2", issuerA, farFuture),           // revoked first
			record(t, "a3", issuerA, farFuture),           // not revoked
			record(t, "a4", issuerA, now.Add(-time.Hour)), // revoked, expired
			record(t, "a5", issuerA, now),                 // revoked, valid through this second
			record(t, "b1", issuerB, farFuture),           // revoked, other issuer
		)
		for _, rv := range []Revocation{
			{"a2", 1, time.UnixMilli(1000)}, {"a1", 4, time.UnixMilli(2000)}, {"a4", 5, time.UnixMilli(3000)},
			{"a5", 3, time.UnixMilli(4000)}, {"b1", 9, time.UnixMilli(5000)},
		} {
			if err := s.Revoke(ctx, rv.Serial, rv.Reason, rv.At); err != nil {
				t.Fatal(err)
			}
		}
		s = reopen()
		for _, tc := range []struct {
			issuer []byte
			now    time.Time
			want   []string
		}{
			{issuerA, now, []string{"a2 1", "a1 4", "a5 3"}},
			{issuerA, now.Add(999 * time.Millisecond), []string{"a2 1", "a1 4", "a5 3"}},
			{issuerA, now.Add(time.Second), []string{"a2 1", "a1 4"}},
			{issuerA, now.Add(-2 * time.Hour), []string{"a2 1", "a1 4", "a4 5", "a5 3"}},
			{issuerB, now, []string{"b1 9"}},
			{[]byte("no such issuer"), now, nil},
		} {
			got, err := s.Revoked(ctx, tc.issuer, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, fmt.Sprintf("%s %d", r.Serial, r.Reason))
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("Revoked(%q, %v) = %v, want %v", tc.issuer, tc.now, ids, tc.want)
			}
			if len(got) > 0 && got[0].Serial == "a2" && !got[0].At.Equal(time.UnixMilli(1000)) {
				t.Errorf("a2 revoked at %v, want %v", got[0].At, time.UnixMilli(1000))
			}
		}
	}},
	{"final submission owed", func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		mustAdd(t, s, record(t, "5a", issuerA, farFuture), record(t, "5b", issuerA, farFuture),
			record(t, "5c", issuerA, farFuture), record(t, "5d", issuerA, farFuture))
		for _, c := range []struct {
			serial string
			at     int64
			owed   bool
		}{{"5a", 30, true}, {"5b", 10, true}, {"5c", 20, false}, {"5d", 40, true}} {
			if err := s.AddCertificate(ctx, c.serial, []byte("cert-"+c.serial), testSCTs(2), time.UnixMilli(c.at), c.owed); err != nil {
				t.Fatal(err)
			}
		}
		owed := func(limit int) []string {
			t.Helper()
			recs, err := s.FinalOwed(ctx, limit)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range recs {
				if !r.FinalOwed || string(r.Certificate) != "cert-"+r.Serial || len(r.SCTs) != 2 || string(r.IssuerKeyID) != string(issuerA) {
					t.Errorf("owed record %+v lacks what resubmission needs", r)
				}
				out = append(out, r.Serial)
			}
			return out
		}
		s = reopen()
		if got, want := owed(10), []string{"5b", "5a", "5d"}; !slices.Equal(got, want) {
			t.Errorf("FinalOwed = %v, want %v (earliest issued first)", got, want)
		}
		if got, want := owed(2), []string{"5b", "5a"}; !slices.Equal(got, want) {
			t.Errorf("FinalOwed(2) = %v, want %v", got, want)
		}
		if r, err := s.Get(ctx, "5c"); err != nil || r.FinalOwed {
			t.Errorf("Get(5c) = %+v, %v; want a record owing nothing", r, err)
		}
		for _, serial := range []string{"5a", "5a", "5c", "ffff"} { // idempotent
			if err := s.FinalSubmitted(ctx, serial); err != nil {
				t.Errorf("FinalSubmitted(%s): %v", serial, err)
			}
		}
		s = reopen()
		if got, want := owed(10), []string{"5b", "5d"}; !slices.Equal(got, want) {
			t.Errorf("FinalOwed after FinalSubmitted(5a) = %v, want %v", got, want)
		}
		if r, err := s.Get(ctx, "5a"); err != nil || r.FinalOwed || string(r.Certificate) != "cert-5a" {
			t.Errorf("Get(5a) after FinalSubmitted = %+v, %v", r, err)
		}
	}},
	{"issued, paged in issue order", func(t *testing.T, s Store, reopen func() Store) {
		ctx := context.Background()
		mustAdd(t, s, record(t, "7a", issuerA, farFuture), record(t, "7b", issuerA, farFuture),
			record(t, "7c", issuerB, farFuture), record(t, "7d", issuerA, farFuture), record(t, "7e", issuerA, farFuture))
		for _, c := range []struct {
			serial string
			at     int64
		}{{"7a", 30}, {"7b", 10}, {"7c", 30}, {"7d", 20}} { // 7e: a precertificate only
			if err := s.AddCertificate(ctx, c.serial, []byte("cert-"+c.serial), testSCTs(2), time.UnixMilli(c.at), false); err != nil {
				t.Fatal(err)
			}
		}
		s = reopen()
		page := func(since int64, after string, limit int) []string {
			t.Helper()
			recs, err := s.Issued(ctx, time.UnixMilli(since), after, limit)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range recs {
				if string(r.Certificate) != "cert-"+r.Serial || len(r.SCTs) != 2 {
					t.Errorf("issued record %+v lacks its certificate or SCTs", r)
				}
				out = append(out, r.Serial)
			}
			return out
		}
		for _, tc := range []struct {
			since int64
			after string
			limit int
			want  []string
		}{
			{0, "", 10, []string{"7b", "7d", "7a", "7c"}},
			{0, "", 2, []string{"7b", "7d"}},
			{20, "7d", 10, []string{"7a", "7c"}},
			{30, "7a", 10, []string{"7c"}},
			{30, "7c", 10, nil},
		} {
			if got := page(tc.since, tc.after, tc.limit); !slices.Equal(got, tc.want) {
				t.Errorf("Issued(%d, %q, %d) = %v, want %v", tc.since, tc.after, tc.limit, got, tc.want)
			}
		}
	}},
	{"failed certificate owes nothing", func(t *testing.T, s Store, _ func() Store) {
		ctx := context.Background()
		mustAdd(t, s, record(t, "6a", issuerA, farFuture))
		bad := append(testSCTs(1), SCT{LogID: nil, LogURL: "http://b/", Timestamp: 2, SCT: []byte{2}})
		if err := s.AddCertificate(ctx, "6a", []byte("c"), bad, time.UnixMilli(2), true); err == nil {
			t.Fatal("AddCertificate with a NULL log ID succeeded")
		}
		if recs, err := s.FinalOwed(ctx, 10); err != nil || len(recs) != 0 {
			t.Errorf("FinalOwed after a failed AddCertificate = %d records, %v; want none", len(recs), err)
		}
	}},
	{"canceled context writes nothing", func(t *testing.T, s Store, _ func() Store) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.AddPrecertificate(ctx, record(t, "c0", issuerA, farFuture)); !errors.Is(err, context.Canceled) {
			t.Errorf("AddPrecertificate with a canceled context: %v", err)
		}
		if _, err := s.Get(context.Background(), "c0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the canceled write was stored: %v", err)
		}
	}},
}

// runConformance runs every conformance case on a fresh store from open;
// open's second result reopens the same data.
func runConformance(t *testing.T, open func(t *testing.T) (Store, func() Store)) {
	for _, tc := range conformance {
		t.Run(tc.name, func(t *testing.T) {
			s, reopen := open(t)
			tc.run(t, s, reopen)
		})
	}
}

func TestConformance(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		runConformance(t, func(t *testing.T) (Store, func() Store) {
			path := filepath.Join(t.TempDir(), "ca.db")
			return reopener(t, func() (Store, error) { return OpenSQLite(context.Background(), path) })
		})
	})
	t.Run("mysql", func(t *testing.T) {
		runConformance(t, func(t *testing.T) (Store, func() Store) {
			dsn, err := storage.MySQLDSN(testenv.MySQL(t))
			if err != nil {
				t.Fatal(err)
			}
			return reopener(t, func() (Store, error) { return OpenMySQL(context.Background(), dsn) })
		})
	})
}

// reopener opens a store and returns it with a function that closes the
// current one and opens another; the last one is closed when the test ends.
func reopener(t *testing.T, open func() (Store, error)) (Store, func() Store) {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, func() Store {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = open(); err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestMySQLRefusesNewerSchema checks that a ca_schema version above this
// ctstage's is refused, and that opening twice migrates once.
func TestMySQLRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn, err := storage.MySQLDSN(testenv.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = OpenMySQL(ctx, dsn); err != nil {
		t.Fatalf("second OpenMySQL: %v", err)
	}
	var v int
	if err := s.db.QueryRowContext(ctx, "SELECT version FROM ca_schema").Scan(&v); err != nil || v != len(mysqlMigrations) {
		t.Errorf("ca_schema version %d (%v), want %d", v, err, len(mysqlMigrations))
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE ca_schema SET version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := OpenMySQL(ctx, dsn); err == nil {
		s.Close()
		t.Fatal("OpenMySQL on a newer schema succeeded")
	}
}
