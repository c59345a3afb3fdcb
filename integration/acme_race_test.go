package integration

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/ctstage/ctstage/ca/ratelimit"
	"github.com/ctstage/ctstage/internal/serve"
	"github.com/ctstage/ctstage/internal/testsupport/acmetest"
	"github.com/ctstage/ctstage/internal/testsupport/testenv"
)

// raceN is how many requests each race test sends at once.
const raceN = 6

// signFresh is a JWS of payload for url with a nonce of its own, so that
// many can be prepared and then sent at once.
func (c *rawClient) signFresh(key *ecdsa.PrivateKey, kid, url string, payload any) []byte {
	var b []byte
	if payload != nil {
		var err error
		if b, err = json.Marshal(payload); err != nil {
			c.t.Fatal(err)
		}
	}
	rsp, err := c.hc.Head(c.url("newNonce"))
	if err != nil {
		c.t.Fatal(err)
	}
	rsp.Body.Close()
	jws, err := acmetest.SignJWS(key, url, rsp.Header.Get("Replay-Nonce"), kid, b, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return jws
}

// race sends every body to url at the same moment and returns the
// answers. Each goes on a connection of its own, opened and handshaken
// beforehand, so that the requests reach the server together.
func (c *rawClient) race(url string, bodies [][]byte) []rawRsp {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.s.roots}, MaxIdleConnsPerHost: len(bodies)}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 90 * time.Second}
	var warm sync.WaitGroup
	for range bodies {
		warm.Go(func() {
			if rsp, err := hc.Get(c.url("newNonce")); err == nil {
				rsp.Body.Close()
			}
		})
	}
	warm.Wait()
	out := make([]rawRsp, len(bodies))
	var ready, wg sync.WaitGroup
	ready.Add(len(bodies))
	start := make(chan struct{})
	for i, b := range bodies {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
			if err != nil {
				c.t.Error(err)
				ready.Done()
				return
			}
			req.Header.Set("Content-Type", "application/jose+json")
			ready.Done()
			<-start
			rsp, err := hc.Do(req)
			if err != nil {
				c.t.Error(err)
				return
			}
			defer rsp.Body.Close()
			body, _ := io.ReadAll(rsp.Body)
			out[i] = rawRsp{rsp.StatusCode, rsp.Header, body}
		})
	}
	ready.Wait()
	close(start)
	wg.Wait()
	return out
}

