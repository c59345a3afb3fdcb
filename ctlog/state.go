package ctlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	"github.com/ctstage/ctstage/internal/keyfile"
	"github.com/ctstage/ctstage/sctverify"
)

// The log states of Chrome's log list, in lifecycle order: sctverify's names.
const (
	StatePending   = sctverify.StatePending
	StateQualified = sctverify.StateQualified
	StateUsable    = sctverify.StateUsable
	StateReadOnly  = sctverify.StateReadOnly
	StateRetired   = sctverify.StateRetired
	StateRejected  = sctverify.StateRejected
)

// States lists every state.
var States = []string{StatePending, StateQualified, StateUsable, StateReadOnly, StateRetired, StateRejected}

// TreeHead is a tree's size and root hash: a readonly log's final tree head.
type TreeHead struct {
	Size uint64 `json:"tree_size"`
	Root []byte `json:"sha256_root_hash"`
}

// stateRecord is a shard's state as kept in --data/logs/<shard>.state.json.
type stateRecord struct {
	// State takes effect At; before At the shard is in Previous.
	State    string    `json:"state"`
	At       time.Time `json:"at"`
	Previous string    `json:"previous"`
	// Final is the frozen tree of a readonly or retired shard, recorded
	// once the state took effect and the last accepted entries were in.
	Final *TreeHead `json:"final_tree_head,omitempty"`
	// Config is the config file's state when the record was written: a
	// config that says something else since wins over the record.
	Config string `json:"config"`
}

// configKey is how a config's state is compared with the record's.
func configKey(s Shard) string {
	return s.State + "@" + s.StateAt.UTC().Format(time.RFC3339)
}

// effective is the state in force at now.
func (r *stateRecord) effective(now time.Time) string {
	if now.Before(r.At) {
		return r.Previous
	}
	return r.State
}

// writable reports whether a shard in state takes submissions.
func writable(state string) bool {
	return state == StatePending || state == StateQualified || state == StateUsable
}

// frozen reports whether a shard in state keeps its tree as it is.
func frozen(state string) bool { return state == StateReadOnly || state == StateRetired }

// shardState is one shard's state, read by every request and changed by
// the management API.
type shardState struct {
	mu   sync.RWMutex
	rec  stateRecord
	path string
	// created is when the shard was made: the timestamp of a state the
	// config gives no time for.
	created time.Time
}

func statePath(dataDir, name string) string {
	return filepath.Join(dataDir, "logs", name+".state.json")
}

// loadState reads a shard's state record, or starts one from the config.
// A record written under another config state is replaced by the config's.
func loadState(dataDir string, s Shard, created time.Time) (*shardState, error) {
	st := &shardState{path: statePath(dataDir, s.Name), created: created}
	b, err := os.ReadFile(st.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &st.rec); err != nil {
			return nil, fmt.Errorf("shard %s: %s: %w", s.Name, st.path, err)
		}
		if st.rec.Config == configKey(s) && slices.Contains(States, st.rec.State) {
			return st, nil
		}
	}
	at := s.StateAt
	if at.IsZero() {
		at = created
	}
	st.rec = stateRecord{State: s.State, At: at.UTC(), Previous: StateUsable, Config: configKey(s)}
	if s.State == StatePending {
		st.rec.Previous = StatePending
	}
	return st, st.save()
}

func (st *shardState) save() error {
	b, err := json.MarshalIndent(st.rec, "", "  ")
	if err != nil {
		return err
	}
	return keyfile.WriteFileAtomic(st.path, append(b, '\n'), 0o600)
}

// get returns the record.
func (st *shardState) get() stateRecord {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.rec
}

// now returns the state in force at now.
func (st *shardState) now(now time.Time) string {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.rec.effective(now)
}

// set changes the state to state at at (now when zero) and saves it.
func (st *shardState) set(state string, at, now time.Time) (stateRecord, error) {
	if !slices.Contains(States, state) {
		return stateRecord{}, fmt.Errorf("unknown state %q (want one of %v)", state, States)
	}
	if at.IsZero() {
		at = now
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	old := st.rec
	prev := old.effective(now)
	st.rec = stateRecord{State: state, At: at.UTC().Truncate(time.Second), Previous: prev, Config: old.Config}
	if frozen(state) && frozen(prev) && old.Final != nil {
		st.rec.Final = old.Final // retired after readonly: the same tree
	}
	if err := st.save(); err != nil {
		st.rec = old
		return stateRecord{}, err
	}
	return st.rec, nil
}

// setFinal records the final tree head of a frozen shard.
func (st *shardState) setFinal(th TreeHead) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.rec.Final = &th
	return st.save()
}

// logStates is the log list's state object for rec; head is the tree's
// current head, listed as a readonly state's final tree head until the
// frozen one is recorded.
func logStates(rec stateRecord, head TreeHead) *loglist3.LogStates {
	st := &loglist3.LogState{Timestamp: rec.At.UTC().Truncate(time.Second)}
	switch rec.State {
	case StatePending:
		return &loglist3.LogStates{Pending: st}
	case StateQualified:
		return &loglist3.LogStates{Qualified: st}
	case StateReadOnly:
		if rec.Final != nil {
			head = *rec.Final
		}
		return &loglist3.LogStates{ReadOnly: &loglist3.ReadOnlyLogState{LogState: *st,
			FinalTreeHead: loglist3.TreeHead{SHA256RootHash: head.Root, TreeSize: int64(head.Size)}}}
	case StateRetired:
		return &loglist3.LogStates{Retired: st}
	case StateRejected:
		return &loglist3.LogStates{Rejected: st}
	default:
		return &loglist3.LogStates{Usable: st}
	}
}
