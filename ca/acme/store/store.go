// Package store keeps the ACME server's state (accounts, orders,
// authorizations, the links from orders and accounts to the CA's
// certificates, and rate-limit events) on SQLite (--data/acme.db) or in
// acme_ tables on MySQL. It knows nothing of HTTP or JWS: package ca/acme
// speaks ACME and keeps its state here. The certificates themselves are
// the CA's records (package ca/store); a Certificate here refers to one
// by serial.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Sentinel errors of Store, checked with errors.Is.
var (
	ErrNotFound = errors.New("acme: not found")
	// ErrConflict: another account has this key.
	ErrConflict = errors.New("acme: key in use by another account")
	// ErrStale: the object changed since it was read (its Rev is not the
	// stored one), so the update was not made. The caller lost a race:
	// it reads the object again and answers from what it finds.
	ErrStale = errors.New("acme: changed since it was read")
)

// Statuses (RFC 8555 section 7.1.6).
const (
	StatusPending     = "pending"
	StatusReady       = "ready"
	StatusProcessing  = "processing"
	StatusValid       = "valid"
	StatusInvalid     = "invalid"
	StatusDeactivated = "deactivated"
	StatusRevoked     = "revoked"
)

// Identifier is an ACME identifier (RFC 8555 section 7.1.4): type "dns" or
// "ip" (RFC 8738).
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Problem is an RFC 7807 problem document with ACME's error types (RFC 8555
// section 6.7), as an order or a challenge keeps it. Package ca/acme
// builds them and writes them as application/problem+json.
type Problem struct {
	Type        string      `json:"type"`
	Detail      string      `json:"detail,omitempty"`
	Status      int         `json:"status,omitempty"`
	Identifier  *Identifier `json:"identifier,omitempty"`
	Subproblems []*Problem  `json:"subproblems,omitempty"`
	// Algorithms lists the JWS algorithms a badSignatureAlgorithm problem
	// allows (RFC 8555 section 6.2).
	Algorithms []string `json:"algorithms,omitempty"`

	// RetryAfter, when non-zero, is sent as Retry-After (seconds).
	RetryAfter int `json:"-"`
	// Location, when set, is sent as Location (a conflict's account).
	Location string `json:"-"`
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

// WithIdentifier is a copy of p about one identifier.
func (p *Problem) WithIdentifier(id Identifier) *Problem {
	c := *p
	c.Identifier = &id
	return &c
}

// Account is a registered account.
type Account struct {
	ID         string           `json:"id"`
	Key        *jose.JSONWebKey `json:"key"`
	Thumbprint string           `json:"thumbprint"` // RFC 7638, base64url
	Contact    []string         `json:"contact,omitempty"`
	Status     string           `json:"status"`
	Created    time.Time        `json:"created"`
	IP         string           `json:"ip"`
	// EABKeyID is the external account binding's key ID, if any.
	EABKeyID string `json:"eabKeyID,omitempty"`
	// Rev is the stored revision this copy was read at (0 when new):
	// every update is made only if the stored object is still at Rev, and
	// then increments it. Not part of the document.
	Rev int64 `json:"-"`
}

// Order is an order and what the server knows about it. Its "ready"
// status is computed from its authorizations (orderStatus).
type Order struct {
	ID          string       `json:"id"`
	AccountID   string       `json:"account"`
	Status      string       `json:"status"` // pending, processing, valid, invalid
	Expires     time.Time    `json:"expires"`
	Identifiers []Identifier `json:"identifiers"`
	Profile     string       `json:"profile,omitempty"`
	AuthzIDs    []string     `json:"authzs"`
	Error       *Problem     `json:"error,omitempty"`
	// CertSerial is the certificate's serial. Finalize stores it while
	// the order is still processing, before the certificate itself, so
	// that an order a crash left processing finds its certificate.
	CertSerial string    `json:"cert,omitempty"`
	Replaces   string    `json:"replaces,omitempty"` // ARI certID
	Created    time.Time `json:"created"`
	// Processing is when finalize set the order processing; zero for
	// orders stored by versions that did not record it.
	Processing time.Time `json:"processing,omitzero"`
	// Rev is the stored revision this copy was read at (0 when new):
	// every update is made only if the stored object is still at Rev, and
	// then increments it. Not part of the document.
	Rev int64 `json:"-"`
}

// Authz is an authorization with its challenges.
type Authz struct {
	ID         string      `json:"id"`
	AccountID  string      `json:"account"`
	Identifier Identifier  `json:"identifier"`
	Wildcard   bool        `json:"wildcard,omitempty"`
	Status     string      `json:"status"`
	Expires    time.Time   `json:"expires"`
	Challenges []Challenge `json:"challenges"`
	// Rev is the stored revision this copy was read at (0 when new):
	// every update is made only if the stored object is still at Rev, and
	// then increments it. Not part of the document.
	Rev int64 `json:"-"`
}

// Challenge is one way to validate an authorization.
type Challenge struct {
	Type      string     `json:"type"`
	Token     string     `json:"token"`
	Status    string     `json:"status"`
	Validated *time.Time `json:"validated,omitempty"`
	Error     *Problem   `json:"error,omitempty"`
}

// Certificate links a certificate the CA issued for an order to that
// order and its account. The certificate itself (its DER, its SCTs, its
// revocation) is the CA's record of the same serial: ACME records nothing
// twice.
type Certificate struct {
	Serial    string   `json:"serial"` // lower-case hex, as in the CA store
	AccountID string   `json:"account"`
	OrderID   string   `json:"order"`
	Names     []string `json:"names"`
	// ReplacedBy is the order that named this certificate in "replaces".
	ReplacedBy string `json:"replacedBy,omitempty"`
}

// Store keeps the ACME state. Implementations are safe for concurrent use
// and durable when a method returns nil. Lookups of what does not exist
// return ErrNotFound. Updates replace the whole object.
type Store interface {
	// CreateAccount stores a new account; ErrConflict if its key's
	// thumbprint is taken.
	CreateAccount(ctx context.Context, a *Account) error
	Account(ctx context.Context, id string) (*Account, error)
	AccountByThumbprint(ctx context.Context, thumbprint string) (*Account, error)
	// UpdateAccount replaces a; ErrConflict if a new key is taken.
	//
	// Every Update of an account, order or authorization is a
	// compare-and-swap: it replaces the object only if the stored one is
	// still at a.Rev, the revision it was read at, then increments a.Rev;
	// otherwise it changes nothing and returns ErrStale. So two requests
	// that read the same state and both change it cannot both succeed:
	// the state transitions of RFC 8555 (an order ready, then processing,
	// then valid; an authorization pending, then valid or invalid or
	// deactivated; an account valid, then deactivated or rekeyed) happen
	// once.
	UpdateAccount(ctx context.Context, a *Account) error

	// CreateOrder stores an order and its new authorizations at once.
	CreateOrder(ctx context.Context, o *Order, authzs []*Authz) error
	Order(ctx context.Context, id string) (*Order, error)
	UpdateOrder(ctx context.Context, o *Order) error
	// OrderIDs lists the IDs of an account's orders, oldest first.
	OrderIDs(ctx context.Context, accountID string) ([]string, error)
	// RecentOrderIDs lists the IDs of the newest orders of every
	// account, newest first, at most limit (the dashboard's CA page).
	RecentOrderIDs(ctx context.Context, limit int) ([]string, error)

	Authz(ctx context.Context, id string) (*Authz, error)
	UpdateAuthz(ctx context.Context, a *Authz) error

	AddCertificate(ctx context.Context, c *Certificate) error
	Certificate(ctx context.Context, serial string) (*Certificate, error)
	UpdateCertificate(ctx context.Context, c *Certificate) error

	Close() error
}

// orderIDs reads the order IDs a listing query returns; its arguments are
// QueryContext's results, so that each store passes its own query.
func orderIDs(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, fmt.Errorf("couldn't list orders: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("couldn't list orders: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// querier runs statements: a *sql.DB or a *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// casUpdate runs update, an UPDATE conditional on the row's rev; when it
// matched no row, exists (a SELECT of the row by key) tells a row that is
// gone (ErrNotFound) from one that changed (ErrStale). isDup recognises
// the backend's unique-key violation (ErrConflict).
func casUpdate(ctx context.Context, q querier, what, update string, args []any, exists string, key any, isDup func(error) bool) error {
	res, err := q.ExecContext(ctx, update, args...)
	if isDup(err) {
		return fmt.Errorf("%s: %w", what, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("couldn't store %s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("couldn't store %s: %w", what, err)
	} else if n > 0 {
		return nil
	}
	var one int
	switch err := q.QueryRowContext(ctx, exists, key).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s %v: %w", what, key, ErrNotFound)
	case err != nil:
		return fmt.Errorf("couldn't read %s %v: %w", what, key, err)
	}
	return fmt.Errorf("%s %v: %w", what, key, ErrStale)
}

// scanDoc reads one row's JSON document, and its rev when rev is not nil
// (the query then selects doc, rev), into v.
func scanDoc(row *sql.Row, what string, key any, v any, rev *int64) error {
	var doc []byte
	dest := []any{&doc}
	if rev != nil {
		dest = append(dest, rev)
	}
	err := row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %v: %w", what, key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("couldn't read %s %v: %w", what, key, err)
	}
	if err := json.Unmarshal(doc, v); err != nil {
		return fmt.Errorf("couldn't decode %s %v: %w", what, key, err)
	}
	return nil
}
