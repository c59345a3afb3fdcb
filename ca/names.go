package ca

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zmap/zlint/v3/util"
	"golang.org/x/net/idna"
)

// CheckPublicName returns nil when the DNS name d (lower-case, its syntax
// already checked, optionally "*."-prefixed) may appear in a publicly
// trusted certificate at time now: it ends in a top-level domain delegated
// in the root zone (not .test, .local, .internal, .invalid, ...), and each
// "xn--" label is valid Punycode. These are what zlint's
// e_dnsname_not_valid_tld and e_international_dns_name_not_unicode demand
// of every certificate, so a request for such a name is refused before
// anything is signed, as Let's Encrypt refuses it at newOrder; the lint
// stays as the last guard. The error says why, without the name.
func CheckPublicName(d string, now time.Time) error {
	if !util.HasValidTLD(strings.TrimPrefix(d, "*."), now) {
		return errors.New("does not end in a top-level domain of the public DNS root zone (reserved names such as .test, .local and .internal cannot be in a publicly trusted certificate)")
	}
	for _, l := range strings.Split(strings.TrimPrefix(d, "*."), ".") {
		if !strings.HasPrefix(l, "xn--") {
			continue
		}
		if _, err := idna.Lookup.ToUnicode(l); err != nil {
			return fmt.Errorf("label %q is not valid Punycode (IDNA): %v", l, err)
		}
	}
	return nil
}
