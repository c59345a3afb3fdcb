package sctverify

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/crypto/cryptobyte"
)

// STH is a signed tree head whose signature has been checked.
type STH struct {
	TreeSize  uint64
	Timestamp uint64
	RootHash  [32]byte
}

// GetSTH fetches a log's get-sth and checks its signature with the log's
// key (RFC 6962 section 3.5).
func (v *Verifier) GetSTH(ctx context.Context, l *Log) (*STH, error) {
	if l.PublicKey == nil {
		return nil, fmt.Errorf("couldn't check the STH: %v", l.KeyErr)
	}
	b, err := httpGet(ctx, v.HTTPClient, endpoint(l, "get-sth"), 1<<16)
	if err != nil {
		return nil, fmt.Errorf("couldn't get the STH: %w", err)
	}
	var rsp struct {
		TreeSize  uint64 `json:"tree_size"`
		Timestamp uint64 `json:"timestamp"`
		Root      []byte `json:"sha256_root_hash"`
		Signature []byte `json:"tree_head_signature"`
	}
	if err := json.Unmarshal(b, &rsp); err != nil {
		return nil, fmt.Errorf("couldn't parse the STH: %w", err)
	}
	if len(rsp.Root) != 32 {
		return nil, fmt.Errorf("STH root hash of %d bytes", len(rsp.Root))
	}
	sth := &STH{TreeSize: rsp.TreeSize, Timestamp: rsp.Timestamp, RootHash: [32]byte(rsp.Root)}
	if err := sth.verify(l, rsp.Signature); err != nil {
		return nil, fmt.Errorf("STH signature: %w", err)
	}
	return sth, nil
}

// verify checks sig, a DigitallySigned TreeHeadSignature (RFC 6962
// section 3.5), over sth with the log's key: get-sth's signature, and the
// body of a checkpoint's RFC6962NoteSignature.
func (sth *STH) verify(l *Log, sig []byte) error {
	hashAlg, sigAlg, raw, err := parseDigitallySigned(sig)
	if err != nil {
		return err
	}
	data := make([]byte, 0, 50)
	data = append(data, 0, 1) // v1, tree_hash
	data = binary.BigEndian.AppendUint64(data, sth.Timestamp)
	data = binary.BigEndian.AppendUint64(data, sth.TreeSize)
	data = append(data, sth.RootHash[:]...)
	return verifySignature(l.PublicKey, hashAlg, sigAlg, raw, data)
}

func parseDigitallySigned(b []byte) (hashAlg, sigAlg uint8, sig []byte, err error) {
	s := cryptobyte.String(b)
	if !s.ReadUint8(&hashAlg) || !s.ReadUint8(&sigAlg) || !s.ReadUint16LengthPrefixed((*cryptobyte.String)(&sig)) {
		return 0, 0, nil, ErrMalformed
	}
	if !s.Empty() {
		return 0, 0, nil, ErrTrailingData
	}
	return hashAlg, sigAlg, sig, nil
}

func endpoint(l *Log, path string) string {
	return strings.TrimRight(l.URL, "/") + "/ct/v1/" + path
}

// errNotFound: the log has no entry with the hash in the tree asked about.
var errNotFound = errors.New("entry not found")

