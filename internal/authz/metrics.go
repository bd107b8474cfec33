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

package authz

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const metricsNamespace = "m2m_authz"

const (
	// maxAudienceLabels bounds the distinct values of the audience label: audiences are chosen
	// by tenants, and a label set must not grow without bound.
	maxAudienceLabels = 1000
	// overflowAudience counts every audience past maxAudienceLabels; unknownAudience the
	// requests for which no policy holds the audience (whatever the gateway or host said: that
	// value is the caller's, never a label).
	overflowAudience = "_other"
	unknownAudience  = "_unknown"
)

// metrics are m2m authz's Prometheus metrics, in a registry of its own.
type metrics struct {
	registry  *prometheus.Registry
	decisions *prometheus.CounterVec
	duration  prometheus.Histogram
	policies  prometheus.Gauge
	unknown   [numOutcomes]prometheus.Counter

	// mu serializes attach (table swaps); decisions never take it.
	mu sync.Mutex
}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "decisions_total",
		Help: "Decisions, by audience (audiences some policy holds; past the first 1000 counted as " + overflowAudience +
			", requests for no known audience as " + unknownAudience + ") and decision.",
	}, []string{"audience", "decision"})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "decision_duration_seconds",
		Help:    "Time to decide, token verification included.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 16),
	})
	m.policies = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "audiences", Help: "Audiences in the route table (held by a policy).",
	})
	m.registry.MustRegister(m.decisions, m.duration, m.policies,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector())
	m.unknown = m.series(unknownAudience)
	return m
}

func (m *metrics) series(label string) [numOutcomes]prometheus.Counter {
	var out [numOutcomes]prometheus.Counter
	for o := range numOutcomes {
		out[o] = m.decisions.WithLabelValues(label, o.String())
	}
	return out
}

// attach gives every audience of the new table its counters (the first maxAudienceLabels in
// sorted order get their own, the rest share overflowAudience's), and deletes the series of the
// audiences the old table had and the new one has not, so a renamed audience leaves nothing.
func (m *metrics) attach(t, old *Table) {
	m.mu.Lock()
	defer m.mu.Unlock()
	named := 0
	for _, aud := range t.sortedAudiences() {
		ar := t.audiences[aud]
		label := aud
		if named >= maxAudienceLabels || aud == overflowAudience || aud == unknownAudience {
			label = overflowAudience
		} else {
			named++
		}
		ar.label = label
		ar.counters = m.series(label)
	}
	if old != nil {
		for _, ar := range old.audiences {
			if cur := t.audiences[ar.audience]; (cur == nil || cur.label != ar.label) && ar.label != overflowAudience {
				for o := range numOutcomes {
					m.decisions.DeleteLabelValues(ar.label, o.String())
				}
			}
		}
	}
	m.policies.Set(float64(len(t.audiences)))
}

func (m *metrics) observe(ar *audienceRoutes, o Outcome, d time.Duration) {
	if ar == nil || ar.counters[o] == nil {
		m.unknown[o].Inc()
	} else {
		ar.counters[o].Inc()
	}
	m.duration.Observe(d.Seconds())
}
