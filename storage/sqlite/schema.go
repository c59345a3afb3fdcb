// The schema is adapted from github.com/google/trillian storage/mysql/schema,
// Copyright Google LLC, Apache-2.0.

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// applicationID marks a file as a ctstage Trillian database ("ctTr").
const applicationID = 0x63745472

// migrations[i] brings the schema from user_version i to i+1. Append new
// versions; never edit a released one.
var migrations = []string{schemaV1}

// schemaVersion is the user_version this code writes and understands.
var schemaVersion = len(migrations)

// schemaV1 is the first schema: Trillian's MySQL tables with SQLite types.
// Subtrees carry no revision (see the package doc). Small, fixed-size rows
// live in WITHOUT ROWID tables keyed by their primary key; rows with large
// blobs keep a rowid.
const schemaV1 = `
CREATE TABLE Trees(
  TreeId                INTEGER NOT NULL PRIMARY KEY,
  TreeState             TEXT NOT NULL,
  TreeType              TEXT NOT NULL,
  DisplayName           TEXT,
  Description           TEXT,
  CreateTimeMillis      INTEGER NOT NULL,
  UpdateTimeMillis      INTEGER NOT NULL,
  MaxRootDurationMillis INTEGER NOT NULL,
  Deleted               INTEGER,
  DeleteTimeMillis      INTEGER
) STRICT;

CREATE TABLE TreeControl(
  TreeId                  INTEGER NOT NULL PRIMARY KEY,
  SigningEnabled          INTEGER NOT NULL,
  SequencingEnabled       INTEGER NOT NULL,
  SequenceIntervalSeconds INTEGER NOT NULL,
  FOREIGN KEY(TreeId) REFERENCES Trees(TreeId) ON DELETE CASCADE
) STRICT;

CREATE TABLE Subtree(
  TreeId    INTEGER NOT NULL,
  SubtreeId BLOB NOT NULL,
  Nodes     BLOB NOT NULL,
  PRIMARY KEY(TreeId, SubtreeId),
  FOREIGN KEY(TreeId) REFERENCES Trees(TreeId) ON DELETE CASCADE
) STRICT;

CREATE TABLE TreeHead(
  TreeId            INTEGER NOT NULL,
  TreeHeadTimestamp INTEGER NOT NULL,
  TreeSize          INTEGER NOT NULL,
  RootHash          BLOB NOT NULL,
  RootSignature     BLOB NOT NULL,
  TreeRevision      INTEGER NOT NULL,
  PRIMARY KEY(TreeId, TreeHeadTimestamp),
  FOREIGN KEY(TreeId) REFERENCES Trees(TreeId) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX TreeHeadRevisionIdx ON TreeHead(TreeId, TreeRevision);

CREATE TABLE LeafData(
  TreeId              INTEGER NOT NULL,
  LeafIdentityHash    BLOB NOT NULL,
  LeafValue           BLOB NOT NULL,
  ExtraData           BLOB,
  QueueTimestampNanos INTEGER NOT NULL,
  PRIMARY KEY(TreeId, LeafIdentityHash),
  FOREIGN KEY(TreeId) REFERENCES Trees(TreeId) ON DELETE CASCADE
) STRICT;

CREATE TABLE SequencedLeafData(
  TreeId                  INTEGER NOT NULL,
  SequenceNumber          INTEGER NOT NULL CHECK(SequenceNumber >= 0),
  LeafIdentityHash        BLOB NOT NULL,
  MerkleLeafHash          BLOB NOT NULL,
  IntegrateTimestampNanos INTEGER NOT NULL,
  PRIMARY KEY(TreeId, SequenceNumber),
  FOREIGN KEY(TreeId) REFERENCES Trees(TreeId) ON DELETE CASCADE,
  FOREIGN KEY(TreeId, LeafIdentityHash) REFERENCES LeafData(TreeId, LeafIdentityHash) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX SequencedLeafMerkleIdx ON SequencedLeafData(TreeId, MerkleLeafHash);
CREATE INDEX SequencedLeafIdentityIdx ON SequencedLeafData(TreeId, LeafIdentityHash);

CREATE TABLE Unsequenced(
  TreeId              INTEGER NOT NULL,
  Bucket              INTEGER NOT NULL,
  LeafIdentityHash    BLOB NOT NULL,
  MerkleLeafHash      BLOB NOT NULL,
  QueueTimestampNanos INTEGER NOT NULL,
  PRIMARY KEY(TreeId, Bucket, QueueTimestampNanos, LeafIdentityHash),
  FOREIGN KEY(TreeId) REFERENCES Trees(TreeId) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
`

// migrate brings the schema of the database behind the writer connection up
// to schemaVersion, in one transaction. It refuses files that are not ctstage
// Trillian databases and files written by a newer version.
func migrate(ctx context.Context, writer *sql.DB) error {
	tx, err := writer.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "begin schema transaction")
	}
	defer func() { _ = tx.Rollback() }()
	version, err := checkIdentity(ctx, tx)
	if err != nil {
		return err
	}
	if version == schemaVersion {
		return nil
	}
	for v := version; v < schemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return wrap(err, "apply schema version %d", v+1)
		}
	}
	stamp := fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d", applicationID, schemaVersion)
	if _, err := tx.ExecContext(ctx, stamp); err != nil {
		return wrap(err, "stamp schema version")
	}
	return wrap(tx.Commit(), "commit schema version %d", schemaVersion)
}

// checkIdentity returns the schema version of the file, or an error wrapping
// ErrCorrupt if the file belongs to something else or to a newer ctstage.
func checkIdentity(ctx context.Context, tx *sql.Tx) (int, error) {
	var appID, version, tables int
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, wrap(err, "read application_id")
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, wrap(err, "read user_version")
	}
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return 0, wrap(err, "read schema")
	}
	switch {
	case appID == 0 && version == 0 && tables == 0:
		return 0, nil // A new, empty file.
	case appID != applicationID:
		return 0, fmt.Errorf("couldn't use database: application_id %#x is not ctstage's %#x: %w", appID, applicationID, ErrCorrupt)
	case version > schemaVersion:
		return 0, fmt.Errorf("couldn't use database: schema version %d is newer than this ctstage supports (%d): %w", version, schemaVersion, ErrCorrupt)
	}
	return version, nil
}
