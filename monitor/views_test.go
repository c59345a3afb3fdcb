package monitor

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadHeads(t *testing.T) {
	id := strings.Repeat("ab", 32)
	root := strings.Repeat("01", 32)
	in := `{"log_id":"` + id + `","size":5,"root":"` + root + `","time":"2026-12-01T00:00:00Z"}` + "\n\n" +
		`{"log_id":"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=","size":6,"root":"` + root + `","time":"2026-12-01T00:00:01Z"}` + "\n"
	hs, err := ReadHeads(strings.NewReader(in), "gossip")
	if err != nil || len(hs) != 2 {
		t.Fatalf("%v, %d heads", err, len(hs))
	}
	if hs[0].LogID != hs[1].LogID || hs[0].Head.Size != 5 || hs[1].Head.Root[0] != 1 || hs[1].Source != "gossip line 3" {
		t.Errorf("%+v", hs)
	}
	for _, bad := range []string{
		`{"log_id":"abcd","size":1,"root":"` + root + `"}`,
		`{"log_id":"` + id + `","size":1,"root":"0102"}`,
		`{"log_id":"` + id + `","size":"x"}`,
		`not json`,
	} {
		if _, err := ReadHeads(strings.NewReader(bad), "bad"); err == nil {
			t.Errorf("took %s", bad)
		}
	}
}

// FuzzReadHeads: heads from other monitors never panic the parser.
func FuzzReadHeads(f *testing.F) {
	f.Add([]byte(`{"log_id":"` + strings.Repeat("ab", 32) + `","size":5,"root":"` + strings.Repeat("01", 32) + `","time":"2026-12-01T00:00:00Z"}`))
	f.Add([]byte("{}\n{\"size\":1}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := ReadHeads(bytes.NewReader(b), "fuzz")
		if err == nil {
			for _, h := range hs {
				if h.Source == "" {
					t.Fatal("a head without its source")
				}
			}
		}
	})
}
