// Package ctlog runs ctstage's Certificate Transparency logs: the shards of
// the config (ctlog.Config, or the default topology of two operators with
// half-year temporal shards), each an RFC 6962 log (RFC 6962 section 4) on
// a Trillian tree of its own.
//
// One Server holds, in this process:
//   - Trillian's log server, admin server and sequencer, over gRPC on an
//     in-memory listener (bufconn), on the storage the caller opened
//     (package storage);
//   - per shard, ct-go's trillian/ctfe personality as a library, with the
//     shard's ECDSA P-256 key (--data/logs/<shard>.key, 0600) bound to its
//     tree: a shard whose tree has vanished, or whose key changed, refuses
//     to start rather than fork the log;
//   - the HTTP front end (Handler): /<shard>/ct/v1/... with ctstage's own
//     rules around ctfe (bounded bodies answered 400, get-entries cut to
//     the shard's limit, Retry-After on 503), the v3 log list at
//     /log.v3.json (Chrome's schema, read by ct-go's loglist3), and
//     readiness (Ready): every tree answers and no sequencer has stalled.
//
// Run integrates queued entries and keeps the metrics current; Close
// stops Trillian once the HTTP server and Run have stopped. Metrics go to
// Options.Registerer (nil: none). Divergences from ctfe's own answers are
// in docs/divergences.md.
package ctlog
