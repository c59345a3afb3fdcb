package b64json

import (
	"bytes"
	"testing"
)

func TestAppendString(t *testing.T) {
	for _, tc := range []struct {
		in, rest string
		want     []byte
		ok       bool
	}{
		{`AAE=",x`, ",x", []byte{0, 1}, true},
		{`"`, "", []byte{}, true},
		{`AAE=`, `AAE=`, nil, false},         // no closing quote
		{`A\/E="`, `A\/E="`, nil, false},     // an escape
		{"AA\nE=\"", "AA\nE=\"", nil, false}, // base64 would skip the newline
		{`AAE"`, `AAE"`, nil, false},         // bad padding
	} {
		dst := []byte{9}
		out, rest, ok := AppendString(dst, []byte(tc.in))
		if ok != tc.ok || string(rest) != tc.rest {
			t.Errorf("AppendString(%q) = rest %q, %v; want %q, %v", tc.in, rest, ok, tc.rest, tc.ok)
			continue
		}
		want := append([]byte{9}, tc.want...)
		if !bytes.Equal(out, want) {
			t.Errorf("AppendString(%q) = %x, want %x", tc.in, out, want)
		}
	}
}
