package monitor

import (
	"context"
	"net/http"

	"github.com/ctstage/ctstage/sctverify"
)

// Reader reads one log, of either kind, with the monitor's checks: tree
// heads whose signatures verify, and entries that must make the tree of
// the head they are read under. It is for programs that read logs
// without following them (the dashboard's index).
type Reader struct{ src source }

// NewReader reads l through hc.
func NewReader(l *sctverify.Log, hc *http.Client) (*Reader, error) {
	var src source
	var err error
	if l.Tiled {
		src, err = newTiledSource(l.URL, l.Key, hc, 2)
	} else {
		src, err = newRFCSource(l.URL, l.Key, hc, 2)
	}
	if err != nil {
		return nil, err
	}
	return &Reader{src: src}, nil
}

// Head is the log's newest tree head, its signature checked.
func (r *Reader) Head(ctx context.Context) (Head, error) { return r.src.head(ctx) }

// Entries calls fn with the entries [start, end) of the tree of to, in
// order.
func (r *Reader) Entries(ctx context.Context, start, end uint64, to Head, fn func(Entry) error) error {
	return r.src.entries(ctx, start, end, to, fn)
}

// ParseEntry is an RFC 6962 entry as the monitor reads it, from its
// MerkleTreeLeaf and extra data (get-entries' leaf_input and
// extra_data): for readers that get those bytes some other way.
func ParseEntry(index uint64, leafInput, extraData []byte) Entry {
	e := Entry{Index: index}
	parseLeaf(&e, leafInput, extraData)
	return e
}
