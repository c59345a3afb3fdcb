// Package sctverify checks Signed Certificate Timestamps (RFC 6962 section
// 3) the way browsers do, and explains the result: for every SCT of a
// certificate (embedded, from the TLS extension, or from a stapled OCSP
// response) whether it parses, whether its signature verifies with the key
// of a log in a v3 log list, whether the log has included the entry (an
// inclusion proof against a signature-checked STH), and whether the SCTs
// meet Chrome's, Apple's and Mozilla's CT policies, naming the rule that
// decided.
//
// It is stricter than ct-go's ctutil on purpose (see docs/design.md, "Known
// traps"): the SCT list extension is cut out of the TBSCertificate byte for
// byte as Chromium does, not re-encoded; the issuer is found by name and
// signature, not by position; the leaf hash covers the SCT's extensions;
// trailing bytes anywhere are refused.
//
// Specs: RFC 6962 (https://www.rfc-editor.org/rfc/rfc6962), Chrome's CT
// policy (https://googlechrome.github.io/CertificateTransparency/ct_policy.html),
// Apple's (https://support.apple.com/en-us/103214), Mozilla's
// (https://wiki.mozilla.org/SecurityEngineering/Certificate_Transparency).
// docs/verify.md gives the reading of each policy encoded here.
//
// A Verifier is safe for concurrent use once built.
package sctverify
