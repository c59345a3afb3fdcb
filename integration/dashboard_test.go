package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"

	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// browser is a headless Debian Chromium driven over CDP (chromedp),
// which keeps every console error and warning, uncaught exception and
// browser log error (a failed load, a CSP violation) it reports.
type browser struct {
	t    *testing.T
	ctx  context.Context
	shot string // where screenshots go

	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T, noJS bool) *browser {
	t.Helper()
	path := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	b := &browser{t: t, ctx: ctx, shot: os.Getenv("CTSTAGE_SCREENSHOTS")}
	if b.shot == "" {
		b.shot = t.TempDir()
	}
	// The first call starts the browser, which lives as long as the
	// context of that call: no timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium %s: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s (%s) %s", m.String(), m.Source, m.URL))
				b.mu.Unlock()
			}
		}
	}()
	if noJS {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("chromium: disabling JavaScript: %v", err)
		}
	}
	return b
}

func (b *browser) run(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("chromium: %v", err)
	}
}

// get runs one action that returns a value.
func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("chromium: %v", err)
	}
	return v
}

// text is the page's main element as text.
func (b *browser) text() string {
	b.t.Helper()
	return get(b, chromedp.Text(chromedp.CSS("main")))
}

// html is the page's markup as the browser holds it, read through the
// DOM domain (no script runs in the page); "" while the page changes.
func (b *browser) html() string {
	doc, err := chromedp.Call(b.ctx, dom.GetDocument, dom.GetDocumentParams{})
	if err != nil || doc.Root == nil {
		return ""
	}
	h, err := chromedp.Call(b.ctx, dom.GetOuterHTML, dom.GetOuterHTMLParams{NodeID: doc.Root.NodeID})
	if err != nil {
		return ""
	}
	return h.OuterHTML
}

