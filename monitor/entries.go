package monitor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	ct "github.com/google/certificate-transparency-go"

	"github.com/ctstage/ctstage/internal/b64json"
)

// getEntries reads get-entries [start, end] (RFC 6962 section 4.6). The
// answer is decoded by decodeEntries when it has the shape every log
// writes, and by encoding/json otherwise: in a catch-up, encoding/json's
// reflection and base64 into []byte were the monitor's largest cost.
func (s *rfcSource) getEntries(ctx context.Context, start, end uint64) ([]ct.LeafEntry, error) {
	u := s.url + "ct/v1/get-entries?start=" + strconv.FormatUint(start, 10) + "&end=" + strconv.FormatUint(end, 10)
	body, err := getBody(ctx, s.hc, u, maxEntriesBody)
	if err != nil {
		return nil, err
	}
	if es, ok := decodeEntries(body); ok {
		return es, nil
	}
	var rsp ct.GetEntriesResponse
	if err := json.Unmarshal(body, &rsp); err != nil {
		return nil, fmt.Errorf("get-entries %d-%d: %w", start, end, err)
	}
	return rsp.Entries, nil
}

// maxEntriesBody bounds a get-entries answer (ctfe's batch of 1,000
// entries of a few KB each is a few MB).
const maxEntriesBody = 256 << 20

// decodeEntries decodes {"entries":[{"leaf_input":"...","extra_data":"..."},...]}
// with nothing else: no other member, no escapes, no whitespace but at the
// ends. ok is false for anything else, which encoding/json then decodes
// (or rejects). The entries' bytes share one buffer.
func decodeEntries(b []byte) (es []ct.LeafEntry, ok bool) {
	b = bytes.TrimSpace(b)
	const head, leaf, extra = `{"entries":[`, `{"leaf_input":"`, `,"extra_data":"`
	if !bytes.HasPrefix(b, []byte(head)) {
		return nil, false
	}
	b = b[len(head):]
	buf := make([]byte, 0, base64.StdEncoding.DecodedLen(len(b)))
	es = []ct.LeafEntry{}
	if string(b) == "]}" {
		return es, true
	}
	field := func(prefix string) ([]byte, bool) {
		if !bytes.HasPrefix(b, []byte(prefix)) {
			return nil, false
		}
		at := len(buf)
		var ok bool
		if buf, b, ok = b64json.AppendString(buf, b[len(prefix):]); !ok {
			return nil, false
		}
		return buf[at:len(buf):len(buf)], true
	}
	for {
		li, ok := field(leaf)
		if !ok {
			return nil, false
		}
		ed, ok := field(extra)
		if !ok {
			return nil, false
		}
		es = append(es, ct.LeafEntry{LeafInput: li, ExtraData: ed})
		switch {
		case bytes.HasPrefix(b, []byte(`},`)):
			b = b[2:]
		case string(b) == `}]}`:
			return es, true
		default:
			return nil, false
		}
	}
}
