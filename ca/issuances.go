package ca

import (
	"net/http"
	"strconv"
	"time"
)

// IssuancesResponse is the answer of GET /issuances on the management
// endpoint: the certificates issued, in issue order, each with its
// issuer, and the cursor of the next page.
type IssuancesResponse struct {
	Issuances []IssuedCert `json:"issuances"`
	// Next is where the following page starts (since and after).
	Next IssuanceCursor `json:"next"`
}

// IssuedCert is one final certificate and the intermediate that signed it.
type IssuedCert struct {
	Serial string    `json:"serial"`
	Issued time.Time `json:"issued"`
	// Chain is the certificate and its issuer, DER (base64 in JSON).
	Chain [][]byte `json:"chain"`
}

// IssuanceCursor names a place in the issue order.
type IssuanceCursor struct {
	Since time.Time `json:"since"`
	After string    `json:"after"`
}

// serveIssuances answers GET /issuances?since=RFC3339&after=SERIAL&limit=N
// (limit 1 to 1000, default 100): what a monitor needs to check that
// every certificate's SCTs were honoured.
func (c *CA) serveIssuances(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var cur IssuanceCursor
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "since: want an RFC 3339 time"})
			return
		}
		cur.Since = t
	}
	cur.After = q.Get("after")
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "limit: want 1 to 1000"})
			return
		}
		limit = n
	}
	recs, err := c.opts.Store.Issued(r.Context(), cur.Since, cur.After, limit)
	if err != nil {
		c.opts.Logger.Error("couldn't list issuances", "err", err)
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "couldn't list issuances"})
		return
	}
	rsp := IssuancesResponse{Issuances: []IssuedCert{}, Next: cur}
	for _, rec := range recs {
		chain := [][]byte{rec.Certificate}
		if iss := c.opts.Hierarchy.IntermediateByKeyID(rec.IssuerKeyID); iss != nil {
			chain = append(chain, iss.Cert.Raw)
		}
		rsp.Issuances = append(rsp.Issuances, IssuedCert{Serial: rec.Serial, Issued: rec.Issued.UTC(), Chain: chain})
		rsp.Next = IssuanceCursor{Since: rec.Issued.UTC(), After: rec.Serial}
	}
	writeJSON(w, http.StatusOK, rsp)
}
