package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// checkpointInterval is how often the checkpointer copies committed WAL
// frames into the database file.
const checkpointInterval = 100 * time.Millisecond

// checkpointer takes most WAL checkpoint work off the writer's critical
// path. A separate connection runs PASSIVE checkpoints every
// checkpointInterval: they copy committed frames into the database file and
// fsync it while the writer goes on committing. The writer keeps SQLite's
// automatic checkpoint (every 1000 WAL pages), which then finds the frames
// already copied and only has to catch up on the last few; since nothing
// writes during it, it completes, and the next transaction restarts the WAL.
// A background checkpointer alone never catches up under sustained load and
// lets the WAL grow without bound; the writer's checkpoint alone halves the
// QueueLeaves throughput (measured with BenchmarkQueueLeaves).
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
