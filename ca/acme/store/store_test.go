package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
	"github.com/ctstage/ctstage/storage"
)

var (
	_ Store           = (*SQLite)(nil)
	_ Store           = (*MySQL)(nil)
	_ ratelimit.Store = (*SQLite)(nil)
	_ ratelimit.Store = (*MySQL)(nil)
)

type testStore interface {
	Store
	ratelimit.Store
}

// storeKinds open a fresh store of each kind; reopen opens the same one
// again (after the first is closed).
var storeKinds = []struct {
	name string
	open func(t *testing.T) (s testStore, reopen func() (testStore, error))
}{
	{"SQLite", func(t *testing.T) (testStore, func() (testStore, error)) {
		path := filepath.Join(t.TempDir(), "acme.db")
		reopen := func() (testStore, error) { return OpenSQLite(context.Background(), path) }
		s, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		return s, reopen
	}},
	{"MySQL", func(t *testing.T) (testStore, func() (testStore, error)) {
		dsn, err := storage.MySQLDSN(testenv.MySQL(t))
		if err != nil {
			t.Fatal(err)
		}
		reopen := func() (testStore, error) { return OpenMySQL(context.Background(), dsn) }
		s, err := reopen()
		if err != nil {
			t.Fatal(err)
		}
		return s, reopen
	}},
}

