package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ca.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	rec := &Record{Serial: "0abc", Profile: "classic", Precertificate: []byte("pre"), Created: now}
	if err := s.AddPrecertificate(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPrecertificate(ctx, rec); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second AddPrecertificate: %v, want ErrDuplicate", err)
	}
	if err := s.AddCertificate(ctx, "ffff", []byte("c"), nil, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddCertificate of unknown serial: %v, want ErrNotFound", err)
	}
	scts := []SCT{{LogID: make([]byte, 32), LogURL: "http://a/", Timestamp: 1, SCT: []byte{1}}, {LogID: make([]byte, 32), LogURL: "http://b/", Timestamp: 2, SCT: []byte{2}}}
	if err := s.AddCertificate(ctx, "0abc", []byte("cert"), scts, now); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCertificate(ctx, "0abc", []byte("cert"), scts, now); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second AddCertificate: %v, want ErrDuplicate", err)
	}
	s.Close()
	// Reopening runs no migration and finds the record.
	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, "0abc")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Certificate) != "cert" || string(got.Precertificate) != "pre" || len(got.SCTs) != 2 ||
		got.SCTs[1].LogURL != "http://b/" || !got.Created.Equal(now) || !got.Issued.Equal(now) {
		t.Errorf("Get = %+v", got)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope): %v, want ErrNotFound", err)
	}
}

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
