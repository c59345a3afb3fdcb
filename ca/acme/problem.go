package acme

import (
	"fmt"
	"net/http"
)

const errNS = "urn:ietf:params:acme:error:"

func problem(typ string, status int, format string, args ...any) *Problem {
	return &Problem{Type: errNS + typ, Status: status, Detail: fmt.Sprintf(format, args...)}
}

// One constructor per RFC 8555 error type used here (section 6.7, plus
// invalidProfile from draft-ietf-acme-profiles).

func accountDoesNotExist(f string, a ...any) *Problem {
	return problem("accountDoesNotExist", http.StatusBadRequest, f, a...)
}
func alreadyRevoked(f string, a ...any) *Problem {
	return problem("alreadyRevoked", http.StatusBadRequest, f, a...)
}
func badCSR(f string, a ...any) *Problem { return problem("badCSR", http.StatusBadRequest, f, a...) }
func badNonce(f string, a ...any) *Problem {
	return problem("badNonce", http.StatusBadRequest, f, a...)
}
func badPublicKey(f string, a ...any) *Problem {
	return problem("badPublicKey", http.StatusBadRequest, f, a...)
}
func badRevocationReason(f string, a ...any) *Problem {
	return problem("badRevocationReason", http.StatusBadRequest, f, a...)
}

// badSignatureAlgorithm lists the accepted algorithms in "algorithms", as
// RFC 8555 section 6.2 asks.
func badSignatureAlgorithm(f string, a ...any) *Problem {
	p := problem("badSignatureAlgorithm", http.StatusBadRequest, f, a...)
	for _, alg := range SignatureAlgorithms {
		p.Algorithms = append(p.Algorithms, string(alg))
	}
	return p
}
func caaProblem(f string, a ...any) *Problem { return problem("caa", http.StatusForbidden, f, a...) }
func compound(f string, a ...any) *Problem {
	return problem("compound", http.StatusBadRequest, f, a...)
}
func connectionProblem(f string, a ...any) *Problem {
	return problem("connection", http.StatusBadRequest, f, a...)
}
func dnsProblem(f string, a ...any) *Problem { return problem("dns", http.StatusBadRequest, f, a...) }
func externalAccountRequired(f string, a ...any) *Problem {
	return problem("externalAccountRequired", http.StatusUnauthorized, f, a...)
}
func incorrectResponse(f string, a ...any) *Problem {
	return problem("incorrectResponse", http.StatusForbidden, f, a...)
}
func invalidContact(f string, a ...any) *Problem {
	return problem("invalidContact", http.StatusBadRequest, f, a...)
}
func invalidProfile(f string, a ...any) *Problem {
	return problem("invalidProfile", http.StatusBadRequest, f, a...)
}
func malformed(f string, a ...any) *Problem {
	return problem("malformed", http.StatusBadRequest, f, a...)
}
func orderNotReady(f string, a ...any) *Problem {
	return problem("orderNotReady", http.StatusForbidden, f, a...)
}
func rateLimited(f string, a ...any) *Problem {
	return problem("rateLimited", http.StatusTooManyRequests, f, a...)
}
func rejectedIdentifier(f string, a ...any) *Problem {
	return problem("rejectedIdentifier", http.StatusBadRequest, f, a...)
}

// unavailable is the answer to a request that failed because the storage
// is unreachable: serverInternal's type (RFC 8555 has no other for it)
// with 503 and a Retry-After, as RFC 9110 section 15.6.4 has it, so that
// the client retries rather than gives up.
func unavailable() *Problem {
	p := problem("serverInternal", http.StatusServiceUnavailable, "the server's storage is unavailable; retry later")
	p.RetryAfter = 3
	return p
}

func serverInternal(f string, a ...any) *Problem {
	return problem("serverInternal", http.StatusInternalServerError, f, a...)
}
func tlsProblem(f string, a ...any) *Problem { return problem("tls", http.StatusBadRequest, f, a...) }
func unauthorized(f string, a ...any) *Problem {
	return problem("unauthorized", http.StatusForbidden, f, a...)
}
func unsupportedContact(f string, a ...any) *Problem {
	return problem("unsupportedContact", http.StatusBadRequest, f, a...)
}
func unsupportedIdentifier(f string, a ...any) *Problem {
	return problem("unsupportedIdentifier", http.StatusBadRequest, f, a...)
}

// Not an ACME type: "about:blank"-style answers for 404/405/409/415.
func notFound(f string, a ...any) *Problem {
	return problem("malformed", http.StatusNotFound, f, a...)
}
func conflict(location, f string, a ...any) *Problem {
	p := problem("malformed", http.StatusConflict, f, a...)
	p.Location = location
	return p
}

// compoundOf is one problem for several: the single one itself, or
// compound with the others as subproblems (RFC 8555 section 6.7.1).
func compoundOf(ps []*Problem) *Problem {
	if len(ps) == 1 {
		return ps[0]
	}
	c := compound("%d identifiers were refused; see subproblems", len(ps))
	c.Status = ps[0].Status
	c.Subproblems = ps
	return c
}