// TestStore runs the same contract against every Store: lookups, the
// sentinel errors, whole-object updates (an unchanged update included),
// the atomicity of CreateOrder, case-sensitive keys, rate-limit events,
// and persistence across a reopen.
func TestStore(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s, reopen := kind.open(t)
			defer func() { s.Close() }()
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Millisecond)

			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			a := &Account{ID: "acctAbc", Key: &jose.JSONWebKey{Key: key.Public(), Algorithm: "ES256"},
				Thumbprint: "tpAbc", Status: StatusValid, Created: now, IP: "127.0.0.1"}
			if err := s.CreateAccount(ctx, a); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateAccount(ctx, &Account{ID: "other", Thumbprint: "tpAbc"}); !errors.Is(err, ErrConflict) {
				t.Errorf("CreateAccount with a taken thumbprint: %v, want ErrConflict", err)
			}
			// Identifiers are base64url: case matters.
			if err := s.CreateAccount(ctx, &Account{ID: "ACCTABC", Thumbprint: "TPABC", Status: StatusValid}); err != nil {
				t.Errorf("CreateAccount differing only in case: %v", err)
			}
			if got, err := s.AccountByThumbprint(ctx, "tpAbc"); err != nil || got.ID != "acctAbc" || !got.Key.Key.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
				t.Errorf("AccountByThumbprint: %+v, %v", got, err)
			}
			if _, err := s.Account(ctx, "acctabc"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Account of another case: %v, want ErrNotFound", err)
			}
			if err := s.UpdateAccount(ctx, a); err != nil {
				t.Errorf("UpdateAccount unchanged: %v", err)
			}
			a.Contact = []string{"mailto:a@example.com"}
			if err := s.UpdateAccount(ctx, a); err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateAccount(ctx, &Account{ID: "acctAbc", Thumbprint: "TPABC", Rev: a.Rev}); !errors.Is(err, ErrConflict) {
				t.Errorf("UpdateAccount to a taken thumbprint: %v, want ErrConflict", err)
			}
			if err := s.UpdateAccount(ctx, &Account{ID: "nobody", Thumbprint: "x"}); !errors.Is(err, ErrNotFound) {
				t.Errorf("UpdateAccount of no account: %v, want ErrNotFound", err)
			}
			// Compare-and-swap: an update from a revision that is no
			// longer the stored one changes nothing.
			stale := *a
			stale.Rev--
			stale.Contact = []string{"mailto:stale@example.com"}
			if err := s.UpdateAccount(ctx, &stale); !errors.Is(err, ErrStale) {
				t.Errorf("UpdateAccount from an old revision: %v, want ErrStale", err)
			}
			if got, err := s.Account(ctx, a.ID); err != nil || got.Rev != a.Rev || got.Contact[0] != "mailto:a@example.com" {
				t.Errorf("after the stale update: %+v, %v; want rev %d unchanged", got, err, a.Rev)
			}

			az := &Authz{ID: "az1", AccountID: a.ID, Identifier: Identifier{Type: "dns", Value: "example.com"},
				Status: StatusPending, Expires: now.Add(time.Hour), Challenges: []Challenge{{Type: "http-01", Token: "tok", Status: StatusPending}}}
			o1 := &Order{ID: "o1", AccountID: a.ID, Status: StatusPending, AuthzIDs: []string{"az1"}, Created: now,
				Identifiers: []Identifier{az.Identifier}}
			if err := s.CreateOrder(ctx, o1, []*Authz{az}); err != nil {
				t.Fatal(err)
			}
			o0 := &Order{ID: "o0", AccountID: a.ID, Status: StatusPending, AuthzIDs: []string{"az1"}, Created: now.Add(-time.Minute)}
			if err := s.CreateOrder(ctx, o0, []*Authz{{ID: "az0", AccountID: a.ID}}); err != nil {
				t.Fatal(err)
			}
			// A failing authorization leaves no order behind.
			if err := s.CreateOrder(ctx, &Order{ID: "o2", AccountID: a.ID, Created: now}, []*Authz{{ID: "az2"}, {ID: "az1"}}); err == nil {
				t.Errorf("CreateOrder with an existing authorization ID succeeded")
			}
			if _, err := s.Order(ctx, "o2"); !errors.Is(err, ErrNotFound) {
				t.Errorf("order of a failed CreateOrder: %v, want ErrNotFound", err)
			}
			if _, err := s.Authz(ctx, "az2"); !errors.Is(err, ErrNotFound) {
				t.Errorf("authorization of a failed CreateOrder: %v, want ErrNotFound", err)
			}
			if ids, err := s.OrderIDs(ctx, a.ID); err != nil || !slices.Equal(ids, []string{"o0", "o1"}) {
				t.Errorf("OrderIDs: %v, %v; want [o0 o1]", ids, err)
			}
			if ids, err := s.RecentOrderIDs(ctx, 10); err != nil || !slices.Equal(ids, []string{"o1", "o0"}) {
				t.Errorf("RecentOrderIDs(10): %v, %v; want [o1 o0]", ids, err)
			}
			if ids, err := s.RecentOrderIDs(ctx, 1); err != nil || !slices.Equal(ids, []string{"o1"}) {
				t.Errorf("RecentOrderIDs(1): %v, %v; want [o1]", ids, err)
			}
			az.Status, az.Challenges[0].Status = StatusValid, StatusValid
			if err := s.UpdateAuthz(ctx, az); err != nil {
				t.Fatal(err)
			}
			o1.Status, o1.CertSerial = StatusValid, "abc123"
			if err := s.UpdateOrder(ctx, o1); err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateOrder(ctx, &Order{ID: "none"}); !errors.Is(err, ErrNotFound) {
				t.Errorf("UpdateOrder of no order: %v, want ErrNotFound", err)
			}

			c := &Certificate{Serial: "abc123", AccountID: a.ID, OrderID: "o1", Names: []string{"example.com"}}
			if err := s.AddCertificate(ctx, c); err != nil {
				t.Fatal(err)
			}
			if err := s.AddCertificate(ctx, c); !errors.Is(err, ErrConflict) {
				t.Errorf("AddCertificate twice: %v, want ErrConflict", err)
			}
			c.ReplacedBy = "o2"
			if err := s.UpdateCertificate(ctx, c); err != nil {
				t.Fatal(err)
			}

			long := strings.Repeat("a-very-long-name.example.com,", 200)
			for i, at := range []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Minute), now} {
				if err := s.AddEvent(ctx, "lim", long, at); err != nil {
					t.Fatalf("AddEvent %d: %v", i, err)
				}
			}
			s.AddEvent(ctx, "lim", long+"x", now)
			if n, oldest, err := s.CountEvents(ctx, "lim", long, now.Add(-time.Hour)); err != nil || n != 2 || !oldest.Equal(now.Add(-time.Minute)) {
				t.Errorf("CountEvents: %d, %v, %v; want 2 from %v", n, oldest, err, now.Add(-time.Minute))
			}
			if n, _, err := s.CountEvents(ctx, "other", long, now.Add(-time.Hour)); err != nil || n != 0 {
				t.Errorf("CountEvents of another limit: %d, %v", n, err)
			}

			// Everything is still there after a reopen.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := reopen()
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			if got, err := s.Account(ctx, "acctAbc"); err != nil || !slices.Equal(got.Contact, a.Contact) {
				t.Errorf("account after reopen: %+v, %v", got, err)
			}
			if got, err := s.Authz(ctx, "az1"); err != nil || got.Status != StatusValid || got.Challenges[0].Token != "tok" {
				t.Errorf("authorization after reopen: %+v, %v", got, err)
			}
			if got, err := s.Order(ctx, "o1"); err != nil || got.Status != StatusValid || got.CertSerial != "abc123" || !got.Created.Equal(now) {
				t.Errorf("order after reopen: %+v, %v", got, err)
			}
			if got, err := s.Certificate(ctx, "abc123"); err != nil || got.ReplacedBy != "o2" || !slices.Equal(got.Names, c.Names) || got.OrderID != "o1" {
				t.Errorf("certificate after reopen: %+v, %v", got, err)
			}
			if n, _, err := s.CountEvents(ctx, "lim", long, now.Add(-3*time.Hour)); err != nil || n != 3 {
				t.Errorf("CountEvents after reopen: %d, %v; want 3", n, err)
			}
		})
	}
}

