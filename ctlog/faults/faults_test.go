package faults

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		tiled      bool
		field      string // "" for no error
	}{
		{"Unavailable", `{"kind":"unavailable","status":429,"retry_after_s":3}`, false, ""},
		{"DelayMinOnly", `{"kind":"delay","min_ms":10}`, false, ""},
		{"RejectNames", `{"kind":"reject","names":["example.com"]}`, true, ""},
		{"NoPublish", `{"kind":"no_publish","after_s":90}`, true, ""},
		{"Endpoints", `{"kind":"bad_proof","endpoints":["get-sth-consistency"]}`, false, ""},
		{"TiledEndpoint", `{"kind":"bad_entry","endpoints":["data-tile"]}`, true, ""},
		{"UnknownKind", `{"kind":"boom"}`, false, "kind"},
		{"SplitView", `{"kind":"split_view","fraction":0.5}`, false, ""},
		{"SplitViewClients", `{"kind":"split_view","clients":["127.0.0.2","::1"]}`, true, ""},
		{"SplitViewBadClient", `{"kind":"split_view","clients":["localhost"]}`, false, "clients"},
		{"SplitViewTiledEndpoint", `{"kind":"split_view","endpoints":["get-sth"]}`, true, "endpoints"},
		{"NoIntegrateOnTiled", `{"kind":"no_integrate"}`, true, "kind"},
		{"Fraction", `{"kind":"drop","fraction":1.01}`, false, "fraction"},
		{"FractionOfAHold", `{"kind":"no_integrate","fraction":0.5}`, false, "fraction"},
		{"Status", `{"kind":"unavailable","status":502}`, false, "status"},
		{"OtherKindsParam", `{"kind":"drop","min_ms":3}`, false, "min_ms"},
		{"MinAboveMax", `{"kind":"delay","min_ms":30,"max_ms":20}`, false, "min_ms"},
		{"NoDelay", `{"kind":"delay"}`, false, "max_ms"},
		{"RejectNothing", `{"kind":"reject"}`, false, "names"},
		{"Skew0", `{"kind":"sct_timestamp_skew"}`, false, "offset_ms"},
		{"EndpointOfOtherShard", `{"kind":"drop","endpoints":["checkpoint"]}`, false, "endpoints"},
		{"EndpointOutOfKind", `{"kind":"bad_sth_signature","endpoints":["add-chain"]}`, false, "endpoints"},
		{"AfterOfOtherKind", `{"kind":"drop","after_s":1}`, false, "after_s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.body), tc.tiled)
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Errorf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
	for _, body := range []string{`{"kind":`, `{"kind":"drop","x":1}`, `{"kind":"drop"} {}`, `[]`} {
		if _, err := Decode([]byte(body), false); err == nil {
			t.Errorf("Decode(%s) took it", body)
		}
	}
}

func TestSetHits(t *testing.T) {
	s := NewSet(false)
	if _, ok := s.Hits(Drop, "get-sth", "127.0.0.1"); ok {
		t.Fatal("an empty set hits")
	}
	zero := 0.0
	for _, f := range []Fault{{Kind: Drop, Endpoints: []string{"get-sth"}}, {Kind: Delay, MinMS: 1, Fraction: &zero}} {
		if err := s.Add(f, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.Hits(Drop, "get-sth", "127.0.0.1"); !ok {
		t.Error("drop on get-sth does not hit get-sth")
	}
	if _, ok := s.Hits(Drop, "get-entries", "127.0.0.1"); ok {
		t.Error("drop on get-sth hits get-entries")
	}
	if _, ok := s.Hits(Delay, "get-sth", "127.0.0.1"); ok {
		t.Error("a fraction of 0 hits")
	}
	if l := s.List(); len(l) != 2 || l[0].Kind != Drop || l[1].Kind != Delay {
		t.Errorf("List %+v", l)
	}
	if n := s.Clear(); n != 2 || len(s.List()) != 0 {
		t.Errorf("Clear cleared %d, left %v", n, s.List())
	}
}

// TestSplitViewClients: a split view touches the listed clients only
// (addresses compared in canonical form), or a sticky share of
// addresses: the same address always gets the same view.
func TestSplitViewClients(t *testing.T) {
	s := NewSet(true)
	if err := s.Add(Fault{Kind: SplitView, Clients: []string{" 0:0:0:0:0:0:0:1", "127.0.0.2"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for client, want := range map[string]bool{"::1": true, "127.0.0.2": true, "127.0.0.1": false} {
		if _, ok := s.Hits(SplitView, "checkpoint", client); ok != want {
			t.Errorf("client %s: forked %v, want %v", client, ok, want)
		}
	}
	if _, ok := s.Hits(SplitView, "issuer", "127.0.0.2"); ok {
		t.Error("a split view of issuers")
	}
	half := 0.5
	if err := s.Add(Fault{Kind: SplitView, Fraction: &half}, time.Now()); err != nil {
		t.Fatal(err)
	}
	forked := 0
	for i := range 1000 {
		client := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		_, first := s.Hits(SplitView, "checkpoint", client)
		for range 3 {
			if _, again := s.Hits(SplitView, "tile", client); again != first {
				t.Fatalf("client %s changed views", client)
			}
		}
		if first {
			forked++
		}
	}
	if forked < 400 || forked > 600 {
		t.Errorf("%d of 1000 addresses forked at a fraction of 0.5", forked)
	}
}

// TestMiddleware applies each corrupting fault to a fake log's answers.
func TestMiddleware(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString([]byte{4, 3, 0, 3, 1, 2, 3})
	// A MerkleTreeLeaf with an x509 entry of 4 bytes.
	leaf := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 4, 0xa, 0xb, 0xc, 0xd, 0, 0}
	answers := map[string]string{
		"/ct/v1/add-chain":         `{"sct_version":0,"id":"AA==","timestamp":1,"extensions":"","signature":"` + sig + `"}`,
		"/ct/v1/get-sth":           `{"tree_size":1,"timestamp":1,"sha256_root_hash":"AA==","tree_head_signature":"` + sig + `"}`,
		"/ct/v1/get-proof-by-hash": `{"leaf_index":0,"audit_path":[]}`,
		"/ct/v1/get-entries":       `{"entries":[{"leaf_input":"` + base64.StdEncoding.EncodeToString(leaf) + `","extra_data":""}]}`,
	}
	log := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { write(w, answers[r.URL.Path]) })
	for _, tc := range []struct {
		kind     Kind
		path     string
		field    string
		endpoint string
	}{
		{BadSCTSignature, "/ct/v1/add-chain", "signature", "add-chain"},
		{BadSTHSignature, "/ct/v1/get-sth", "tree_head_signature", "get-sth"},
		{BadProof, "/ct/v1/get-proof-by-hash", "audit_path", "get-proof-by-hash"},
		{BadEntry, "/ct/v1/get-entries", "entries", "get-entries"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			s := NewSet(false)
			if err := s.Add(Fault{Kind: tc.kind}, time.Now()); err != nil {
				t.Fatal(err)
			}
			m := &Middleware{Shard: "x", Set: s, Endpoint: func(r *http.Request) string { return tc.endpoint }}
			rec := httptest.NewRecorder()
			m.Wrap(log).ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			var got, want map[string]json.RawMessage
			json.Unmarshal(rec.Body.Bytes(), &got)
			json.Unmarshal([]byte(answers[tc.path]), &want)
			if rec.Code != 200 || bytes.Equal(got[tc.field], want[tc.field]) {
				t.Errorf("%d, %s left %s as it was: %s", rec.Code, tc.kind, tc.field, rec.Body)
			}
		})
	}
	t.Run("note", func(t *testing.T) {
		note := "origin\n1\nAAAA\n\n— origin " + base64.StdEncoding.EncodeToString([]byte{1, 2, 3, 4, 5, 6}) + "\n"
		out, ok := corruptNoteSignature([]byte(note))
		if !ok || string(out) == note || !strings.HasPrefix(string(out), "origin\n1\nAAAA\n\n— origin ") {
			t.Errorf("corruptNoteSignature: %q %v", out, ok)
		}
	})
}

func write(w http.ResponseWriter, s string) { w.Write([]byte(s)) }

// FuzzDecode: no fault body, however malformed, panics the decoder or
// passes validation with values out of range.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"kind":"delay","min_ms":1,"max_ms":2}`), false)
	f.Add([]byte(`{"kind":"reject","names":["a"],"fraction":0.5,"endpoints":["add-chain"]}`), true)
	f.Add([]byte(`{"kind":"no_publish","after_s":-1}`), true)
	f.Fuzz(func(t *testing.T, b []byte, tiled bool) {
		flt, err := Decode(b, tiled)
		if err != nil {
			return
		}
		if fr := flt.fraction(); fr < 0 || fr > 1 {
			t.Fatalf("fraction %v passed", fr)
		}
		if flt.Kind == Delay && (flt.MinMS > flt.MaxMS || flt.MaxMS > 600_000) {
			t.Fatalf("delay %d-%d passed", flt.MinMS, flt.MaxMS)
		}
	})
}

// FuzzCorrupt: the corruptions read bytes a log produced; whatever they
// are, they never panic.
func FuzzCorrupt(f *testing.F) {
	f.Add([]byte(`{"entries":[{"leaf_input":"AAAAAAAAAAAAAAAAAAA="}]}`), uint8(3))
	f.Add([]byte("origin\n1\nAAAA\n\n— origin AAAA\n"), uint8(1))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff}, uint8(4))
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		kinds := []Kind{BadSCTSignature, BadSTHSignature, BadProof, BadEntry}
		eps := []string{"add-chain", "checkpoint", "get-sth", "tile", "get-sth-consistency", "data-tile", "get-entry-and-proof", "get-entries"}
		corrupt(kinds[int(which)%len(kinds)], eps[int(which/4)%len(eps)], bytes.Clone(b))
		flipEntry(bytes.Clone(b), 8)
		flipEntry(bytes.Clone(b), 10)
	})
}

func TestCorruptEmptyNode(t *testing.T) {
	out, ok := corrupt(BadProof, "get-proof-by-hash", []byte(`{"leaf_index":0,"audit_path":[""]}`))
	if !ok || !strings.Contains(string(out), "+vr6") {
		t.Errorf("%s %v", out, ok)
	}
}
