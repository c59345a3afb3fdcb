// Package ca is ctstage's staging certificate authority: the staging
// hierarchy, the issuance pipeline that submits precertificates to the logs
// and embeds the returned SCTs (RFC 6962 section 3.1) in final
// certificates, revocation and CRLs, and the loopback management endpoint
// (POST /issue).
//
// # Hierarchy
//
// The hierarchy mimics Let's Encrypt's staging environment
// (https://letsencrypt.org/docs/staging-environment/): an ECDSA P-384 root
// and an RSA-4096 root, each with an intermediate of its own key type
// (P-384, RSA-2048), generated on first start (the missing keys in
// parallel) and reused afterwards (LoadOrCreateHierarchy). Every name says
// "(STAGING) ctstage" and the organization says "DO NOT TRUST": these roots
// exist only on the machine that generated them and must never be added to
// a trust store used for browsing.
//
// The keys stay in this package: no other package signs with an issuer's
// key. What others need signed, ca signs: the ACME server's TLS certificate
// (ServingCertificate), the cross-signed intermediates of the alternate
// chains (LoadOrCrossSign), and, the one hand-out, the load-test chains of
// `ctstage bench` (Hierarchy.LoadTestSigner).
//
// # Issuance
//
// CA.Issue checks a Request against its profile (profile.go), signs a
// precertificate with the poison extension after zlint passes it, obtains
// SCTs through package ca/ctpolicy until the CT policy is met, builds the
// final certificate from the same TBSCertificate with the SCT list in place
// of the poison (CheckCorrespondence checks this on DER before signing),
// lints and signs it, and records both in the CA's store (package
// ca/store), the one record of every certificate: the ACME server links to
// it by serial. Final certificates are then submitted to the logs in the
// background; a submission a crash cut short is owed in the store and
// retried at the next start.
//
// # Profiles
//
// Certificate profiles follow RFC 5280 and the CA/Browser Forum Baseline
// Requirements, section 7.1, as Let's Encrypt's own do. Divergences from
// Let's Encrypt's production profiles (docs/divergences.md):
//   - no Authority Information Access, CRL distribution point or policy
//     extensions on the roots' intermediates (the subscriber certificates
//     carry AIA caIssuers and a CRL distribution point under /ca/);
//   - Country is "XX", the ISO 3166-1 user-assigned code the Baseline
//     Requirements allow when no country applies;
//   - intermediates carry only the serverAuth extended key usage, as
//     dedicated TLS server hierarchies must under the Chrome Root Program.
//
// # Revocation
//
// CA.Revoke records a revocation in the store; each intermediate's CRL
// (served under /ca/ on the log address, zlint-clean, cached a minute)
// lists it from then on.
package ca
