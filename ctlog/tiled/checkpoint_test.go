package tiled

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"filippo.io/sunlight"
	"golang.org/x/mod/sumdb/note"
)

// TestCheckpointSignerVerifiesWithSunlight signs a checkpoint and checks
// it with Sunlight's own RFC6962NoteSignature verifier, which also reads
// the timestamp back.
func TestCheckpointSignerVerifiesWithSunlight(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const origin = "127.0.0.1:6962/tiled/testflume2027h1"
	at := time.UnixMilli(1796169574698)
	s, err := newCheckpointSigner(origin, key, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("root"))
	body := fmt.Sprintf("%s\n%d\n%s\n", origin, 42, base64.StdEncoding.EncodeToString(root[:]))
	signed, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		t.Fatal(err)
	}
	v, err := sunlight.NewRFC6962Verifier(origin, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("Sunlight's verifier refuses the checkpoint: %v\n%s", err, signed)
	}
	ts, err := sunlight.RFC6962SignatureTimestamp(n.Sigs[0])
	if err != nil || ts != at.UnixMilli() {
		t.Errorf("timestamp %d, %v; want %d", ts, err, at.UnixMilli())
	}
	// A checkpoint for another origin, or with an extension line, is not signed.
	for _, bad := range []string{
		fmt.Sprintf("other.example/log\n1\n%s\n", base64.StdEncoding.EncodeToString(root[:])),
		fmt.Sprintf("%s\n1\n%s\nextension\n", origin, base64.StdEncoding.EncodeToString(root[:])),
		fmt.Sprintf("%s\nx\n%s\n", origin, base64.StdEncoding.EncodeToString(root[:])),
	} {
		if _, err := s.Sign([]byte(bad)); err == nil {
			t.Errorf("signed %q", bad)
		}
	}
}
