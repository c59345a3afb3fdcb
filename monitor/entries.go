package monitor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	ct "github.com/google/certificate-transparency-go"
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
	const head, leaf, extra = `{"entries":[`, `{"leaf_input":"`, `","extra_data":"`
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
		b = b[len(prefix):]
		end := bytes.IndexByte(b, '"')
		if end < 0 || !base64Only(b[:end]) {
			return nil, false
		}
		at := len(buf)
		var err error
		if buf, err = base64.StdEncoding.AppendDecode(buf, b[:end]); err != nil {
			return nil, false
		}
		b = b[end:]
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
		case bytes.HasPrefix(b, []byte(`"},`)):
			b = b[3:]
		case string(b) == `"}]}`:
			return es, true
		default:
			return nil, false
		}
	}
}

// base64Only reports whether s holds only the standard base64 alphabet
// and padding: base64's decoder skips CR and LF, which a JSON string
// cannot hold unescaped.
func base64Only(s []byte) bool {
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}
