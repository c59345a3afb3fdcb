package dashboard

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/certificate-transparency-go/loglist3"

	acmestore "github.com/ctstage/ctstage/ca/acme/store"
	"github.com/ctstage/ctstage/ca/store"
	"github.com/ctstage/ctstage/ctlog"
	"github.com/ctstage/ctstage/ctlog/faults"
	"github.com/ctstage/ctstage/internal/loopback"
	"github.com/ctstage/ctstage/sctverify"
)

// pageSize is the entries on one page of a shard.
const pageSize = 50

var funcs = template.FuncMap{
	"utc": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"day": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02")
	},
	"dur":  fmtDur,
	"rate": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"join": strings.Join,
	"kind": func(precert bool) string {
		if precert {
			return "precert"
		}
		return "cert"
	},
	"add": func(a, b int) int { return a + b },
}

// fmtDur is a duration to the millisecond below a second, to a tenth
// above; "—" for none.
func fmtDur(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// render writes template name with data, or a 500 that names no detail.
func (d *Dashboard) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		d.opts.Logger.Error("dashboard: template", "page", name, "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// page is what every page's layout needs.
type page struct {
	Title string
	Now   time.Time
	Query string
}

func (d *Dashboard) notFound(w http.ResponseWriter, what string) {
	d.render(w, http.StatusNotFound, "notfound.html", struct {
		page
		What string
	}{page{Title: "Not found", Now: d.opts.Now()}, what})
}

// --- overview

type shardRow struct {
	ctlog.LogInfo
	Start, End time.Time
	Stats      shardStats
	HeadAge    time.Duration
	Chart      template.HTML
}

// shardRows describes every shard, or only the one named only.
func (d *Dashboard) shardRows(only string) []shardRow {
	ll := d.opts.Logs.LogList()
	windows := map[string][2]time.Time{}
	for _, op := range ll.Operators {
		for _, l := range op.Logs {
			if l.TemporalInterval != nil {
				windows[base64.StdEncoding.EncodeToString(l.LogID)] = [2]time.Time{l.TemporalInterval.StartInclusive, l.TemporalInterval.EndExclusive}
			}
		}
		for _, l := range op.TiledLogs {
			if l.TemporalInterval != nil {
				windows[base64.StdEncoding.EncodeToString(l.LogID)] = [2]time.Time{l.TemporalInterval.StartInclusive, l.TemporalInterval.EndExclusive}
			}
		}
	}
	now := d.opts.Now()
	var rows []shardRow
	for _, info := range d.opts.Logs.Shards() {
		if only != "" && info.Shard != only {
			continue
		}
		r := shardRow{LogInfo: info}
		w := windows[info.LogID]
		r.Start, r.End = w[0], w[1]
		r.Stats, _ = d.index.stats(info.Shard, now)
		if !r.Stats.Head.Time.IsZero() {
			r.HeadAge = now.Sub(r.Stats.Head.Time)
		}
		rows = append(rows, r)
	}
	return rows
}

func (d *Dashboard) serveOverview(w http.ResponseWriter, r *http.Request) {
	rows := d.shardRows("")
	for i := range rows {
		rows[i].Chart = sizeChart(rows[i].Stats.Samples)
	}
	d.render(w, http.StatusOK, "overview.html", struct {
		page
		Shards  []shardRow
		Indexed int
	}{page{Title: "ctstage", Now: d.opts.Now()}, rows, d.indexed()})
}

func (d *Dashboard) indexed() int {
	d.index.mu.RLock()
	defer d.index.mu.RUnlock()
	return d.index.total
}

// --- a shard

func (d *Dashboard) serveShard(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var row *shardRow
	if rows := d.shardRows(name); len(rows) == 1 {
		row = &rows[0]
	}
	if row == nil {
		d.notFound(w, fmt.Sprintf("no shard %q", name))
		return
	}
	p, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || p < 1 {
		p = 1
	}
	recs, total := d.index.page(name, (p-1)*pageSize, pageSize)
	pages := max((total+pageSize-1)/pageSize, 1)
	if p > pages {
		d.notFound(w, fmt.Sprintf("page %d of shard %s (it has %d)", p, name, pages))
		return
	}
	d.render(w, http.StatusOK, "shard.html", struct {
		page
		Shard              shardRow
		Entries            []*record
		Page, Pages, Total int
		Charts             []template.HTML
	}{page{Title: name, Now: d.opts.Now()}, *row, recs, p, pages, total,
		[]template.HTML{sizeChart(row.Stats.Samples), submissionsChart(row.Stats.Samples), rateChart(row.Stats.Samples), delayChart(row.Stats.Samples)}})
}

// --- search

func (d *Dashboard) serveSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	if len(q) > 256 {
		q = q[:256]
	}
	var kind string
	var recs []*record
	var more bool
	if strings.TrimSpace(q) != "" {
		kind, recs, more = d.index.search(q)
	}
	d.render(w, http.StatusOK, "search.html", struct {
		page
		Kind    string
		Results []*record
		More    bool
		Limit   int
	}{page{Title: "Search", Now: d.opts.Now(), Query: q}, kind, recs, more, searchLimit})
}

// --- a certificate

type sctRow struct {
	sctverify.SCTResult
	Shard   string
	Entry   *record // the log entry the SCT is for, when indexed
	Delay   time.Duration
	Verdict string
}

type event struct {
	At   time.Time
	What string
	Log  string
}

func (d *Dashboard) serveCert(w http.ResponseWriter, r *http.Request) {
	sha := strings.ToLower(r.PathValue("sha"))
	if len(sha) != 64 || !isHex(sha) {
		d.notFound(w, "a certificate is named by the lower-case hex SHA-256 of its DER")
		return
	}
	_, hits, _ := d.index.search(sha)
	if len(hits) == 0 {
		d.notFound(w, "no log entry with SHA-256 "+sha+" (yet: the index follows the logs a second behind)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	first := hits[len(hits)-1]
	der, err := d.index.entryDER(ctx, first.Shard, first.Index)
	if err != nil {
		d.render(w, http.StatusServiceUnavailable, "notfound.html", struct {
			page
			What string
		}{page{Title: "Unavailable", Now: d.opts.Now()}, "couldn't read the entry from " + first.Shard + ": " + err.Error()})
		return
	}
	related := d.index.related(first)
	data := struct {
		page
		Record   *record
		Entries  []*record
		Related  []*record
		Chain    []*x509.Certificate
		Final    *x509.Certificate
		FinalSHA string
		// FinalLogged: the final certificate is itself in a log (the
		// CA submits it unless --no-final-submission), with a page.
		FinalLogged bool
		Issuance    *store.Record
		Report      *sctverify.Report
		SCTs        []sctRow
		Timeline    []event
		Problem     string
	}{page: page{Title: strings.Join(first.Names, ", "), Now: d.opts.Now()}, Record: first, Entries: hits}
	for _, o := range related {
		if o.SHA256 != sha {
			data.Related = append(data.Related, o)
		}
	}
	leaf, perr := x509.ParseCertificate(der)
	if perr != nil {
		data.Problem = "the entry does not parse as a certificate: " + perr.Error()
	} else {
		data.Chain = append([]*x509.Certificate{leaf}, d.issuerChain(leaf)...)
	}
	// The final certificate: this one, the CA's record of it, or a
	// logged one with the same serial and issuer.
	if d.opts.Issuances != nil && first.Serial != "" {
		if rec, err := d.opts.Issuances.Get(ctx, first.Serial); err == nil {
			data.Issuance = rec
			if rec.Certificate != nil {
				data.Final, _ = x509.ParseCertificate(rec.Certificate)
			}
		}
	}
	if data.Final == nil && leaf != nil && !first.Precert {
		data.Final = leaf
	}
	if data.Final == nil {
		for _, o := range related {
			if !o.Precert {
				if b, err := d.index.entryDER(ctx, o.Shard, o.Index); err == nil {
					data.Final, _ = x509.ParseCertificate(b)
					break
				}
			}
		}
	}
	if data.Final != nil {
		sum := sha256.Sum256(data.Final.Raw)
		data.FinalSHA = hex.EncodeToString(sum[:])
		_, logged, _ := d.index.search(data.FinalSHA)
		data.FinalLogged = len(logged) > 0
		data.Report, data.SCTs = d.verify(ctx, data.Final)
	}
	data.Timeline = d.timeline(hits, related, data.Issuance, data.SCTs)
	d.render(w, http.StatusOK, "cert.html", data)
}

// issuerChain is the chain above c among Options.Issuers, by name and
// signature.
func (d *Dashboard) issuerChain(c *x509.Certificate) []*x509.Certificate {
	var chain []*x509.Certificate
	for cur := c; len(chain) < 4; {
		var next *x509.Certificate
		for _, i := range d.opts.Issuers {
			if bytes.Equal(i.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(i) == nil && !i.Equal(cur) {
				next = i
				break
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, next)
		if bytes.Equal(next.RawSubject, next.RawIssuer) {
			break
		}
		cur = next
	}
	return chain
}

// verify runs ctstage verify's checks on the final certificate: every
// embedded SCT's signature, its entry's inclusion proved against a fresh
// tree head, and the three policies.
func (d *Dashboard) verify(ctx context.Context, final *x509.Certificate) (*sctverify.Report, []sctRow) {
	raw, err := jsonLogList(d.opts.Logs.LogList())
	if err != nil {
		return nil, nil
	}
	ll, err := sctverify.ParseLogList(raw)
	if err != nil {
		return nil, nil
	}
	v := &sctverify.Verifier{Logs: ll, HTTPClient: d.opts.HTTPClient, Inclusion: true, Now: d.opts.Now}
	rep, err := v.Verify(ctx, sctverify.Input{Chain: append([]*x509.Certificate{final}, d.opts.Issuers...)})
	if err != nil {
		return nil, nil
	}
	byID := map[string]string{}
	for _, info := range d.opts.Logs.Shards() {
		byID[info.LogID] = info.Shard
	}
	var rows []sctRow
	for _, s := range rep.SCTs {
		row := sctRow{SCTResult: s, Shard: byID[base64.StdEncoding.EncodeToString(s.LogID)]}
		if s.Inclusion != nil && s.Inclusion.Status == sctverify.InclusionIncluded {
			if rec, _ := d.index.lookup(row.Shard, s.Inclusion.LeafIndex); rec != nil {
				row.Entry = rec
				row.Delay = rec.MergeDelay()
			}
		}
		rows = append(rows, row)
	}
	return rep, rows
}

// timeline orders what happened to a certificate: each precertificate
// entry's SCT, the final certificate, and each entry's integration.
func (d *Dashboard) timeline(hits, related []*record, rec *store.Record, scts []sctRow) []event {
	var ev []event
	seen := map[string]bool{}
	for _, r := range append(slices.Clone(hits), related...) {
		key := r.Shard + "/" + strconv.FormatUint(r.Index, 10)
		if seen[key] {
			continue
		}
		seen[key] = true
		ev = append(ev, event{At: r.Timestamp, What: kindName(r.Precert) + " submitted: SCT timestamp, entry " + strconv.FormatUint(r.Index, 10), Log: r.Shard})
		if !r.IntegratedBy.IsZero() {
			ev = append(ev, event{At: r.IntegratedBy, What: fmt.Sprintf("%s integrated (by this tree head; merge delay at most %s)", kindName(r.Precert), fmtDur(r.MergeDelay())), Log: r.Shard})
		}
	}
	if rec != nil {
		ev = append(ev, event{At: rec.Created, What: "precertificate signed and recorded by the CA"})
		if !rec.Issued.IsZero() {
			ev = append(ev, event{At: rec.Issued, What: fmt.Sprintf("final certificate issued with %d SCTs", len(rec.SCTs))})
		}
		if rec.Revocation != nil {
			ev = append(ev, event{At: rec.Revocation.At, What: fmt.Sprintf("revoked (reason %d)", rec.Revocation.Reason)})
		}
	}
	slices.SortStableFunc(ev, func(a, b event) int { return a.At.Compare(b.At) })
	return ev
}

func kindName(precert bool) string {
	if precert {
		return "precertificate"
	}
	return "certificate"
}

// --- the CA

func (d *Dashboard) serveIssuances(w http.ResponseWriter, r *http.Request) {
	data := struct {
		page
		HasCA   bool
		Records []issuanceRow
		Orders  []*acmestore.Order
		HasACME bool
		Err     string
	}{page: page{Title: "CA", Now: d.opts.Now()}, HasCA: d.opts.Issuances != nil, HasACME: d.opts.Orders != nil}
	if d.opts.Orders != nil {
		ids, err := d.opts.Orders.RecentOrderIDs(r.Context(), 100)
		if err != nil {
			data.Err = err.Error()
		}
		for _, id := range ids {
			if o, err := d.opts.Orders.Order(r.Context(), id); err == nil {
				data.Orders = append(data.Orders, o)
			}
		}
	}
	if d.opts.Issuances != nil {
		recs, err := d.opts.Issuances.Issued(r.Context(), d.opts.Now().Add(-30*24*time.Hour), "", 1000)
		if err != nil {
			data.Err = err.Error()
		}
		// Newest first, at most 200.
		for i := len(recs) - 1; i >= 0 && len(data.Records) < 200; i-- {
			data.Records = append(data.Records, newIssuanceRow(recs[i]))
		}
	}
	d.render(w, http.StatusOK, "issuances.html", data)
}

type issuanceRow struct {
	*store.Record
	Names      []string
	PrecertSHA string
}

func newIssuanceRow(r *store.Record) issuanceRow {
	row := issuanceRow{Record: r}
	sum := sha256.Sum256(r.Precertificate)
	row.PrecertSHA = hex.EncodeToString(sum[:])
	if c, err := x509.ParseCertificate(r.Precertificate); err == nil {
		row.Names = c.DNSNames
	}
	return row
}

// --- faults

func (d *Dashboard) serveFaults(w http.ResponseWriter, r *http.Request) {
	d.renderFaults(w, http.StatusOK, r, "", "")
}

func (d *Dashboard) renderFaults(w http.ResponseWriter, status int, r *http.Request, msg, errMsg string) {
	d.render(w, status, "faults.html", struct {
		page
		Shards   []ctlog.LogInfo
		Kinds    []faults.Kind
		States   []string
		Token    string
		Loopback bool
		Message  string
		Error    string
	}{page{Title: "Faults", Now: d.opts.Now()}, d.opts.Logs.Shards(), faults.Kinds, ctlog.States, d.token(), loopback.IsPeer(r), msg, errMsg})
}

// postFaults sets or clears a shard's faults from the faults page's
// form: from a loopback peer, on a loopback Host, from this origin, with
// the page's token (so that no other site can make a browser post it).
func (d *Dashboard) postFaults(w http.ResponseWriter, r *http.Request) {
	switch {
	case !loopback.IsPeer(r) || !loopback.IsHost(r.Host):
		http.Error(w, "Forbidden\nfaults are set from loopback only", http.StatusForbidden)
		return
	case r.Header.Get("Origin") != "" && r.Header.Get("Origin") != "http://"+r.Host && r.Header.Get("Origin") != "https://"+r.Host:
		http.Error(w, "Forbidden\ncross-origin form", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "Bad Request\n"+err.Error(), http.StatusBadRequest)
		return
	}
	if !hmac.Equal([]byte(r.PostForm.Get("token")), []byte(d.token())) {
		http.Error(w, "Forbidden\nthe form's token is missing or stale: reload the faults page", http.StatusForbidden)
		return
	}
	shard := r.PostForm.Get("shard")
	var info ctlog.LogInfo
	var err error
	switch r.PostForm.Get("action") {
	case "clear":
		info, err = d.opts.Logs.ClearFaults(shard)
	case "state":
		info, err = d.opts.Logs.SetState(shard, ctlog.StateRequest{State: r.PostForm.Get("state"), At: strings.TrimSpace(r.PostForm.Get("at"))})
	case "set":
		body := strings.TrimSpace(r.PostForm.Get("fault"))
		if body == "" {
			b, _ := json.Marshal(map[string]string{"kind": r.PostForm.Get("kind")})
			body = string(b)
		}
		info, err = d.opts.Logs.AddFault(shard, []byte(body))
	default:
		err = errors.New("action must be set, clear or state")
	}
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ctlog.ErrNoShard) {
			status = http.StatusNotFound
		}
		d.renderFaults(w, status, r, "", err.Error())
		return
	}
	// Post/redirect/get: a reload does not post again.
	http.Redirect(w, r, "/faults?done="+url.QueryEscape(info.Shard), http.StatusSeeOther)
}

func newCSRFKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// token is the faults form's token: fixed for the process's life.
func (d *Dashboard) token() string {
	m := hmac.New(sha256.New, d.csrf)
	m.Write([]byte("ctstage dashboard faults form"))
	return hex.EncodeToString(m.Sum(nil))
}

// --- helpers

func jsonLogList(ll *loglist3.LogList) ([]byte, error) {
	if ll == nil {
		return nil, errors.New("no log list")
	}
	return json.Marshal(ll)
}

func logID(b64 string) ([32]byte, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != 32 {
		return [32]byte{}, fmt.Errorf("bad log ID %q", b64)
	}
	return [32]byte(b), nil
}
