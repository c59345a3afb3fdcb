package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// Head is a tree head whose signature verified.
type Head struct {
	Size uint64    `json:"size"`
	Root Hash      `json:"root"`
	Time time.Time `json:"time"`
}

// Hash is a SHA-256 hash, hex in JSON.
type Hash [32]byte

func (h Hash) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h[:])) }

func (h *Hash) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil || len(d) != 32 {
		return fmt.Errorf("monitor: %q is not a SHA-256 hash", s)
	}
	copy(h[:], d)
	return nil
}

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Entry is one log entry as the monitor reads it.
type Entry struct {
	Index    uint64
	LeafHash Hash
	// Cert is the certificate, or the precertificate, as submitted (DER).
	Cert    []byte
	Precert bool
	Names   []string
	// Err is why the entry could not be parsed (a bad_entry).
	Err error
}

// source reads one log, of either kind.
type source interface {
	// head is the newest tree head, its signature checked: an error
	// wrapping errSignature when it does not verify, another when the
	// log could not be read.
	head(ctx context.Context) (Head, error)
	// consistency proves that to extends from (from.Size < to.Size): an
	// error wrapping errInconsistent when the proof fails.
	consistency(ctx context.Context, from, to Head) error
	// entries calls fn with entries [start, end) of the tree of to, in
	// order; an error wrapping errBadEntry when the log served entries
	// that do not match its tree.
	entries(ctx context.Context, start, end uint64, to Head, fn func(Entry) error) error
	// included reports whether the entry of leaf hash h (at index idx,
	// when its SCT says) is in the tree of to, its proof checked.
	included(ctx context.Context, h Hash, idx *uint64, to Head) (bool, error)
}

var (
	errSignature    = errors.New("signature does not verify")
	errInconsistent = errors.New("not consistent")
	errBadEntry     = errors.New("bad entry")
)

// parseLeaf fills e from an RFC 6962 MerkleTreeLeaf and its extra data.
// Only what the monitor needs is parsed: the leaf's structure, the
// certificate (or the precertificate's TBS) for its names, and for a
// precertificate the pre_certificate's bytes; the chain's certificates
// are not parsed.
func parseLeaf(e *Entry, leafInput, extraData []byte) {
	e.LeafHash = leafHash(leafInput)
	var leaf ct.MerkleTreeLeaf
	if rest, err := tls.Unmarshal(leafInput, &leaf); err != nil || len(rest) > 0 || leaf.TimestampedEntry == nil {
		e.Err = fmt.Errorf("entry %d: not a MerkleTreeLeaf: %v", e.Index, err)
		return
	}
	te := leaf.TimestampedEntry
	switch te.EntryType {
	case ct.X509LogEntryType:
		c, err := ctx509.ParseCertificate(te.X509Entry.Data)
		if c == nil {
			e.Err = fmt.Errorf("entry %d: certificate: %v", e.Index, err)
			return
		}
		e.Cert, e.Names = te.X509Entry.Data, names(c)
	case ct.PrecertLogEntryType:
		tbs, err := ctx509.ParseTBSCertificate(te.PrecertEntry.TBSCertificate)
		if tbs == nil {
			e.Err = fmt.Errorf("entry %d: precertificate TBS: %v", e.Index, err)
			return
		}
		var chain ct.PrecertChainEntry
		if rest, err := tls.Unmarshal(extraData, &chain); err != nil || len(rest) > 0 {
			e.Err = fmt.Errorf("entry %d: precertificate chain entry: %v", e.Index, err)
			return
		}
		e.Precert, e.Cert, e.Names = true, chain.PreCertificate.Data, names(tbs)
	default:
		e.Err = fmt.Errorf("entry %d: entry type %d", e.Index, te.EntryType)
	}
}

func leafHash(leafInput []byte) Hash {
	return sha256.Sum256(append([]byte{0}, leafInput...))
}

func names(c *ctx509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	if cn := c.Subject.CommonName; cn != "" && !contains(out, cn) {
		out = append(out, cn)
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