// follow runs an action that navigates (a click on a link or a button,
// Enter in a form) and waits until the page at a URL containing want
// has loaded. Waiting for an element instead would race with the
// navigation: the old page's element, or a query cut off by the new
// document.
func (b *browser) follow(a chromedp.Action[chromedp.Void], want string) {
	b.t.Helper()
	b.run(a)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		var state string
		if err == nil {
			state, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`))
		}
		cancel()
		if err == nil && strings.Contains(loc, want) && state == "complete" {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("chromium: no page at a URL with %q 20 s after the action (at %q, %v)", want, loc, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the whole page as name.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png := get(b, chromedp.FullScreenshot(100))
	if len(png) < 1000 {
		b.t.Fatalf("screenshot %s: %d bytes", name, len(png))
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// openUntil loads url until its main text contains want (the index
// follows the logs a second behind), or fails after within.
func (b *browser) openUntil(url, want string, within time.Duration) string {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b.run(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("main")))
		s := b.text()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: no %q after %v; the page says:\n%s", url, want, within, tail(s, 3000))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// consoleErrors fails the test for every error the browser reported.
func (b *browser) consoleErrors() {
	b.t.Helper()
	time.Sleep(200 * time.Millisecond) // the last messages
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		b.t.Errorf("the browser reported: %s", e)
	}
}

// TestDashboardBrowser drives the dashboard in headless Chromium: a
// certificate issued through ACME is found by a search by name, and its
// page shows its SCTs, their inclusion verified and the three browsers'
// verdicts; a fault set from the faults page shows on the overview and
// in the shard's behaviour; a shard with more than a page of entries
// pages; a certificate whose names hold markup, quotes and Unicode shows
// them as text; the pages work without JavaScript and on a narrow
// screen, with no console error; and each page is photographed.
func TestDashboardBrowser(t *testing.T) {
	b := newBrowser(t, false)
	ca, root := newCA(t)
	s := startACMEStage(t, func(o *serve.Options) { o.Logs.ExtraRoots = root })
	base := s.LogURL

	// A certificate through ACME: lego, http-01 on the validator's port.
	c, _ := s.legoClient(t)
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(s.httpPort))); err != nil {
		t.Fatal(err)
	}
	res := obtain(t, c, certificate.ObtainRequest{Domains: []string{"dash.example.com"}})
	if len(res.Certificate) == 0 {
		t.Fatal("no certificate")
	}

	// More than a page of entries in one shard, and a certificate whose
	// names are markup, quotes and Unicode, all from the --extra-roots CA.
	notAfter := time.Now().AddDate(0, 0, 90)
	l := shardIn(t, fetchLogList(t, base), 1, notAfter)
	lc := logClient(t, l)
	ctx := t.Context()
	for i := range 55 {
		chain, err := ca.Leaf(fmt.Sprintf("page-%d.paging.example.com", i), notAfter, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lc.AddChain(ctx, asn1Chain(chain)); err != nil {
			t.Fatal(err)
		}
	}
	const nastyCN = `Ünïcødé <b id="injected">bold</b> "quoted" & 'single' </td></table><script id="injected2">x</script>`
	nasty, err := ca.LeafNamed(nastyCN, []string{"quote-\"-lt-<-gt->.nasty.example.com", "www.nasty.example.com"}, notAfter, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AddChain(ctx, asn1Chain(nasty)); err != nil {
		t.Fatalf("add-chain of the certificate with markup in its names: %v", err)
	}

	// Overview.
	over := b.openUntil(base+"/", "Logs", 10*time.Second)
	if !strings.Contains(over, shardURLName(l)) {
		t.Errorf("the overview does not list %s:\n%s", shardURLName(l), tail(over, 2000))
	}
	b.screenshot("overview")

	// Search by name, through the form, then the certificate's page.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.run(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name=q]`)))
		b.follow(chromedp.SendKeys(chromedp.CSS(`input[name=q]`), "dash.example.com\r"), "/search?q=dash.example.com")
		if strings.Count(b.text(), "dash.example.com") >= 2 && strings.Contains(b.text(), "precert") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the search for dash.example.com found nothing in 30 s:\n%s", tail(b.text(), 2000))
		}
		time.Sleep(500 * time.Millisecond)
	}
	loc := get(b, chromedp.Location())
	if !strings.Contains(loc, "/search?q=dash.example.com") {
		t.Errorf("the search form went to %s", loc)
	}
	b.screenshot("search")
	b.follow(chromedp.Click(chromedp.CSS(`main a[href^="/cert/"]`)), "/cert/")
	page := b.text()
	// Four logs of two operators give the SCTs; each must be verified.
	if n := strings.Count(page, "verified"); n < 2 {
		t.Errorf("the certificate's page shows %d verified inclusions, want one per SCT (at least 2):\n%s", n, tail(page, 4000))
	}
	if n := strings.Count(page, "compliant"); n < 3 {
		t.Errorf("%d compliant verdicts on the certificate's page, want chrome's, apple's and mozilla's:\n%s", n, tail(page, 4000))
	}
	if strings.Contains(page, "not compliant") {
		t.Errorf("a policy says not compliant for a certificate of the staging CA:\n%s", tail(page, 4000))
	}
	for _, want := range []string{"Timeline", "final certificate issued", "precertificate submitted", "Chain"} {
		if !strings.Contains(page, want) {
			t.Errorf("the certificate's page has no %q", want)
		}
	}
	verdicts := get(b, chromedp.Evaluate[int](`[...document.querySelectorAll("td")].filter(td => ["chrome","apple","mozilla"].includes(td.textContent.trim())).length`))
	if verdicts != 3 {
		t.Errorf("%d policy rows on the certificate's page, want chrome, apple and mozilla", verdicts)
	}
	b.screenshot("cert")

	// Paging: 56 entries in the shard, 50 a page.
	shard := shardURLName(l)
	first := b.openUntil(base+"/shard/"+shard, "page 1 of 2", 30*time.Second)
	b.screenshot("shard")
	b.follow(chromedp.Click(chromedp.CSS(`a[rel=next]`)), "page=2")
	second := b.text()
	if !strings.Contains(second, "page 2 of 2") || !strings.Contains(second, "page-0.paging.example.com") || strings.Contains(first, "page-0.paging.example.com") {
		t.Errorf("page 2 should hold the oldest entries (page-0...), page 1 not:\npage 1:\n%s\npage 2:\n%s", tail(first, 1500), tail(second, 1500))
	}

	// The names with markup are text.
	b.openUntil(base+"/search?q=nasty.example.com", "nasty.example.com", 30*time.Second)
	b.follow(chromedp.Click(chromedp.CSS(`main a[href^="/cert/"]`)), "/cert/")
	injected := get(b, chromedp.Evaluate[bool](`!!(document.getElementById("injected") || document.getElementById("injected2") || document.querySelector("main b, main script"))`))
	if injected {
		t.Error("markup from a certificate's names became elements of the page")
	}
	h1 := get(b, chromedp.Text(chromedp.CSS("h1")))
	if !strings.Contains(h1, `quote-"-lt-<-gt->.nasty.example.com`) {
		t.Errorf("the page's title is %q, want the names as text", h1)
	}
	if !strings.Contains(b.text(), nastyCN) {
		t.Errorf("the subject %q is not shown as text:\n%s", nastyCN, tail(b.text(), 2000))
	}

	// A fault from the faults page: on the overview, and in the shard.
	b.run(chromedp.Navigate(base+"/faults"), chromedp.WaitVisible(chromedp.CSS(`h1`)),
		chromedp.SetValue(chromedp.CSS(`select[aria-label="Fault for `+shard+`"]`), "unavailable"))
	b.follow(chromedp.Click(chromedp.CSS(`form:has(select[aria-label="Fault for `+shard+`"]) button`)), "/faults?done=")
	b.screenshot("faults")
	b.openUntil(base+"/", "unavailable", 5*time.Second)
	row := get(b, chromedp.Evaluate[string](`[...document.querySelectorAll("tbody tr")].filter(tr => tr.cells[0].textContent.trim() === "`+shard+`").map(tr => tr.textContent).join("")`))
	if !strings.Contains(row, "unavailable") {
		t.Errorf("the overview's row of %s does not show the fault set from the faults page: %q", shard, row)
	}
	rsp, err := http.Get(l.URL + "ct/v1/get-sth")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("get-sth of %s with the unavailable fault set from the page: %d, want 503", shard, rsp.StatusCode)
	}
	b.run(chromedp.Navigate(base+"/faults"), chromedp.WaitVisible(chromedp.CSS(`h1`)))
	b.follow(chromedp.Click(chromedp.CSS(`form:has(input[name=shard][value="`+shard+`"]) input[value=clear] ~ button`)), "/faults?done=")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rsp, err := http.Get(l.URL + "ct/v1/get-sth")
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("get-sth 5 s after clearing the fault from the page: %s", rsp.Status)
			break
		}
	}

	// A state from the same page: in the log list at once.
	other := shardURLName(shardIn(t, fetchLogList(t, base), 0, time.Now().AddDate(0, 7, 0)))
	b.run(chromedp.Navigate(base+"/faults"), chromedp.WaitVisible(chromedp.CSS(`h1`)),
		chromedp.SetValue(chromedp.CSS(`select[aria-label="State for `+other+`"]`), "readonly"))
	b.follow(chromedp.Click(chromedp.CSS(`form:has(select[aria-label="State for `+other+`"]) button`)), "/faults?done=")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var state string
		for _, op := range fetchLogList(t, base).Operators {
			for _, lg := range op.Logs {
				if shardURLName(lg) == other && lg.State != nil && lg.State.ReadOnly != nil {
					state = "readonly"
				}
			}
		}
		if state == "readonly" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log list does not say %s is readonly 5 s after the faults page set it", other)
		}
	}
	b.openUntil(base+"/", "readonly", 5*time.Second)

	// The CA's page: the issuance, and the ACME order, valid.
	ca2 := b.openUntil(base+"/issuances", "dash.example.com", 5*time.Second)
	if !strings.Contains(ca2, "CA: recent issuances") || !strings.Contains(ca2, "ACME orders") {
		t.Errorf("the CA page:\n%s", tail(ca2, 1000))
	}
	if n := get(b, chromedp.Evaluate[int](`[...document.querySelectorAll("tbody tr")].filter(tr => tr.textContent.includes("dash.example.com") && tr.textContent.includes("valid")).length`)); n < 1 {
		t.Errorf("no valid ACME order for dash.example.com on the CA page:\n%s", tail(ca2, 2000))
	}
	b.screenshot("issuances")

	// A narrow screen: nothing wider than the viewport but the tables'
	// own scrolling boxes.
	for _, u := range []string{base + "/", base + "/shard/" + shard, base + "/search?q=dash.example.com"} {
		b.run(chromedp.EmulateViewport(375, 800), chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("main")))
		overflow := get(b, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		if overflow {
			t.Errorf("%s is wider than a 375 px screen", u)
		}
	}
	b.screenshot("narrow")
	b.consoleErrors()

	// Without JavaScript: the search form and the links work.
	nj := newBrowser(t, true)
	nj.run(chromedp.Navigate(base+"/"), chromedp.WaitReady(chromedp.CSS(`input[name=q]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=q]`), "paging.example.com\r"))
	// No script runs in this page, so the DOM domain tells where it is.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		h := nj.html()
		if strings.Contains(h, "<h1>Search</h1>") && strings.Contains(h, "page-54.paging.example.com") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search without JavaScript, 10 s after Enter:\n%s", tail(h, 2000))
		}
	}
	nj.consoleErrors()
}