// ProveInclusion asks the log for an inclusion proof of leafHash in the
// tree of sth and verifies it against sth's root. It returns the leaf
// index.
func (v *Verifier) ProveInclusion(ctx context.Context, l *Log, sth *STH, leafHash [32]byte) (uint64, error) {
	if sth.TreeSize == 0 {
		return 0, errNotFound
	}
	u := endpoint(l, "get-proof-by-hash") + "?hash=" + url.QueryEscape(base64.StdEncoding.EncodeToString(leafHash[:])) +
		"&tree_size=" + strconv.FormatUint(sth.TreeSize, 10)
	b, err := httpGet(ctx, v.HTTPClient, u, 1<<16)
	var st errHTTPStatus
	if errors.As(err, &st) && st.code == 404 {
		return 0, errNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't get the proof: %w", err)
	}
	var rsp struct {
		LeafIndex int64    `json:"leaf_index"`
		AuditPath [][]byte `json:"audit_path"`
	}
	if err := json.Unmarshal(b, &rsp); err != nil {
		return 0, fmt.Errorf("couldn't parse the proof: %w", err)
	}
	if rsp.LeafIndex < 0 {
		return 0, fmt.Errorf("negative leaf index %d", rsp.LeafIndex)
	}
	idx := uint64(rsp.LeafIndex)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, sth.TreeSize, leafHash[:], rsp.AuditPath, sth.RootHash[:]); err != nil {
		return 0, fmt.Errorf("inclusion proof does not verify: %w", err)
	}
	return idx, nil
}

// inclusionJob is one valid SCT to look up in its log.
type inclusionJob struct {
	res  *SCTResult
	log  *Log
	sct  *SCT
	hash [32]byte
	// index is a tiled log's leaf_index.
	index uint64
}

// checkInclusion runs the jobs, one goroutine per log, each log's STH
// fetched once.
func (v *Verifier) checkInclusion(ctx context.Context, jobs []inclusionJob, now time.Time) {
	byLog := map[*Log][]inclusionJob{}
	for _, j := range jobs {
		byLog[j.log] = append(byLog[j.log], j)
	}
	done := make(chan struct{})
	for l, js := range byLog {
		go func() {
			defer func() { done <- struct{}{} }()
			v.checkLog(ctx, l, js, now)
		}()
	}
	for range byLog {
		<-done
	}
}

func (v *Verifier) checkLog(ctx context.Context, l *Log, jobs []inclusionJob, now time.Time) {
	var sth *STH
	var err error
	if l.Tiled {
		sth, _, err = v.Checkpoint(ctx, l)
	} else {
		sth, err = v.GetSTH(ctx, l)
	}
	for _, j := range jobs {
		if err != nil {
			j.res.Inclusion = &Inclusion{Status: InclusionError, Detail: err.Error()}
			continue
		}
		var idx uint64
		var perr error
		if l.Tiled {
			idx, perr = j.index, v.ProveTiledInclusion(ctx, l, sth, j.index, j.hash)
		} else {
			idx, perr = v.ProveInclusion(ctx, l, sth, j.hash)
		}
		switch {
		case perr == nil:
			j.res.Inclusion = &Inclusion{Status: InclusionIncluded, LeafIndex: idx, TreeSize: sth.TreeSize}
		case errors.Is(perr, errNotFound) && now.Sub(j.sct.Time()) < l.MMD:
			j.res.Inclusion = &Inclusion{Status: InclusionPending, TreeSize: sth.TreeSize,
				Detail: fmt.Sprintf("not in the tree of %d yet; the MMD of %s ends %s", sth.TreeSize, l.MMD, j.sct.Time().Add(l.MMD).Format(time.RFC3339))}
		case errors.Is(perr, errNotFound):
			j.res.Inclusion = &Inclusion{Status: InclusionNotIncluded, TreeSize: sth.TreeSize,
				Detail: fmt.Sprintf("not in the tree of %d, and the MMD of %s has passed", sth.TreeSize, l.MMD)}
		default:
			j.res.Inclusion = &Inclusion{Status: InclusionError, TreeSize: sth.TreeSize, Detail: perr.Error()}
		}
	}
}

// ErrEmptyTreeConsistency: a consistency proof from the empty tree, which
// proves nothing (every tree extends it).
var ErrEmptyTreeConsistency = errors.New("consistency from an empty tree proves nothing")

// VerifyConsistency checks an RFC 6962 consistency proof between two tree
// heads. Unlike transparency-dev/merkle v0.0.2's proof.VerifyConsistency,
// which it wraps, it refuses size1 == 0, as later merkle releases and
// their test vectors do.
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	if size1 == 0 {
		return ErrEmptyTreeConsistency
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2)
}
