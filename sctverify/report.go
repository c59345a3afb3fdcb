package sctverify

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Where an SCT came from.
const (
	SourceEmbedded = "embedded"
	SourceTLS      = "tls"
	SourceOCSP     = "ocsp"
	// SourcePrecert are SCTs given for a precertificate (Input.PrecertSCTs):
	// they sign its entry, and the policies count them as embedded, as
	// they will be in the final certificate.
	SourcePrecert = "precert"
)

// SCT statuses.
const (
	StatusValid       = "valid"
	StatusInvalid     = "invalid"     // malformed, bad signature, future timestamp, wrong algorithm, no issuer
	StatusUnknownLog  = "unknown-log" // no log in the list has this ID
	StatusUnsupported = "unsupported" // not a v1 SCT: skipped, as clients do
	StatusDuplicate   = "duplicate"   // byte for byte an earlier SCT of the same source: counted once
)

// Inclusion statuses.
const (
	InclusionIncluded    = "included"
	InclusionPending     = "pending"      // not found, younger than the log's MMD
	InclusionNotIncluded = "not-included" // not found, older than the MMD
	InclusionError       = "error"        // the log could not be asked, or answered wrongly
	InclusionNotChecked  = "not-checked"  // not asked for, a static-ct-api log, or an SCT that is not valid
)

// Report is the outcome for one certificate.
type Report struct {
	Subject string `json:"subject"`
	Serial  string `json:"serial"`
	Issuer  string `json:"issuer,omitempty"` // the issuer found, by name and signature
	// IssuerFrom is the AIA caIssuers URL the issuer was fetched from,
	// when it was not among the certificates given.
	IssuerFrom string    `json:"issuer_from,omitempty"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	// Precertificate is true when the certificate verified carries the
	// CT poison: its SCTs are Input.PrecertSCTs.
	Precertificate bool `json:"precertificate,omitempty"`
	// Problems are failures that belong to no single SCT (a malformed SCT
	// list, an OCSP response that does not verify).
	Problems []string    `json:"problems,omitempty"`
	SCTs     []SCTResult `json:"scts"`
	Policies []Verdict   `json:"policies"`
	// CheckedAt is the time of check (--now).
	CheckedAt time.Time `json:"checked_at"`
	// OK is true when there are no problems, every SCT is valid (or
	// unsupported, or a duplicate), no inclusion check failed, and every
	// policy evaluated is met or not enforced.
	OK bool `json:"ok"`
}

// SCTResult is the outcome for one SCT.
type SCTResult struct {
	Source   string `json:"source"`
	Index    int    `json:"index"` // 1-based, in its source's list
	LogID    []byte `json:"log_id,omitempty"`
	Log      string `json:"log,omitempty"`
	Operator string `json:"operator,omitempty"`  // at the SCT's time
	LogState string `json:"log_state,omitempty"` // at the time of check

	Timestamp time.Time `json:"timestamp,omitzero"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
	// Warnings are what a valid SCT shows that browsers do not refuse
	// but a monitor should look into (a timestamp before the
	// certificate's notBefore: the log's clock is behind). They do not
	// change OK.
	Warnings  []string   `json:"warnings,omitempty"`
	Inclusion *Inclusion `json:"inclusion,omitempty"`
}

// Inclusion is what the log said about the SCT's entry.
type Inclusion struct {
	Status    string `json:"status"`
	LeafIndex uint64 `json:"leaf_index,omitempty"`
	TreeSize  uint64 `json:"tree_size,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

func (r *Report) finish() {
	r.OK = len(r.Problems) == 0
	for _, s := range r.SCTs {
		if s.Status == StatusInvalid || s.Status == StatusUnknownLog {
			r.OK = false
		}
		if s.Inclusion != nil && (s.Inclusion.Status == InclusionNotIncluded || s.Inclusion.Status == InclusionError) {
			r.OK = false
		}
	}
	for _, v := range r.Policies {
		r.OK = r.OK && v.OK()
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteText writes the report as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "certificate  %s (serial %s)\n", r.Subject, r.Serial)
	if r.Issuer != "" {
		fmt.Fprintf(&b, "issuer       %s\n", r.Issuer)
	}
	if r.IssuerFrom != "" {
		fmt.Fprintf(&b, "issuer from  %s (AIA caIssuers)\n", r.IssuerFrom)
	}
	fmt.Fprintf(&b, "validity     %s to %s (%s)\n", r.NotBefore.Format(time.RFC3339), r.NotAfter.Format(time.RFC3339), days(r.NotAfter.Sub(r.NotBefore)))
	if !r.CheckedAt.IsZero() {
		fmt.Fprintf(&b, "checked at   %s\n", r.CheckedAt.Format(time.RFC3339))
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM      %s\n", p)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSOURCE\tLOG\tOPERATOR\tSTATE\tTIMESTAMP\tSCT\tINCLUSION")
	for _, s := range r.SCTs {
		ts := ""
		if !s.Timestamp.IsZero() {
			ts = s.Timestamp.Format("2006-01-02T15:04:05.000Z")
		}
		st := s.Status
		if s.Reason != "" {
			st += ": " + s.Reason
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Index, s.Source, orDash(s.Log), orDash(s.Operator), orDash(s.LogState), orDash(ts), st, s.Inclusion.text())
	}
	tw.Flush()
	for _, s := range r.SCTs {
		for _, w := range s.Warnings {
			fmt.Fprintf(&b, "WARNING      SCT #%d (%s, %s): %s\n", s.Index, s.Source, orDash(s.Log), w)
		}
	}
	b.WriteString("\n")
	for _, v := range r.Policies {
		res := "NOT MET"
		switch {
		case !v.Enforced:
			res = "NOT ENFORCED"
		case v.Compliant:
			res = "met"
		}
		fmt.Fprintf(&b, "%-8s %-8s %s: %s\n", v.Policy, res, v.Rule, v.Detail)
		for _, n := range v.NotCounted {
			fmt.Fprintf(&b, "         not counted: SCT #%d (%s, %s): %s\n", n.Index, n.Source, orDash(n.Log), n.Reason)
		}
	}
	if r.OK {
		b.WriteString("\nresult: OK\n")
	} else {
		b.WriteString("\nresult: FAIL\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (in *Inclusion) text() string {
	switch {
	case in == nil:
		return "-"
	case in.Status == InclusionIncluded:
		return fmt.Sprintf("included: leaf %d of %d", in.LeafIndex, in.TreeSize)
	case in.Detail != "":
		return in.Status + ": " + in.Detail
	}
	return in.Status
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
