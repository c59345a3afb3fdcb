package acme

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ctstage/ctstage/ca"
)

// metrics are the ACME server's own metrics. Every label value comes from
// a bounded set: route names, HTTP statuses, ACME error types, challenge
// types, profiles, revocation reasons and rate-limit names.
type metrics struct {
	requests    *prometheus.CounterVec   // endpoint, code
	latency     *prometheus.HistogramVec // endpoint
	problems    *prometheus.CounterVec   // type
	orders      prometheus.Counter
	finalized   *prometheus.CounterVec   // outcome
	issued      *prometheus.CounterVec   // profile
	revocations *prometheus.CounterVec   // reason
	validations *prometheus.CounterVec   // challenge, outcome
	vaLatency   *prometheus.HistogramVec // challenge, outcome
	rateLimited *prometheus.CounterVec   // limit
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_acme_requests_total",
			Help: "ACME requests by endpoint (route name, e.g. newOrder) and HTTP status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ctstage_acme_request_seconds",
			Help:    "Time to answer an ACME request, by endpoint; finalize includes issuance and CT submission.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_acme_problems_total",
			Help: "Problem documents sent, by ACME error type without urn:ietf:params:acme:error: (badNonce, rateLimited, ...).",
		}, []string{"type"}),
		orders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ctstage_acme_orders_created_total",
			Help: "Orders created.",
		}),
		finalized: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_acme_orders_finalized_total",
			Help: "Finalize requests on an existing order of the account, by outcome: issued, or the ACME error type of the refusal.",
		}, []string{"outcome"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_acme_certificates_issued_total",
			Help: "Certificates issued through ACME, by profile.",
		}, []string{"profile"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_acme_revocations_total",
			Help: "Certificates revoked, by RFC 5280 reason name.",
		}, []string{"reason"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_acme_validations_total",
			Help: "Challenge validations by challenge type and outcome: valid, or the ACME error type of the failure.",
		}, []string{"challenge", "outcome"}),
		vaLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ctstage_acme_validation_seconds",
			Help:    "Time to validate a challenge (CAA check included), by challenge type and outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"challenge", "outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ctstage_acme_rate_limited_total",
			Help: "Requests refused by a rate limit, by limit name (package ca/ratelimit).",
		}, []string{"limit"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.problems, m.orders, m.finalized,
		m.issued, m.revocations, m.validations, m.vaLatency, m.rateLimited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// request counts one answered request.
func (m *metrics) request(endpoint string, code int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

func (m *metrics) problem(p *Problem) { m.problems.WithLabelValues(problemType(p)).Inc() }

// validated counts one validation; p is nil for a valid one, else the
// challenge's error.
func (m *metrics) validated(challenge string, p *Problem, d time.Duration) {
	outcome := statusValid
	if p != nil {
		outcome = problemType(p)
	}
	m.validations.WithLabelValues(challenge, outcome).Inc()
	m.vaLatency.WithLabelValues(challenge, outcome).Observe(d.Seconds())
}

// finalize counts one finalize of an existing order by the error it
// answered with: nil is issued.
func (m *metrics) finalize(err error) {
	outcome := "issued"
	if err != nil {
		outcome = "error"
		if p, ok := asProblem(err); ok {
			outcome = problemType(p)
		}
	}
	m.finalized.WithLabelValues(outcome).Inc()
}

// certificate counts one issued certificate; profile "" is the default.
func (m *metrics) certificate(profile string) {
	if profile == "" {
		profile = ca.DefaultProfile
	}
	m.issued.WithLabelValues(profile).Inc()
}

// revoked counts one revocation with an RFC 5280 reason code.
func (m *metrics) revoked(reason int) {
	name, ok := reasonNames[reason]
	if !ok {
		name = "other"
	}
	m.revocations.WithLabelValues(name).Inc()
}

// reasonNames are the CRLReason names (RFC 5280 section 5.3.1) of the
// codes revoke accepts.
var reasonNames = map[int]string{
	0: "unspecified", 1: "keyCompromise", 3: "affiliationChanged", 4: "superseded", 5: "cessationOfOperation",
}

func asProblem(err error) (*Problem, bool) {
	var p *Problem
	return p, errors.As(err, &p)
}

// problemType is p's ACME error type without the urn prefix.
func problemType(p *Problem) string { return strings.TrimPrefix(p.Type, errNS) }
