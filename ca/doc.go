// Package ca is ctstage's staging certificate authority: the local staging CA
// hierarchy (two roots and an intermediate under each, generated on first
// start and reused afterwards) and, later, the issuance pipeline that submits
// precertificates to the logs and embeds the returned SCTs (RFC 6962,
// section 3.1) in final certificates.
//
// The hierarchy mimics Let's Encrypt's staging environment
// (https://letsencrypt.org/docs/staging-environment/): an RSA root and an
// ECDSA root, each with an intermediate of its own key type. Every name says
// "(STAGING) ctstage" and the organization says "DO NOT TRUST": these roots
// exist only on the machine that generated them and must never be added to a
// trust store used for browsing.
//
// Certificate profiles follow RFC 5280 and the CA/Browser Forum Baseline
// Requirements, section 7.1, as Let's Encrypt's own roots and intermediates
// do. Divergences from Let's Encrypt's production profiles:
//   - no Authority Information Access, CRL distribution point or policy
//     extensions on the intermediates (nothing serves them yet);
//   - Country is "XX", the ISO 3166-1 user-assigned code the Baseline
//     Requirements allow when no country applies;
//   - intermediates carry only the serverAuth extended key usage, as
//     dedicated TLS server hierarchies must under the Chrome Root Program.
package ca
