package acme

import "errors"

// CheckDNSName returns nil when name is a DNS name the server accepts as
// the value of a dns identifier, else an error that says why: lower-case
// letter-digit-hyphen labels, at least two, not starting or ending with
// '-', a top-level label not all digits, at most 253 characters, and
// optionally one leading "*." label. The caller lower-cases first, as the
// server does; a trailing dot is refused. ctstage's config file checks
// the built-in resolver's names with it.
func CheckDNSName(name string) error {
	if why := badDNSName(name); why != "" {
		return errors.New(why)
	}
	return nil
}
