// Package testsupport holds, in its subpackages, helpers for tests only:
// testenv (outside services: skip loudly, fail under CI=true), testca (a
// CA of the test's own), acmetest (JWS for raw ACME clients) and fakelog
// (a CT log stand-in for the CA's unit tests). No production code imports
// them.
package testsupport
