package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// checkpointInterval is how often the checkpointer copies committed WAL
// frames into the database file.
const checkpointInterval = 100 * time.Millisecond

// checkpointer moves WAL checkpoints off the writer's critical path. The
// writer connection runs with wal_autocheckpoint=0, so its commits only
// append to the WAL (and fsync it); a separate connection runs PASSIVE
// checkpoints, which copy frames to the database file and fsync it while
// the writer goes on committing. SQLite restarts the WAL once a checkpoint
// has caught up, and journal_size_limit then truncates it.
type checkpointer struct {
	db      *DB
	conn    *sql.DB
	stop    chan struct{}
	stopped chan struct{}
}

// newCheckpointer starts the checkpointer goroutine on its own connection.
func newCheckpointer(db *DB, conn *sql.DB) *checkpointer {
	c := &checkpointer{db: db, conn: conn, stop: make(chan struct{}), stopped: make(chan struct{})}
	go c.run()
	return c
}

// run checkpoints every checkpointInterval until close.
func (c *checkpointer) run() {
	defer close(c.stopped)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.checkpoint("PASSIVE")
		}
	}
}

// checkpoint runs one checkpoint of the given mode, logging failures: a
// missed checkpoint only lets the WAL grow until the next one.
func (c *checkpointer) checkpoint(mode string) {
	var busy, frames, done int
	err := c.conn.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &frames, &done)
	if err != nil {
		c.db.log.Warn("couldn't checkpoint the WAL", "path", c.db.path, "err", err)
	}
}

// close stops the goroutine and runs a final checkpoint that also truncates
// the WAL.
func (c *checkpointer) close() {
	close(c.stop)
	<-c.stopped
	c.checkpoint("TRUNCATE")
}
