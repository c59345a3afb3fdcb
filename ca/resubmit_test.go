package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/internal/testsupport/fakelog"
)

// TestFinalResubmittedAfterRestart issues with logs that take the
// precertificate but fail the final certificate (500, or no answer): the
// record stays owed. A new CA on the same store, once the logs recover,
// submits the final certificate to each log and clears the debt.
func TestFinalResubmittedAfterRestart(t *testing.T) {
	for _, fault := range []fakelog.Fault{fakelog.Status500, fakelog.Hang} {
		t.Run(fmt.Sprint("fault ", fault), func(t *testing.T) {
			ctx := context.Background()
			c := newTestCA(t, ctpolicy.Options{}, threeLogs(fakelog.OK, fakelog.OK)...)
			c.opts.SubmitFinal = true
			c.opts.FinalTimeout = 300 * time.Millisecond
			c.tamperFinal = func(*x509.Certificate) { // after the SCTs, before the final submission
				for _, l := range c.logs {
					l.Fault.Store(int32(fault))
				}
			}
			iss, err := c.Issue(ctx, Request{PublicKey: testKey(t, "ecdsa-p256"), Names: []string{"example.com"}})
			if err != nil {
				t.Fatal(err)
			}
			c.Wait()
			serial := iss.Serial.Text(16)
			if r, err := c.store.Get(ctx, serial); err != nil || !r.FinalOwed {
				t.Fatalf("after a failed final submission: FinalOwed %v, %v; want it owed", r != nil && r.FinalOwed, err)
			}
			for _, l := range c.logs {
				l.Fault.Store(int32(fakelog.OK))
				if n := l.Finals.Load(); n != 0 {
					t.Fatalf("log %s took %d final certificates while failing", l.Server.URL, n)
				}
			}
			c2, err := New(Options{Hierarchy: c.opts.Hierarchy, Submitter: c.opts.Submitter, Store: c.store,
				BaseURL: c.opts.BaseURL, SubmitFinal: true, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			c2.Wait()
			for _, l := range c.logs {
				if n := l.Finals.Load(); n != 1 {
					t.Errorf("log %s got %d final certificates after the restart, want 1", l.Server.URL, n)
				}
			}
			if r, err := c.store.Get(ctx, serial); err != nil || r.FinalOwed {
				t.Errorf("after the resubmission: FinalOwed %v, %v; want it owing nothing", r != nil && r.FinalOwed, err)
			}
			if err := c2.Close(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestFinalSettled checks which answers of the logs settle a final
// submission.
func TestFinalSettled(t *testing.T) {
	l := &ctpolicy.Log{Description: "test log"}
	status := func(code int) error {
		return &ctpolicy.SubmitError{Log: l, Kind: ctpolicy.FailStatus, Err: &ctpolicy.StatusError{Code: code}}
	}
	kind := func(k string) error { return &ctpolicy.SubmitError{Log: l, Kind: k, Err: errors.New(k)} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"all accepted", nil, true},
		{"400 is permanent", status(http.StatusBadRequest), true},
		{"stale SCT is an answer", kind(ctpolicy.FailTimestamp), true},
		{"500", status(http.StatusInternalServerError), false},
		{"503", status(http.StatusServiceUnavailable), false},
		{"429", status(http.StatusTooManyRequests), false},
		{"timeout", kind(ctpolicy.FailTimeout), false},
		{"transport", kind(ctpolicy.FailTransport), false},
		{"one of two unreachable", errors.Join(status(http.StatusBadRequest), kind(ctpolicy.FailTransport)), false},
		{"two refusals", errors.Join(status(http.StatusBadRequest), status(http.StatusForbidden)), true},
		{"not a SubmitError", errors.New("?"), false},
	} {
		if got := finalSettled(tc.err); got != tc.want {
			t.Errorf("%s: finalSettled = %v, want %v", tc.name, got, tc.want)
		}
	}
}
