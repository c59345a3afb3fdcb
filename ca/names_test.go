package ca

import (
	"strings"
	"testing"
	"time"
)

func TestCheckPublicName(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		want string // "" for accepted, else a part of the error
	}{
		{"example.com", ""},
		{"*.example.com", ""},
		{"a.b.example.dev", ""},
		{"xn--bcher-kva.example", "top-level domain"}, // .example is reserved (RFC 2606)
		{"xn--bcher-kva.com", ""},
		{"a.test", "top-level domain"},
		{"printer.local", "top-level domain"},
		{"*.corp.internal", "top-level domain"},
		{"host.invalid", "top-level domain"},
		{"example.notarealtld", "top-level domain"},
		{"xn--a.example.com", "Punycode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPublicName(tc.name, now)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckPublicName(%q) = %v, want nil", tc.name, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckPublicName(%q) = %v, want an error with %q", tc.name, err, tc.want)
			}
		})
	}
}
