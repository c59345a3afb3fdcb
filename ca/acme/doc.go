// Package acme is an ACME v2 server (RFC 8555) in front of the staging CA:
// directory, nonces, JWS (section 6), accounts, orders with DNS and IP
// identifiers (RFC 8738), authorizations, challenges http-01, dns-01 and
// tls-alpn-01 (RFC 8737), finalize through (*ca.CA).Issue, certificate
// download with an alternate chain, revocation, renewal information
// (ARI, RFC 9773) and profiles in the manner of Let's Encrypt.
//
// Errors are typed (*Problem) inside the package and become
// application/problem+json (RFC 8555 section 6.7) only in the HTTP wrapper;
// anything that is not a *Problem is answered as serverInternal with its
// detail masked.
//
// Divergences from Let's Encrypt are listed in docs/divergences.md.
package acme
