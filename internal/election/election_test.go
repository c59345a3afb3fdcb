package election_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ctstage/ctstage/internal/election"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

func TestParseEndpoints(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"etcd://127.0.0.1:2379", []string{"http://127.0.0.1:2379"}, true},
		{"etcd://a:1,b:2", []string{"http://a:1", "http://b:2"}, true},
		{"etcd://[::1]:2379", []string{"http://[::1]:2379"}, true},
		{"http://127.0.0.1:2379", nil, false},
		{"etcd://", nil, false},
		{"etcd://host", nil, false},
		{"etcd://a:1,", nil, false},
		{"etcd://a:1/path", nil, false},
	} {
		got, err := election.ParseEndpoints(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseEndpoints(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseEndpoints(%q) = %q, want %q", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseEndpoints(%q) = %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}

func newClient(t *testing.T, ep string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newFactory(t *testing.T, ep, name string) *election.Factory {
	t.Helper()
	f, err := election.NewFactory(newClient(t, ep), election.Options{Instance: name, Prefix: "/test/", TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func done(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// The second candidate wins once the first resigns, and the first's
// mastership context ends.
func TestResignHandsOver(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	ctx := t.Context()
	a, err := newFactory(t, etcd.Endpoint, "a").NewElection(ctx, "tree1")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	b, err := newFactory(t, etcd.Endpoint, "b").NewElection(ctx, "tree1")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())

	if err := a.Await(ctx); err != nil {
		t.Fatal(err)
	}
	ma, err := a.WithMastership(ctx)
	if err != nil || done(ma) {
		t.Fatalf("a's mastership: done=%v err=%v", done(ma), err)
	}
	// b is not the master: its mastership context is done at once.
	if mb, _ := b.WithMastership(ctx); !done(mb) {
		t.Fatal("b has a live mastership context before campaigning")
	}
	won := make(chan error, 1)
	go func() { won <- b.Await(ctx) }()
	select {
	case err := <-won:
		t.Fatalf("b won while a is master (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ma.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a's mastership context lives on after resigning")
	}
	select {
	case err := <-won:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b did not win after a resigned")
	}
	if mb, err := b.WithMastership(ctx); err != nil || done(mb) {
		t.Fatalf("b's mastership: done=%v err=%v", done(mb), err)
	}
}

// A master that vanishes without resigning (kill -9: its lease is not
// kept alive any more) loses its tree within the lease's TTL.
func TestLeaseExpiryHandsOver(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	ctx := t.Context()
	ca := newClient(t, etcd.Endpoint)
	fa, err := election.NewFactory(ca, election.Options{Instance: "a", Prefix: "/test/", TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, err := fa.NewElection(ctx, "tree1")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Await(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := newFactory(t, etcd.Endpoint, "b").NewElection(ctx, "tree1")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	// Closing a's client stops its keep-alives without revoking the lease.
	ca.Close()
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Await(actx); err != nil {
		t.Fatalf("b did not take over: %v", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("b took over after %v, want within about the 2 s TTL", d)
	}
}

// When etcd is gone for longer than the TTL, the master stops being the
// master (its mastership context ends) rather than sign on while another
// process may win once etcd is back; nobody wins while etcd is down; and
// a new election campaigns and wins once it is back.
func TestEtcdOutageEndsMastership(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	ctx := t.Context()
	f := newFactory(t, etcd.Endpoint, "a")
	a, err := f.NewElection(ctx, "tree1")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Await(ctx); err != nil {
		t.Fatal(err)
	}
	ma, err := a.WithMastership(ctx)
	if err != nil || done(ma) {
		t.Fatalf("mastership: done=%v err=%v", done(ma), err)
	}
	etcd.Stop()
	select {
	case <-ma.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the mastership context lived 15 s into an etcd outage with a 2 s TTL")
	}
	a.Close(context.Background())
	etcd.Restart()
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var a2 interface {
		Await(context.Context) error
		Close(context.Context) error
	}
	for {
		e, err := f.NewElection(actx, "tree1")
		if err == nil {
			a2 = e
			break
		}
		if actx.Err() != nil {
			t.Fatalf("no new election after etcd came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer a2.Close(context.Background())
	if err := a2.Await(actx); err != nil {
		t.Fatalf("no mastership after etcd came back: %v", err)
	}
}
