package tiled

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// checkpointSigner signs checkpoints with an RFC6962NoteSignature
// (c2sp.org/static-ct-api, "Checkpoints"): the signature body is
//
//	struct {
//		uint64 timestamp;
//		TreeHeadSignature signature;
//	} RFC6962NoteSignature;
//
// where signature is the RFC 6962 section 3.5 digitally-signed
// TreeHeadSignature of the checkpoint's size and root hash at that
// timestamp, and the key ID is the first four bytes of
// SHA-256(origin || 0x0A || 0x05 || LogID). It implements
// golang.org/x/mod/sumdb/note.Signer, which Tessera takes.
type checkpointSigner struct {
	origin string
	key    *ecdsa.PrivateKey
	keyID  uint32
	now    func() time.Time
	// signed, when set, is sent to (without blocking) after each
	// signature: a checkpoint is about to be published.
	signed chan<- struct{}
}

func newCheckpointSigner(origin string, key *ecdsa.PrivateKey, now func() time.Time) (*checkpointSigner, error) {
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("couldn't encode the log's public key: %w", err)
	}
	logID := sha256.Sum256(spki)
	h := sha256.New()
	h.Write([]byte(origin))
	h.Write([]byte{0x0A, 0x05})
	h.Write(logID[:])
	return &checkpointSigner{origin: origin, key: key, keyID: binary.BigEndian.Uint32(h.Sum(nil)), now: now}, nil
}

// Name is the key name: the checkpoint's origin.
func (s *checkpointSigner) Name() string { return s.origin }

// KeyHash is the key ID.
func (s *checkpointSigner) KeyHash() uint32 { return s.keyID }

// Sign signs a checkpoint body ("origin\nsize\nbase64 root\n").
func (s *checkpointSigner) Sign(msg []byte) ([]byte, error) {
	size, root, err := parseCheckpointBody(string(msg), s.origin)
	if err != nil {
		return nil, err
	}
	ts := uint64(s.now().UnixMilli())
	sig, err := s.treeHeadSignature(ts, size, root)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddUint64(ts)
	b.AddBytes(sig)
	if s.signed != nil {
		select {
		case s.signed <- struct{}{}:
		default:
		}
	}
	return b.Bytes()
}

// treeHeadSignature is the DigitallySigned TreeHeadSignature (RFC 6962
// section 3.5): ECDSA with SHA-256 over version v1, signature type
// tree_hash, timestamp, tree size and root hash.
func (s *checkpointSigner) treeHeadSignature(ts, size uint64, root []byte) ([]byte, error) {
	var in cryptobyte.Builder
	in.AddUint8(0) // v1
	in.AddUint8(1) // tree_hash
	in.AddUint64(ts)
	in.AddUint64(size)
	in.AddBytes(root)
	msg, err := in.Bytes()
	if err != nil {
		return nil, err
	}
	return digitallySigned(s.key, msg)
}

// digitallySigned is the RFC 5246 DigitallySigned struct RFC 6962 uses:
// hash algorithm sha256 (4), signature algorithm ecdsa (3), and the DER
// signature of SHA-256(msg), length-prefixed.
func digitallySigned(key crypto.Signer, msg []byte) ([]byte, error) {
	sig, err := signSHA256(key, msg)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddUint8(4)
	b.AddUint8(3)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sig) })
	return b.Bytes()
}

// parseCheckpointBody reads the size and root hash of a checkpoint body
// whose first line must be origin. Extension lines are refused: a
// checkpoint signed with an RFC6962NoteSignature has none.
func parseCheckpointBody(body, origin string) (uint64, []byte, error) {
	lines := strings.Split(body, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return 0, nil, errors.New("tiled: a checkpoint body is three lines: origin, size, root hash")
	}
	if lines[0] != origin {
		return 0, nil, fmt.Errorf("tiled: checkpoint origin %q is not the log's %q", lines[0], origin)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("tiled: checkpoint size %q: %w", lines[1], err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		return 0, nil, fmt.Errorf("tiled: checkpoint root hash %q is not 32 bytes of base64", lines[2])
	}
	return size, root, nil
}

// signSHA256 is the DER ECDSA signature of SHA-256(msg).
func signSHA256(key crypto.Signer, msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign: %w", err)
	}
	return sig, nil
}
