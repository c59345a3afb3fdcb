package scalebench

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/ctstage/ctstage/internal/loadgen"
	"github.com/ctstage/ctstage/internal/logging"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

func TestMain(m *testing.M) {
	logging.RouteKlog(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// TestLeafGen checks that a generated entry is exactly what ctfe stores for
// an add-pre-chain of its precertificate: a validly signed precertificate,
// the MerkleTreeLeaf ct-go builds from it, the PrecertChainEntry as extra
// data and the precertificate's hash as identity.
func TestLeafGen(t *testing.T) {
	dir := t.TempDir()
	if err := loadgen.WriteCA(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	issuer, signer, chain, err := loadgen.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newLeafGen(issuer, signer, chain, time.Now().AddDate(0, 0, 90))
	if err != nil {
		t.Fatal(err)
	}
	ctIssuer, err := ctx509.ParseCertificate(issuer.Raw)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, index := range []uint64{0, 7, 123456, 999999999999} {
		e, err := g.make(index, 1700000000123)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(e.precert)
		if err != nil {
			t.Fatalf("entry %d: precertificate does not parse: %v", index, err)
		}
		if err := cert.CheckSignatureFrom(issuer); err != nil {
			t.Errorf("entry %d: bad signature: %v", index, err)
		}
		want := fmt.Sprintf("i%012d.scale.ctstage.test", index)
		if cert.Subject.CommonName != want || len(cert.DNSNames) != 1+len(sanLabels) || cert.DNSNames[1] != "www."+want {
			t.Errorf("entry %d: names %q %q", index, cert.Subject.CommonName, cert.DNSNames)
		}
		pc, err := ctx509.ParseCertificate(e.precert)
		if ctx509.IsFatal(err) {
			t.Fatal(err)
		}
		ml, err := ct.MerkleTreeLeafFromChain([]*ctx509.Certificate{pc, ctIssuer}, ct.PrecertLogEntryType, 1700000000123)
		if err != nil {
			t.Fatal(err)
		}
		wantLeaf, err := tls.Marshal(*ml)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.leaf.LeafValue, wantLeaf) {
			t.Errorf("entry %d: leaf value differs from ct-go's MerkleTreeLeafFromChain", index)
		}
		wantExtra, err := tls.Marshal(ct.PrecertChainEntry{
			PreCertificate:   ct.ASN1Cert{Data: e.precert},
			CertificateChain: []ct.ASN1Cert{{Data: issuer.Raw}, {Data: chain[0].Raw}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.leaf.ExtraData, wantExtra) {
			t.Errorf("entry %d: extra data differs", index)
		}
		// A log entry as a monitor reads it.
		le, err := ct.LogEntryFromLeaf(0, &ct.LeafEntry{LeafInput: e.leaf.LeafValue, ExtraData: e.leaf.ExtraData})
		if err != nil || le.Precert == nil || le.Precert.TBSCertificate.Subject.CommonName != want {
			t.Errorf("entry %d: LogEntryFromLeaf: %v", index, err)
		}
		if seen[string(e.leaf.MerkleLeafHash)] || seen[string(e.leaf.LeafIdentityHash)] {
			t.Errorf("entry %d repeats a hash", index)
		}
		seen[string(e.leaf.MerkleLeafHash)], seen[string(e.leaf.LeafIdentityHash)] = true, true
		if n := len(e.leaf.LeafValue); n < 1000 || n > 2000 {
			t.Errorf("entry %d: leaf value of %d bytes, want a realistic 1-2 KB", index, n)
		}
		if n := len(e.leaf.ExtraData); n < 2000 || n > 3000 {
			t.Errorf("entry %d: extra data of %d bytes, want a realistic 2-3 KB", index, n)
		}
	}
}

// TestRun runs the whole benchmark at tiny sizes on SQLite.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	// certspotter's catch-up is measured when it is installed: .ci/run
	// installs it, so under CI=true it must be there.
	spotter, _ := exec.LookPath("certspotter")
	if spotter == "" {
		if testenv.CI() {
			t.Fatal("certspotter is not installed (apt-get install -y certspotter)")
		}
		t.Log("certspotter is not installed: its catch-up is not measured (apt-get install -y certspotter)")
	}
	rep, err := Run(ctx, Config{
		Certspotter:     spotter,
		DataDir:         dir,
		Sizes:           []uint64{100, 300},
		AddClients:      8,
		AddMax:          50,
		AddDuration:     5 * time.Second,
		ProofSamples:    50,
		EntriesDuration: 300 * time.Millisecond,
		EntriesRun:      120,
		BulkBatch:       64,
		BulkBacklog:     128,
		Monitor:         true,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%v", err, rep)
	}
	for _, s := range rep.Sizes {
		if m := s.Monitor; m == nil || m.Entries != s.Size || m.Alerts != 0 || m.PerSec <= 0 || len(m.HeapMB) < 2 {
			t.Errorf("monitor catch-up at %d: %+v", s.Size, m)
		}
		if c := s.Certspotter; spotter != "" && (c == nil || c.Entries != s.Size || c.PerSec <= 0) {
			t.Errorf("certspotter catch-up at %d: %+v", s.Size, c)
		}
	}
	t.Logf("\n%s", rep)
	if len(rep.Bulk) != 2 || rep.Bulk[0].To != 100 || rep.Bulk[1].To != 300 || rep.Bulk[1].From != 150 {
		t.Errorf("bulk loads %+v, want 0->100, 150->300", rep.Bulk)
	}
	if len(rep.Sizes) != 2 {
		t.Fatalf("%d sizes measured, want 2", len(rep.Sizes))
	}
	for i, s := range rep.Sizes {
		if want := []uint64{100, 300}[i]; s.Size != want {
			t.Errorf("measured at %d, want %d", s.Size, want)
		}
		if s.Proofs.Verified != 50 || s.Proofs.Latency.P99 <= 0 {
			t.Errorf("at %d: proofs %+v", s.Size, s.Proofs)
		}
		if s.Entries.Entries == 0 || s.Entries.PerSec <= 0 {
			t.Errorf("at %d: get-entries %+v", s.Size, s.Entries)
		}
		if s.Disk.PerEntry < 1000 {
			t.Errorf("at %d: %.0f bytes per entry, want more than the entry itself", s.Size, s.Disk.PerEntry)
		}
		if a := s.Add.Result; a == nil || a.Accepted != 50 || !a.OK() {
			t.Errorf("at %d: add-pre-chain %v", s.Size, a)
		}
	}
	if _, err := Run(ctx, Config{DataDir: dir, Sizes: []uint64{10}}); err == nil {
		t.Error("Run accepted a data directory that is not empty")
	}
}

// BenchmarkLeafGen measures the cost of one bulk entry.
//
//	go test -run '^$' -bench BenchmarkLeafGen ./internal/scalebench/
func BenchmarkLeafGen(b *testing.B) {
	dir := b.TempDir()
	if err := loadgen.WriteCA(dir, time.Now()); err != nil {
		b.Fatal(err)
	}
	issuer, signer, chain, err := loadgen.LoadCA(dir)
	if err != nil {
		b.Fatal(err)
	}
	g, err := newLeafGen(issuer, signer, chain, time.Now().AddDate(0, 0, 90))
	if err != nil {
		b.Fatal(err)
	}
	var i uint64
	for b.Loop() {
		if _, err := g.make(i, 1700000000123); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestRunTiled grows a tiled log in two steps and has the monitor catch
// up from its data tiles at each size, the root recomputed, no alert.
func TestRunTiled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunTiled(ctx, Config{DataDir: filepath.Join(t.TempDir(), "data"), Sizes: []uint64{300, 1000}, Monitor: true})
	if err != nil {
		t.Fatalf("%v\n%v", err, rep)
	}
	t.Logf("\n%s", rep)
	if len(rep.Bulk) != 2 || len(rep.Sizes) != 2 {
		t.Fatalf("%d bulk loads and %d sizes, want 2 and 2", len(rep.Bulk), len(rep.Sizes))
	}
	for _, s := range rep.Sizes {
		if m := s.Monitor; m == nil || m.Entries != s.Size || m.Alerts != 0 {
			t.Errorf("at %d: monitor %+v", s.Size, m)
		}
		if s.Disk.Bytes <= 0 {
			t.Errorf("at %d: %d bytes on disk", s.Size, s.Disk.Bytes)
		}
	}
}
