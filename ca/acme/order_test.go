package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca"
	"github.com/ctstage/ctstage/ca/ratelimit"
)

// TestOrderAfterCrash stores orders as a crash during finalize leaves them
// (processing, with or without the certificate's serial and record) and
// checks what POST-as-GET answers: processing while the issuance may still
// run, invalid with serverInternal once it cannot, valid when the
// certificate was recorded, and invalid past expiry.
func TestOrderAfterCrash(t *testing.T) {
	e := newFlowEnv(t, prometheus.NewRegistry(), ratelimit.Config{})
	c := newFlowClient(t, e)
	c.register()
	ctx := context.Background()
	st := e.srv.opts.Store
	now := time.Now()
	bound := 2 * e.srv.opts.IssueTimeout
	const recorded = "5e7a1" // a certificate in the store, serial only

	tests := []struct {
		name       string
		status     string
		processing time.Time // when finalize started
		expired    bool
		serial     string // CertSerial
		want       string
		wantError  bool // a serverInternal problem
	}{
		{"processing long ago", statusProcessing, now.Add(-bound - time.Second), false, "", statusInvalid, true},
		{"processing within the bound", statusProcessing, now.Add(-bound / 2), false, "", statusProcessing, false},
		{"processing start unknown (older version)", statusProcessing, time.Time{}, false, "", statusInvalid, true},
		{"serial stored, certificate not", statusProcessing, now.Add(-bound - time.Second), false, "0bad", statusInvalid, true},
		{"certificate recorded, order not", statusProcessing, now.Add(-bound - time.Second), false, recorded, statusValid, false},
		{"certificate recorded, within the bound", statusProcessing, now, false, recorded, statusValid, false},
		{"processing long ago, expired", statusProcessing, now.Add(-bound - time.Second), true, "", statusInvalid, true},
		{"processing within the bound, expired", statusProcessing, now, true, "", statusProcessing, false},
		{"pending, expired", statusPending, time.Time{}, true, "", statusInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := c.newOrder("crash.example.com")
			o, err := st.Order(ctx, path.Base(url))
			if err != nil {
				t.Fatal(err)
			}
			if tt.serial == recorded {
				if err := st.AddCertificate(ctx, &Certificate{Serial: recorded + o.ID[:4], AccountID: o.AccountID, OrderID: o.ID}); err != nil {
					t.Fatal(err)
				}
				o.CertSerial = recorded + o.ID[:4]
			} else {
				o.CertSerial = tt.serial
			}
			o.Status, o.Processing = tt.status, tt.processing
			if tt.expired {
				o.Expires = now.Add(-time.Minute)
			}
			if err := st.UpdateOrder(ctx, o); err != nil {
				t.Fatal(err)
			}
			got := c.must("order", c.post(url, nil), http.StatusOK).object()
			if got["status"] != tt.want {
				t.Errorf("status %v, want %s: %v", got["status"], tt.want, got)
			}
			p, _ := got["error"].(map[string]any)
			if tt.wantError != (p != nil) || p != nil && p["type"] != "urn:ietf:params:acme:error:serverInternal" {
				t.Errorf("error %v, want a serverInternal problem: %v", got["error"], tt.wantError)
			}
			cert, _ := got["certificate"].(string)
			if (tt.want == statusValid) != (cert != "") || cert != "" && path.Base(cert) != o.CertSerial {
				t.Errorf("certificate %q for status %s, serial %s", cert, tt.want, o.CertSerial)
			}
		})
	}
}

// TestOrderLinksCARecord is a crash between the CA recording a
// certificate and the ACME store linking it to its order: the order,
// left processing with the serial, reads valid once the bound has passed,
// and its certificate downloads, because the server finds the CA's record
// by serial and links it.
func TestOrderLinksCARecord(t *testing.T) {
	e := newFlowEnv(t, prometheus.NewRegistry(), ratelimit.Config{})
	c := newFlowClient(t, e)
	c.register()
	ctx := context.Background()
	st := e.srv.opts.Store
	url, _ := c.newOrder("linked.example.com")
	o, err := st.Order(ctx, path.Base(url))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := e.srv.opts.CA.Issue(ctx, ca.Request{PublicKey: key.Public(), Names: []string{"linked.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	o.Status, o.CertSerial = statusProcessing, iss.Serial.Text(16)
	o.Processing = time.Now().Add(-2*e.srv.opts.IssueTimeout - time.Second)
	if err := st.UpdateOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	got := c.must("order", c.post(url, nil), http.StatusOK).object()
	if got["status"] != statusValid || got["error"] != nil {
		t.Fatalf("order %v, want valid", got)
	}
	cert, _ := got["certificate"].(string)
	rsp := c.must("certificate", c.post(cert, nil), http.StatusOK)
	if !strings.Contains(string(rsp.body), "BEGIN CERTIFICATE") {
		t.Errorf("certificate download: %q", rsp.body)
	}
	if _, err := st.Certificate(ctx, o.CertSerial); err != nil {
		t.Errorf("the link was not written: %v", err)
	}
}
