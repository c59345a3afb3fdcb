// Package sqlite is a persistent, embedded Trillian storage provider on
// SQLite (modernc.org/sqlite: pure Go, no cgo). It implements Trillian's
// [storage.LogStorage] and [storage.AdminStorage] over one database file, so
// that ctstage serves RFC 6962 logs ([RFC 6962], [RFC 9162]) without a
// database server.
//
// The storage logic is a port of Trillian's own storage/mysql: Merkle nodes
// are stored as tiles ("subtrees") through Trillian's storage/cache subtree
// cache, leaf data and sequenced leaves live in separate tables, queued leaves
// wait in an Unsequenced table, signed log roots in TreeHead, and trees are
// administered with soft delete, undelete and hard delete. Leaves are
// de-duplicated by their LeafIdentityHash: a QueueLeaves call for a leaf that
// is already stored answers AlreadyExists together with the ORIGINAL leaf
// (value, extra data, queue timestamp), exactly as the MySQL storage does;
// ctfe relies on that to hand out the same SCT when a chain is resubmitted.
//
// # Connections and concurrency
//
// The database runs in WAL mode ([WAL]) so that readers never block the
// writer or each other. All writes go through ONE writer connection (a
// database/sql pool limited to one connection, every transaction started
// with BEGIN IMMEDIATE), so writers inside this process queue up in Go
// instead of failing with "database is locked". Read-only snapshots
// (SnapshotForTree, admin Snapshot, GetActiveLogIDs) use a separate pool of
// query_only connections; each snapshot is one SQLite read transaction and
// so sees one consistent state of the file. busy_timeout covers the rare
// case of another process holding the lock (e.g. a backup tool).
//
// Because the single writer connection is shared, a caller must not start a
// read-write transaction (log or admin) from inside another one: it would wait
// for the connection it already holds.
//
// # Durability
//
// PRAGMA synchronous=FULL in WAL mode ([synchronous]): SQLite fsyncs the WAL
// at every commit, so a transaction that returned success survives both a
// kill -9 of the process and a power loss. synchronous=NORMAL, SQLite's usual
// WAL setting, only survives a process crash: the last commits before a power
// loss could vanish, and a log that handed out an SCT for a leaf it then
// forgets has broken its promise (the Maximum Merge Delay of RFC 6962,
// section 3). There is deliberately no option to weaken this.
//
// An fsync per commit caps the commit rate at the disk's sync rate, so
// QueueLeaves, the hot path (ctfe calls it once per add-chain), uses GROUP
// COMMIT: concurrent callers hand their leaves to one committer goroutine
// that takes whatever is waiting (up to [Options.MaxBatchLeaves]), writes it
// all in one transaction, commits (one fsync) and then answers every caller.
// Duplicates are resolved as if the callers had run one after the other, also
// between callers in the same batch. If a batch fails as a whole, each of its
// requests is retried in a transaction of its own, so one bad request cannot
// fail the others.
//
// WAL checkpoints (copying committed pages into the database file) run
// mostly on a separate connection every 100ms, so that the writer's commits
// rarely wait for them; see checkpointer.
//
// # Schema
//
// The schema version is kept in PRAGMA user_version (currently 1) and the
// file is marked with PRAGMA application_id, so that Open refuses files it
// did not create and files written by a newer ctstage; later versions add
// migrations in schema.go. Open runs PRAGMA quick_check unless
// [Options.SkipQuickCheck] is set: a corrupted file is reported at start
// ([ErrCorrupt]), not in the middle of serving.
//
// # Errors
//
// Errors are wrapped with %w. Failures of the storage medium (SQLITE_FULL,
// SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_BUSY after the
// timeout) wrap [ErrUnavailable], which carries gRPC code Unavailable, so that
// Trillian passes it through and ctfe answers HTTP 503. Corruption wraps
// [ErrCorrupt] (gRPC DataLoss). Other errors keep the gRPC codes Trillian's
// MySQL storage uses (NotFound, FailedPrecondition, AlreadyExists, ...).
//
// # Divergences from Trillian's MySQL storage
//
//   - Subtrees are stored without revisions (the MySQL storage's default for
//     new trees); snapshots rely on SQLite's transaction isolation instead.
//     Trees take no storage_settings.
//   - QueueLeaves processes a call's leaves in the order given, so of two
//     equal leaves in one call the first is queued and the second is reported
//     as AlreadyExists (MySQL sorts by hash first; the result is the same
//     leaf data either way).
//   - Trillian's storage.RegisterProvider is not used: its provider
//     constructor takes no file path, which would need a global flag. A [*DB]
//     satisfies [storage.Provider] and is wired in directly.
//
// [RFC 6962]: https://www.rfc-editor.org/rfc/rfc6962
// [RFC 9162]: https://www.rfc-editor.org/rfc/rfc9162
// [WAL]: https://www.sqlite.org/wal.html
// [synchronous]: https://www.sqlite.org/pragma.html#pragma_synchronous
package sqlite
