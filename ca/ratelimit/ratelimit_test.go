package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := Defaults()
	l := New(cfg, NewMemory(), func() time.Time { return now })
	ctx := context.Background()
	for i := range 50 {
		if err := l.Check(ctx, AccountsPerIP, "192.0.2.1"); err != nil {
			t.Fatalf("account %d: %v", i+1, err)
		}
		l.Record(ctx, AccountsPerIP, "192.0.2.1")
		now = now.Add(time.Second)
	}
	err := l.Check(ctx, AccountsPerIP, "192.0.2.1")
	var ex *Exceeded
	if !errors.As(err, &ex) || ex.RetryAfter != 3*time.Hour-50*time.Second {
		t.Fatalf("51st account: %v", err)
	}
	if err := l.Check(ctx, AccountsPerIP, "192.0.2.2"); err != nil {
		t.Errorf("other IP: %v", err)
	}
	now = now.Add(3*time.Hour - 49*time.Second)
	if err := l.Check(ctx, AccountsPerIP, "192.0.2.1"); err != nil {
		t.Errorf("after the oldest left the window: %v", err)
	}
	off := New(Config{Disabled: true}, NewMemory(), nil)
	if err := off.Check(ctx, AccountsPerIP, "x"); err != nil {
		t.Errorf("disabled: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	d := Defaults()
	week := 7 * 24 * time.Hour
	want := Config{
		CertificatesPerDomain: Limit{30000, week}, DuplicateCertificates: Limit{30000, week},
		FailedValidations: Limit{60, time.Hour}, AccountsPerIP: Limit{50, 3 * time.Hour}, OrdersPerAccount: Limit{1500, 3 * time.Hour},
	}
	if d != want {
		t.Errorf("Defaults() = %+v", d)
	}
}

func TestRegisteredDomain(t *testing.T) {
	for in, want := range map[string]string{
		"www.example.com": "example.com", "*.a.b.example.co.uk": "example.co.uk", "example.com": "example.com", "127.0.0.1": "127.0.0.1",
	} {
		if got := RegisteredDomain(in); got != want {
			t.Errorf("RegisteredDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
