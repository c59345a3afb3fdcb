package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ctstage/ctstage/ca/store"
)

// RFC 5280 CRLReason codes (section 5.3.1) the CA accepts: those the
// Baseline Requirements (section 7.2.2) allow in a subscriber CRL, and 0
// (unspecified), which the CRL states by leaving the reasonCode extension
// out.
var crlReasons = []int{
	0, // unspecified
	1, // keyCompromise
	3, // affiliationChanged
	4, // superseded
	5, // cessationOfOperation
	9, // privilegeWithdrawn
}

// Revoke records that the certificate with serial is revoked, for an RFC
// 5280 reason code, at a time (zero is now). The revocation is durable when
// Revoke returns nil, and the CRL of the certificate's issuer lists it from
// then on (until the certificate expires). A precertificate without a
// final certificate can be revoked too.
//
// Errors wrap ErrBadRequest (a reason the Baseline Requirements do not
// allow, a time in the future, a serial that is not positive),
// store.ErrNotFound (the CA has no record of serial) or
// store.ErrAlreadyRevoked (the first revocation stands).
func (c *CA) Revoke(ctx context.Context, serial *big.Int, reason int, at time.Time) error {
	now := c.opts.Now()
	switch {
	case serial == nil || serial.Sign() <= 0:
		return fmt.Errorf("%w: serial must be positive", ErrBadRequest)
	case !slices.Contains(crlReasons, reason):
		return fmt.Errorf("%w: revocation reason %d is not one of %v", ErrBadRequest, reason, crlReasons)
	case at.IsZero():
		at = now
	case at.After(now):
		return fmt.Errorf("%w: revocation time %s is in the future", ErrBadRequest, at.Format(time.RFC3339))
	}
	if err := c.opts.Store.Revoke(ctx, serial.Text(16), reason, at); err != nil {
		return err
	}
	c.crls.gen.Add(1)
	c.opts.Logger.Info("revoked", "serial", serial.Text(16), "reason", reason, "at", at)
	return nil
}

// Revocation returns the revocation of the certificate with serial, nil if
// it is not revoked, or an error wrapping store.ErrNotFound if the CA has
// no record of it.
func (c *CA) Revocation(ctx context.Context, serial *big.Int) (*store.Revocation, error) {
	if serial == nil || serial.Sign() <= 0 {
		return nil, fmt.Errorf("%w: serial must be positive", ErrBadRequest)
	}
	r, err := c.opts.Store.Get(ctx, serial.Text(16))
	if err != nil {
		return nil, err
	}
	return r.Revocation, nil
}

const (
	// crlCacheTTL is how long a signed CRL is served again: signing with
	// the P-384 and RSA intermediates costs, and a revocation empties the
	// cache at once, so only expirations wait for it.
	crlCacheTTL = time.Minute
	// crlBackdate is how far thisUpdate is set before the time of
	// signing, for relying parties whose clock is a little behind. A
	// revocation more recent than that moves thisUpdate up to it, since
	// no revocationDate may be after thisUpdate (RFC 5280 section 5.1.2.6).
	crlBackdate = time.Minute
	// crlValidity is nextUpdate - thisUpdate: well inside the 10 days the
	// Baseline Requirements (section 4.9.7) allow, and short, so that a
	// client caching the CRL until nextUpdate sees a revocation within the
	// hour.
	crlValidity = time.Hour
)

// crlCache holds the signed CRL of each intermediate.
type crlCache struct {
	// gen counts revocations; a CRL built from an older count is stale.
	gen atomic.Uint64
	// lock (a channel of capacity 1, so that waiting honours ctx) guards
	// the fields below: one CRL is built at a time.
	lock    chan struct{}
	signed  map[*Issuer]*signedCRL
	lastNum int64
}

type signedCRL struct {
	der   []byte
	gen   uint64
	built time.Time
}

func newCRLCache() *crlCache {
	return &crlCache{lock: make(chan struct{}, 1), signed: map[*Issuer]*signedCRL{}}
}

// crl returns the CRL of iss, DER: the cached one while it is fresh and
// no revocation came after it, else a new one.
func (c *CA) crl(ctx context.Context, iss *Issuer) ([]byte, error) {
	k := c.crls
	select {
	case k.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-k.lock }()
	now := c.opts.Now()
	gen := k.gen.Load()
	if s := k.signed[iss]; s != nil && s.gen == gen && !now.Before(s.built) && now.Sub(s.built) < crlCacheTTL {
		return s.der, nil
	}
	der, err := c.buildCRL(ctx, iss, now)
	if err != nil {
		return nil, err
	}
	k.signed[iss] = &signedCRL{der: der, gen: gen, built: now}
	return der, nil
}

// buildCRL signs a CRL of iss listing its revoked, unexpired certificates
// (RFC 5280 section 5; Baseline Requirements section 7.2): version 2, the
// intermediate's subject as issuer, authority key identifier and CRL
// number extensions, each entry's revocationDate and reasonCode (left out
// for unspecified).
func (c *CA) buildCRL(ctx context.Context, iss *Issuer, now time.Time) ([]byte, error) {
	revs, err := c.opts.Store.Revoked(ctx, iss.Cert.SubjectKeyId, now)
	if err != nil {
		return nil, err
	}
	thisUpdate := now.Add(-crlBackdate)
	entries := make([]x509.RevocationListEntry, 0, len(revs))
	for _, r := range revs {
		serial, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("couldn't build the CRL: stored serial %q is not hex", r.Serial)
		}
		if r.At.After(thisUpdate) {
			thisUpdate = r.At
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber: serial, RevocationTime: r.At.UTC().Truncate(time.Second), ReasonCode: r.Reason,
		})
	}
	thisUpdate = thisUpdate.UTC().Truncate(time.Second)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(c.crls.nextNumber()),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(crlValidity),
		RevokedCertificateEntries: entries,
	}, iss.Cert, iss.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign the CRL: %w", err)
	}
	return der, nil
}

// nextNumber returns a CRL number greater than every one this process
// gave, and than every one an earlier process gave while the system clock
// ran forward: the wall clock in nanoseconds. It is shared by the
// intermediates (each one's numbers still increase). The caller holds
// k.lock.
func (k *crlCache) nextNumber() int64 {
	n := time.Now().UnixNano()
	if n <= k.lastNum {
		n = k.lastNum + 1
	}
	k.lastNum = n
	return n
}
