package acme

import acmestore "github.com/ctstage/ctstage/ca/acme/store"

// The state ACME keeps, in package ca/acme/store: the server speaks in
// these types, the store persists them.
type (
	Account     = acmestore.Account
	Order       = acmestore.Order
	Authz       = acmestore.Authz
	Challenge   = acmestore.Challenge
	Certificate = acmestore.Certificate
	Identifier  = acmestore.Identifier
	Problem     = acmestore.Problem
	Store       = acmestore.Store
)

// Sentinel errors of Store, checked with errors.Is.
var (
	ErrNotFound = acmestore.ErrNotFound
	ErrConflict = acmestore.ErrConflict
	ErrStale    = acmestore.ErrStale
)

// Statuses (RFC 8555 section 7.1.6).
const (
	statusPending     = acmestore.StatusPending
	statusReady       = acmestore.StatusReady
	statusProcessing  = acmestore.StatusProcessing
	statusValid       = acmestore.StatusValid
	statusInvalid     = acmestore.StatusInvalid
	statusDeactivated = acmestore.StatusDeactivated
	statusRevoked     = acmestore.StatusRevoked
)
