package monitor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/transparency-dev/merkle/compact"
)

// state is one log's: the last verified tree head, the compact range of
// the entries read (and the last one whose root matched a tree head),
// in StateDir/<log ID hex>.json; every verified head is appended to
// StateDir/<log ID hex>.heads.jsonl.
type state struct {
	path, heads string

	Verified *Head `json:"verified,omitempty"`
	// Range is the compact range [0, RangeEnd) of the entries read.
	RangeEnd    uint64 `json:"range_end"`
	RangeHashes []Hash `json:"range_hashes"`
	// Good is the range whose root last matched a verified tree head:
	// reading starts again from it when entries do not match.
	GoodEnd    uint64 `json:"good_end"`
	GoodHashes []Hash `json:"good_hashes"`
}

func loadState(dir string, id [32]byte) (*state, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	name := hex.EncodeToString(id[:])
	st := &state{path: filepath.Join(dir, name+".json"), heads: filepath.Join(dir, name+".heads.jsonl")}
	b, err := os.ReadFile(st.path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state %s: %w", st.path, err)
	}
	return st, nil
}

// save writes the state atomically (a crash leaves the old or the new).
func (st *state) save() error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := st.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, st.path)
}

func (st *state) appendHead(h Head) error {
	f, err := os.OpenFile(st.heads, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(h)
	_, err = f.Write(append(b, '\n'))
	return errors.Join(err, f.Close())
}

func toHashes(hs [][]byte) []Hash {
	out := make([]Hash, len(hs))
	for i, h := range hs {
		copy(out[i][:], h)
	}
	return out
}

func fromHashes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func (st *state) setRange(r *compact.Range) {
	st.RangeEnd, st.RangeHashes = r.End(), toHashes(r.Hashes())
}

// setGood records r as matching a verified tree head.
func (st *state) setGood(r *compact.Range) {
	st.setRange(r)
	st.GoodEnd, st.GoodHashes = st.RangeEnd, st.RangeHashes
}

// resetToGood goes back to the last range that matched a tree head.
func (st *state) resetToGood() {
	st.RangeEnd, st.RangeHashes = st.GoodEnd, st.GoodHashes
}

func (st *state) compactRange() (*compact.Range, error) {
	return rangeFactory.NewRange(0, st.RangeEnd, fromHashes(st.RangeHashes))
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
