// Package b64json decodes the JSON strings of standard base64 (RFC 4648
// section 4) that CT's JSON APIs carry (RFC 6962 section 4): a fast path
// for the shape every client writes, beside encoding/json, whose
// reflection and unquoting cost more than the bytes' decoding. Callers
// fall back to encoding/json for anything else, so that what it accepts
// and the errors it gives stay the reference.
package b64json

import (
	"bytes"
	"encoding/base64"
)

// AppendString decodes the JSON string at the start of b, its opening
// quote already consumed: base64 up to the closing quote, appended to
// dst. It returns dst with the bytes, and b after the closing quote. ok is
// false, with dst as given, when the string holds anything but the
// standard base64 alphabet and padding (an escape, a control character) or
// does not decode, or when there is no closing quote.
func AppendString(dst, b []byte) (out, rest []byte, ok bool) {
	end := bytes.IndexByte(b, '"')
	if end < 0 || !Only(b[:end]) {
		return dst, b, false
	}
	out, err := base64.StdEncoding.AppendDecode(dst, b[:end])
	if err != nil {
		return dst, b, false
	}
	return out, b[end+1:], true
}

// Only reports whether s holds only the standard base64 alphabet and
// padding: base64's decoder skips CR and LF, which a JSON string cannot
// hold unescaped.
func Only(s []byte) bool {
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}