// TestMySQLSchemaVersion checks that the acme_ tables carry a version and
// that a schema from a newer ctstage is refused rather than used.
func TestMySQLSchemaVersion(t *testing.T) {
	dsn, err := storage.MySQLDSN(testenv.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.db.QueryRowContext(ctx, "SELECT version FROM acme_schema").Scan(&v); err != nil || v != mysqlSchemaVersion {
		t.Fatalf("acme_schema version %d, %v; want %d", v, err, mysqlSchemaVersion)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "UPDATE acme_schema SET version = ?", mysqlSchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if s2, err := OpenMySQL(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer") {
		if s2 != nil {
			s2.Close()
		}
		t.Errorf("OpenMySQL on a newer schema: %v, want a refusal", err)
	}
}

// TestStoreConcurrentWrites runs writes at once, half of which conflict:
// on SQLite they share group commits, and each failure must undo only its
// own write.
func TestStoreConcurrentWrites(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s, _ := kind.open(t)
			defer s.Close()
			ctx := context.Background()
			const n = 64
			errs := make(chan error, n)
			for i := range n {
				go func() {
					// Pairs share a thumbprint: one of each pair wins.
					errs <- s.CreateAccount(ctx, &Account{ID: fmt.Sprint("a", i), Thumbprint: fmt.Sprint("tp", i/2)})
				}()
			}
			conflicts := 0
			for range n {
				if err := <-errs; errors.Is(err, ErrConflict) {
					conflicts++
				} else if err != nil {
					t.Errorf("CreateAccount: %v", err)
				}
			}
			if conflicts != n/2 {
				t.Errorf("%d conflicts, want %d", conflicts, n/2)
			}
			for i := range n / 2 {
				if _, err := s.AccountByThumbprint(ctx, fmt.Sprint("tp", i)); err != nil {
					t.Errorf("thumbprint %d: %v", i, err)
				}
			}
		})
	}
}

// TestMySQLNonces: two stores on one database (two processes) read one
// nonce key, and a nonce is redeemed once across them.
func TestMySQLNonces(t *testing.T) {
	dsn, err := storage.MySQLDSN(testenv.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenMySQL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ka, err := a.NonceKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.NonceKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ka) != 32 || string(ka) != string(kb) {
		t.Fatalf("two processes read nonce keys %x and %x", ka, kb)
	}
	id := []byte("0123456789abcdef")
	exp := time.Now().Add(time.Minute)
	if ok, err := a.RedeemNonce(ctx, id, exp); !ok || err != nil {
		t.Fatalf("first redemption: %v %v", ok, err)
	}
	if ok, err := b.RedeemNonce(ctx, id, exp); ok || err != nil {
		t.Fatalf("second redemption, through the other store: %v %v; want false", ok, err)
	}
}