// metric reads one sample of the log address's /metrics by its exact
// name and labels, e.g. `ctstage_ca_issuances_total{outcome="issued"}`.
func metric(t *testing.T, s *serve.Stage, sample string) float64 {
	t.Helper()
	rsp, err := http.Get(s.LogURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	sc := bufio.NewScanner(rsp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// count is how many answers have status and, when typ is set, that
// problem type.
func count(rs []rawRsp, status int, typ string) int {
	n := 0
	for _, r := range rs {
		if r.status == status && (typ == "" || r.problemType() == typ) {
			n++
		}
	}
	return n
}

func describe(rs []rawRsp) string {
	var b strings.Builder
	for i, r := range rs {
		fmt.Fprintf(&b, "\n  %d: %d %s %.200s", i, r.status, r.problemType(), r.body)
	}
	return b.String()
}

// TestACMERace sends concurrent requests that each change one ACME object
// from the same state, on SQLite and on MariaDB, and checks that each
// state transition happens once (RFC 8555 section 7.4 for finalize):
//
//   - finalize: one certificate, one valid answer, orderNotReady for the
//     others;
//   - challenge responses: every answer shows the one outcome stored;
//   - authorization deactivations: one 200, the others refused;
//   - key changes to different keys: one wins, and only its key works.
//
// .ci/run repeats it under the race detector.
func TestACMERace(t *testing.T) {
	for _, backend := range []string{"sqlite", "mysql"} {
		t.Run(backend, func(t *testing.T) {
			spec := "sqlite"
			if backend == "mysql" {
				spec = testenv.MySQL(t)
			}
			s := startACMEStage(t, func(o *serve.Options) { o.Storage, o.ACME.AlwaysValid = spec, true })
			t.Run("finalize", func(t *testing.T) { raceFinalize(t, s) })
			t.Run("challenge", func(t *testing.T) { raceChallenge(t, s) })
			t.Run("deactivate", func(t *testing.T) { raceDeactivate(t, s) })
			t.Run("keyChange", func(t *testing.T) { raceKeyChange(t, s) })
			t.Run("failedChallenge", func(t *testing.T) { raceFailedChallenge(t, backend) })
		})
	}
}

// raceFailedChallenge responds 6 times at once to a challenge that fails
// (nothing listens on the validator's http-01 port), with the failed-
// validations limit at 2: one stored outcome is one failure counted, so
// a new order for the name is still allowed. Were every response's
// outcome stored, 6 failures would make it rateLimited.
func raceFailedChallenge(t *testing.T, backend string) {
	spec := "sqlite"
	if backend == "mysql" {
		spec = testenv.MySQL(t) // a database of its own: another --data
	}
	s := startACMEStage(t, func(o *serve.Options) {
		l := ratelimit.Defaults()
		l.FailedValidations = ratelimit.Limit{Count: 2, Window: time.Hour}
		o.Storage, o.ACME.RateLimits = spec, &l
	})
	c := newRawClient(t, s)
	c.register()
	const name = "race-failed.example.com"
	_, o := c.newOrder(name)
	var az struct{ Challenges []struct{ Type, URL string } }
	json.Unmarshal(c.post(o["authorizations"].([]any)[0].(string), nil).body, &az)
	var ch string
	for _, x := range az.Challenges {
		if x.Type == "http-01" {
			ch = x.URL
		}
	}
	var bodies [][]byte
	for range raceN {
		bodies = append(bodies, c.signFresh(c.key, c.kid, ch, map[string]any{}))
	}
	for i, r := range c.race(ch, bodies) {
		var got struct{ Status string }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Status != "invalid" {
			t.Errorf("challenge response %d: %d %s, want 200 invalid", i, r.status, r.body)
		}
	}
	ids := []map[string]string{{"type": "dns", "value": name}}
	if r := c.post(c.url("newOrder"), map[string]any{"identifiers": ids}); r.status != http.StatusCreated {
		t.Errorf("new order after one stored failure: %d %s; the concurrent failures were counted more than once", r.status, r.body)
	}
}

func raceFinalize(t *testing.T, s *acmeStage) {
	c := newRawClient(t, s)
	c.register()
	const name = "race-finalize.example.com"
	loc, o := c.readyOrder(name)
	finalize := o["finalize"].(string)
	issuedBefore := metric(t, s.Stage, `ctstage_ca_issuances_total{outcome="issued"}`)
	var bodies [][]byte
	for range raceN {
		bodies = append(bodies, c.signFresh(c.key, c.kid, finalize, map[string]string{"csr": csrFor(t, newKey(t), name)}))
	}
	rs := c.race(finalize, bodies)
	valid := 0
	for _, r := range rs {
		var got struct{ Status string }
		if r.status == http.StatusOK && json.Unmarshal(r.body, &got) == nil && got.Status == "valid" {
			valid++
		}
	}
	if valid != 1 || count(rs, http.StatusForbidden, "orderNotReady") != raceN-1 {
		t.Errorf("%d concurrent finalize requests: %d valid answers, want 1, and orderNotReady for the rest:%s", raceN, valid, describe(rs))
	}
	if n := metric(t, s.Stage, `ctstage_ca_issuances_total{outcome="issued"}`) - issuedBefore; n != 1 {
		t.Errorf("the CA issued %v certificates for one order, want 1", n)
	}
	var order struct{ Status, Certificate string }
	json.Unmarshal(c.post(loc, nil).body, &order)
	if order.Status != "valid" || order.Certificate == "" {
		t.Errorf("order after the race: %+v", order)
	}
}

func raceChallenge(t *testing.T, s *acmeStage) {
	c := newRawClient(t, s)
	c.register()
	_, o := c.newOrder("race-challenge.example.com")
	authz := o["authorizations"].([]any)[0].(string)
	var az struct{ Challenges []struct{ URL string } }
	json.Unmarshal(c.post(authz, nil).body, &az)
	ch := az.Challenges[0].URL
	var bodies [][]byte
	for range raceN {
		bodies = append(bodies, c.signFresh(c.key, c.kid, ch, map[string]any{}))
	}
	rs := c.race(ch, bodies)
	for i, r := range rs {
		var got struct{ Status string }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Status != "valid" {
			t.Errorf("challenge response %d: %d %s, want 200 valid", i, r.status, r.body)
		}
	}
	var after struct{ Status string }
	json.Unmarshal(c.post(authz, nil).body, &after)
	if after.Status != "valid" {
		t.Errorf("authorization after the race: %s", after.Status)
	}
}

func raceDeactivate(t *testing.T, s *acmeStage) {
	c := newRawClient(t, s)
	c.register()
	_, o := c.newOrder("race-deactivate.example.com")
	authz := o["authorizations"].([]any)[0].(string)
	var bodies [][]byte
	for range raceN {
		bodies = append(bodies, c.signFresh(c.key, c.kid, authz, map[string]string{"status": "deactivated"}))
	}
	rs := c.race(authz, bodies)
	if count(rs, http.StatusOK, "") != 1 || count(rs, http.StatusBadRequest, "malformed") != raceN-1 {
		t.Errorf("%d concurrent deactivations: want one 200 and malformed for the rest:%s", raceN, describe(rs))
	}
	var after struct{ Status string }
	json.Unmarshal(c.post(authz, nil).body, &after)
	if after.Status != "deactivated" {
		t.Errorf("authorization after the race: %s", after.Status)
	}
}

func raceKeyChange(t *testing.T, s *acmeStage) {
	c := newRawClient(t, s)
	c.register()
	url := c.url("keyChange")
	oldJWK, err := json.Marshal(jose.JSONWebKey{Key: c.key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	var keys []*ecdsa.PrivateKey
	var bodies [][]byte
	for range raceN {
		k := newKey(t).(*ecdsa.PrivateKey)
		keys = append(keys, k)
		inner, err := acmetest.SignJWS(k, url, "", "", []byte(fmt.Sprintf(`{"account":%q,"oldKey":%s}`, c.kid, oldJWK)), nil)
		if err != nil {
			t.Fatal(err)
		}
		var innerObj map[string]any
		json.Unmarshal(inner, &innerObj)
		bodies = append(bodies, c.signFresh(c.key, c.kid, url, innerObj))
	}
	rs := c.race(url, bodies)
	if count(rs, http.StatusOK, "") != 1 {
		t.Fatalf("%d concurrent key changes: want exactly one 200:%s", raceN, describe(rs))
	}
	for i, r := range rs {
		post := func(key *ecdsa.PrivateKey) int {
			return c.postRaw(c.kid, c.signFresh(key, c.kid, c.kid, nil)).status
		}
		if r.status == http.StatusOK {
			if st := post(keys[i]); st != http.StatusOK {
				t.Errorf("the winning key: POST-as-GET to the account answered %d", st)
			}
		} else if r.status >= 500 {
			t.Errorf("key change %d: %d %s", i, r.status, r.body)
		} else if st := post(keys[i]); st == http.StatusOK {
			t.Errorf("key change %d lost (%d) but its key works", i, r.status)
		}
	}
	if st := c.postRaw(c.kid, c.signFresh(c.key, c.kid, c.kid, nil)).status; st == http.StatusOK {
		t.Error("the old key still works after the key change")
	}
}
