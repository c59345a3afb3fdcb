package ca

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/ctstage/ctstage/ca/ctpolicy"
	"github.com/ctstage/ctstage/ca/store"
)

// Bounds of the resubmission at start: how many owed final certificates
// one start lists, and how many are submitted at once.
const (
	maxResubmit         = 100_000
	resubmitConcurrency = 8
)

// resubmitOwed submits again the final certificates the store says still
// owe their submission: those whose background submission a crash cut
// short, or that a log could not take. Each goes to the logs of its SCTs
// that are still in the log list; a log gone from the list can never take
// it, so it counts as answered. A record whose issuer is not in the
// hierarchy is left owed.
func (c *CA) resubmitOwed() {
	ctx, cancel := context.WithTimeout(c.bgCtx, c.opts.FinalTimeout)
	recs, err := c.opts.Store.FinalOwed(ctx, maxResubmit)
	cancel()
	if err != nil {
		c.opts.Logger.Warn("couldn't list owed final submissions", "err", err)
		return
	}
	c.opts.Logger.Info("resubmitting owed final certificates", "count", len(recs))
	byID := map[[32]byte]*ctpolicy.Log{}
	for _, l := range c.opts.Submitter.Logs() {
		byID[l.LogID] = l
	}
	sem := make(chan struct{}, resubmitConcurrency)
	var wg sync.WaitGroup
	for _, r := range recs {
		chain, logs, err := c.owedSubmission(r, byID)
		if err != nil {
			c.opts.Logger.Warn("couldn't resubmit final certificate", "serial", r.Serial, "err", err)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-c.bgCtx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.submitFinalNow(r.Serial, chain, logs)
		}()
	}
	wg.Wait()
}

// owedSubmission rebuilds the chain and the logs of an owed record.
func (c *CA) owedSubmission(r *store.Record, byID map[[32]byte]*ctpolicy.Log) ([][]byte, []*ctpolicy.Log, error) {
	var iss *Issuer
	for _, i := range []*Issuer{c.opts.Hierarchy.ECDSAIntermediate, c.opts.Hierarchy.RSAIntermediate} {
		if bytes.Equal(i.Cert.SubjectKeyId, r.IssuerKeyID) {
			iss = i
		}
	}
	if iss == nil || r.Certificate == nil {
		return nil, nil, fmt.Errorf("no certificate, or issuer %x not in the hierarchy", r.IssuerKeyID)
	}
	var logs []*ctpolicy.Log
	for _, s := range r.SCTs {
		var id [32]byte
		copy(id[:], s.LogID)
		if l := byID[id]; l != nil {
			logs = append(logs, l)
		}
	}
	return [][]byte{r.Certificate, iss.Cert.Raw}, logs, nil
}
