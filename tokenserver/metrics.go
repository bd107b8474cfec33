/*
Copyright 2026 The m2m-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package tokenserver

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const metricsNamespace = "m2m_tokenserver"

const (
	// maxAudienceLabels bounds the distinct values of tokens_issued_total's audience label:
	// audiences are chosen by tenants, and a label set must not grow without bound.
	maxAudienceLabels = 1000
	// overflowAudience is the label value counting every audience past maxAudienceLabels. No
	// audience can be named so: an audience of that name is counted there too.
	overflowAudience = "_other"
)

// metrics are the token server's Prometheus metrics, in a registry of its own.
type metrics struct {
	registry *prometheus.Registry
	issued   *audienceSeries
	refused  map[string]prometheus.Counter
	// assertionRefused counts refused client assertions by reason (refusals.go).
	assertionRefused *prometheus.CounterVec
	duration         prometheus.Histogram
	clientsLoaded    prometheus.Gauge
	brokenRecords    prometheus.Gauge
	brokenTotal      prometheus.Counter
	keyLoadErrors    prometheus.Counter
	// keySecretDeleted counts deletions of the signing-key Secret seen by this replica.
	keySecretDeleted prometheus.Counter
	// auditFailed counts audit lines lost to a failed write; auditWrite times each write.
	auditFailed prometheus.Counter
	auditWrite  prometheus.Histogram
	// auditRefusalsDropped counts refusals answered without an audit line (over the budget).
	auditRefusalsDropped prometheus.Counter
}

// refusalCodes are the values of the refused counter's reason label.
var refusalCodes = []string{
	errInvalidRequest, errInvalidClient, errUnauthorizedClient, errUnsupportedGrantType,
	errInvalidScope, errInvalidTarget, errSlowDown, errTemporarilyUnavailable,
}

func newMetrics(s *Server) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	issued := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "tokens_issued_total",
		Help: "Access tokens issued, by audience (audiences some client holds; past the first 1000, counted as " + overflowAudience + ").",
	}, []string{"audience"})
	m.issued = newAudienceSeries(issued, maxAudienceLabels)
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "token_requests_refused_total", Help: "Token requests refused, by OAuth error code.",
	}, []string{"reason"})
	m.refused = make(map[string]prometheus.Counter, len(refusalCodes))
	for _, code := range refusalCodes {
		m.refused[code] = refused.WithLabelValues(code)
	}
	m.assertionRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "client_assertion_refused_total",
		Help: "Client assertions (private_key_jwt, ServiceAccount tokens) refused, by reason; each refusal is also logged at info.",
	}, []string{"reason"})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "token_request_duration_seconds",
		Help:    "Time to answer a token request, issued or refused.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15),
	})
	m.clientsLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "clients_loaded", Help: "Clients in the in-memory index.",
	})
	m.brokenRecords = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "broken_records", Help: "Credential records currently skipped because they are invalid.",
	})
	m.brokenTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "broken_records_seen_total", Help: "Invalid credential record versions seen.",
	})
	m.keyLoadErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "signing_key_load_errors_total", Help: "Signing-key Secret versions that could not be loaded.",
	})
	m.keySecretDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "signing_key_secret_deleted_total", Help: "Deletions of the signing-key Secret seen (the keys loaded before stay in use until it is recreated).",
	})
	m.auditFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "audit_lines_failed_total",
		Help: "Audit lines lost because the audit log's write failed (each failure is also logged); the tokens were issued.",
	})
	m.auditRefusalsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "audit_refusals_dropped_total",
		Help: "Refused token requests answered without an audit line because the refusal lines' budget (100/s, burst 200, per replica) was spent; they are counted in token_requests_refused_total.",
	})
	m.auditWrite = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "audit_write_duration_seconds",
		Help:    "Time of each write of a batch of audit lines; the requests whose lines it carries wait for it (a sink that blocks shows here).",
		Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
	})
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "token_requests_in_flight", Help: "Token requests being served.",
	}, func() float64 { return float64(s.inFlight.Load()) })
	reading := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "token_request_bodies_reading",
		Help: "Token and introspection requests whose body is still being received (they hold no in-flight slot yet).",
	}, func() float64 { return float64(s.readingBodies.Load()) })
	// ready is /readyz as a series: an alert on it needs no probe of its own, and it says which
	// replica is not ready while up says only that its scrape failed.
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "ready",
		Help: "1 when this replica is ready to issue tokens (what /readyz answers), 0 otherwise.",
	}, func() float64 {
		if s.Ready() {
			return 1
		}
		return 0
	})
	m.registry.MustRegister(issued, refused, m.assertionRefused, m.duration, m.clientsLoaded, m.brokenRecords, m.brokenTotal,
		m.keyLoadErrors, m.keySecretDeleted, m.auditFailed, m.auditWrite, m.auditRefusalsDropped, inFlight, reading, ready,
		&keyAgeCollector{s: s}, &servingCertCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector())
	return m
}

func (m *metrics) refuse(code string) {
	if c, ok := m.refused[code]; ok {
		c.Inc()
	}
}

// audienceSeries hands out the tokens_issued_total series of each audience, counting the
// compiled clients that grant it: a series no client grants any more is deleted (a renamed
// audience leaves no series behind), and the audiences past the first max get no series of
// their own but share overflowAudience's. An audience that overflowed keeps counting there
// until no client grants it.
type audienceSeries struct {
	mu  sync.Mutex
	vec *prometheus.CounterVec
	max int
	// refs maps each audience in use to its series.
	refs map[string]*audienceRef
	// named counts the audiences with a series of their own; overflowed those sharing
	// overflowAudience's.
	named, overflowed int
}

type audienceRef struct {
	clients  int
	overflow bool
	counter  prometheus.Counter
}

func newAudienceSeries(vec *prometheus.CounterVec, limit int) *audienceSeries {
	return &audienceSeries{vec: vec, max: limit, refs: map[string]*audienceRef{}}
}

// acquire returns the counter of the audience for one more client granting it.
func (as *audienceSeries) acquire(aud string) prometheus.Counter {
	as.mu.Lock()
	defer as.mu.Unlock()
	if r := as.refs[aud]; r != nil {
		r.clients++
		return r.counter
	}
	r := &audienceRef{clients: 1}
	if aud == overflowAudience || as.named >= as.max {
		r.overflow, r.counter = true, as.vec.WithLabelValues(overflowAudience)
		as.overflowed++
	} else {
		r.counter = as.vec.WithLabelValues(aud)
		as.named++
	}
	as.refs[aud] = r
	return r.counter
}

// release forgets one client granting the audience, and deletes its series after the last.
func (as *audienceSeries) release(aud string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	r := as.refs[aud]
	if r == nil {
		return
	}
	if r.clients--; r.clients > 0 {
		return
	}
	delete(as.refs, aud)
	if !r.overflow {
		as.named--
		as.vec.DeleteLabelValues(aud)
		return
	}
	if as.overflowed--; as.overflowed == 0 {
		as.vec.DeleteLabelValues(overflowAudience)
	}
}

// keyAgeCollector reports the age of every loaded signing key at scrape time.
type keyAgeCollector struct{ s *Server }

var keyAgeDesc = prometheus.NewDesc(metricsNamespace+"_signing_key_age_seconds",
	"Age of each loaded signing key since it was created, by kid and state.", []string{"kid", "state"}, nil)

// Describe implements prometheus.Collector.
func (c *keyAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keyAgeDesc }

// Collect implements prometheus.Collector.
func (c *keyAgeCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.s.opts.Clock()
	for _, k := range c.s.keys.Load().keys {
		age := now.Sub(k.createdAt) / time.Second
		ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, float64(age), k.kid, string(k.state))
	}
}

// servingCertCollector reports the validity of the serving certificate this replica presents
// (the one loaded from --tls-secret, not the one in the Secret: a replica that failed to reload
// a renewal still shows the old expiry). Nothing is reported while no certificate is loaded.
type servingCertCollector struct{ s *Server }

var (
	servingNotAfterDesc = prometheus.NewDesc(metricsNamespace+"_serving_certificate_not_after_timestamp_seconds",
		"When the serving certificate this replica presents expires (Unix time); absent without TLS.", nil, nil)
	servingNotBeforeDesc = prometheus.NewDesc(metricsNamespace+"_serving_certificate_not_before_timestamp_seconds",
		"When the serving certificate this replica presents became valid (Unix time); absent without TLS.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *servingCertCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- servingNotAfterDesc
	ch <- servingNotBeforeDesc
}

// Collect implements prometheus.Collector.
func (c *servingCertCollector) Collect(ch chan<- prometheus.Metric) {
	leaf := c.s.tls.Leaf()
	if leaf == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(servingNotAfterDesc, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
	ch <- prometheus.MustNewConstMetric(servingNotBeforeDesc, prometheus.GaugeValue, float64(leaf.NotBefore.Unix()))
}
