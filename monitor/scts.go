package monitor

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/ctstage/ctstage/sctverify"
)

// SCT is an SCT the monitor checks the inclusion of.
type SCT struct {
	LogID    [32]byte
	Time     time.Time
	LeafHash Hash
	// LeafIndex is a tiled log's leaf_index, nil when the SCT has none.
	LeafIndex *uint64
	// Source names the SCT in alerts, e.g. "cert.pem SCT #2".
	Source string
}

// SCTsOf returns the embedded SCTs of a chain (leaf first, its issuer
// among the rest), named after name.
func SCTsOf(name string, chain []*x509.Certificate) ([]SCT, error) {
	leaves, err := sctverify.EmbeddedLeaves(chain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []SCT
	for i, l := range leaves {
		s := SCT{LogID: l.SCT.LogID, Time: l.SCT.Time(), LeafHash: l.LeafHash, Source: fmt.Sprintf("%s SCT #%d", name, i+1)}
		if idx, err := sctverify.LeafIndex(l.SCT.Extensions); err == nil {
			s.LeafIndex = &idx
		}
		out = append(out, s)
	}
	return out, nil
}
