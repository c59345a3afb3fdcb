// Package monitor follows CT logs, RFC 6962 and static-ct-api alike, and
// checks what each promises: signed tree heads that never shrink, go
// back in time or fork, entries that hash to them, and the names watched.
// It is `ctstage monitor` (docs/monitor.md).
package monitor

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Alert kinds: the interface docs/design.md fixes.
const (
	AlertSTHSignature        = "sth_signature"        // a tree head whose signature does not verify
	AlertInconsistent        = "inconsistent"         // a tree head no consistency proof joins to an earlier one
	AlertTimestampRegression = "timestamp_regression" // a tree head older than one seen before
	AlertStale               = "stale"                // the newest tree head is older than the log's maximum age
	AlertRootMismatch        = "root_mismatch"        // the entries do not hash to the tree head's root
	AlertBadEntry            = "bad_entry"            // an entry that does not parse or does not match its tile
	AlertMMDViolation        = "mmd_violation"        // an SCT's entry missing after the log's MMD
	AlertSplitView           = "split_view"           // two views of one log that do not join
	AlertUnreachable         = "unreachable"          // the log failed to answer for longer than the threshold
)

// Event is one line of the monitor's output: an alert, or a watched
// certificate found.
type Event struct {
	Time time.Time `json:"time"`
	Log  string    `json:"log"`
	URL  string    `json:"url,omitempty"`
	// Alert is the alert kind; empty for another event.
	Alert string `json:"alert,omitempty"`
	// Event is "certificate" for a watched certificate found.
	Event  string `json:"event,omitempty"`
	Detail string `json:"detail,omitempty"`

	// For a certificate: where, what and for which names.
	Index   *uint64  `json:"index,omitempty"`
	SHA256  string   `json:"sha256,omitempty"`
	Precert bool     `json:"precert,omitempty"`
	Names   []string `json:"names,omitempty"`
}

// Sink receives the monitor's events.
type Sink interface{ Emit(Event) }

// Writer writes events to W, as JSON lines or readable lines.
type Writer struct {
	W    io.Writer
	JSON bool
	mu   sync.Mutex
}

// Emit writes one event.
func (w *Writer) Emit(e Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.JSON {
		b, _ := json.Marshal(e)
		w.W.Write(append(b, '\n'))
		return
	}
	ts := e.Time.UTC().Format(time.RFC3339)
	switch {
	case e.Alert != "":
		fmt.Fprintf(w.W, "%s ALERT %s %s: %s\n", ts, e.Alert, e.Log, e.Detail)
	default:
		kind := "certificate"
		if e.Precert {
			kind = "precertificate"
		}
		fmt.Fprintf(w.W, "%s %s %s index %d sha256 %s %v\n", ts, kind, e.Log, *e.Index, e.SHA256, e.Names)
	}
}
