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
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m2m-dev/m2m-operator/internal/certs"
	"github.com/m2m-dev/m2m-operator/internal/credential"
)

// TestTokenPortServesNoProbesOrMetrics: /metrics, /healthz and /readyz are served on the
// metrics port only.
func TestTokenPortServesNoProbesOrMetrics(t *testing.T) {
	ts := newTestServer(t)
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		if w := ts.do(httptest.NewRequest(http.MethodGet, p, nil)); w.Code != http.StatusNotFound {
			t.Errorf("token port %s: %d, want 404", p, w.Code)
		}
		if w := ts.probe(p); w.Code != http.StatusOK {
			t.Errorf("metrics port %s: %d, want 200", p, w.Code)
		}
	}
}

// TestMetricsNameTheBuild: go_build_info says which version runs.
func TestMetricsNameTheBuild(t *testing.T) {
	ts := newTestServer(t)
	if body := ts.probe("/metrics").Body.String(); !strings.Contains(body, "go_build_info{") {
		t.Error("no go_build_info on /metrics")
	}
}

var issuedSeries = regexp.MustCompile(`(?m)^m2m_tokenserver_tokens_issued_total\{audience="([^"]*)"\} (\d+)$`)

// issuedByAudience reads tokens_issued_total from the metrics port.
func (ts *testServer) issuedByAudience(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range issuedSeries.FindAllStringSubmatch(ts.probe("/metrics").Body.String(), -1) {
		out[m[1]] = m[2]
	}
	return out
}

func withAudience(aud string) func(*credential.Record) {
	return func(r *credential.Record) {
		r.Grants = []credential.AudienceGrant{{Audience: aud, Scopes: []string{"invoices:read"}}}
	}
}

// TestIssuedSeriesFollowTheAudiencesClientsHold: a renamed audience's series disappears once
// no client holds it; one two clients hold stays (with its count) until both let go.
func TestIssuedSeriesFollowTheAudiencesClientsHold(t *testing.T) {
	ts := newTestServer(t)
	rec, secret := newRecord(t, withAudience("old.payments"))
	other, _ := newRecord(t, withAudience("old.payments"))
	for _, r := range []*credential.Record{rec, other} {
		if err := ts.Index().Put("m2m-system/"+r.UID, r); err != nil {
			t.Fatal(err)
		}
	}
	ts.issue(t, grant(), rec.ClientID, secret)
	if got := ts.issuedByAudience(t); got["old.payments"] != "1" {
		t.Fatalf("series %v", got)
	}
	withAudience("new.payments")(rec)
	if err := ts.Index().Put("m2m-system/"+rec.UID, rec); err != nil {
		t.Fatal(err)
	}
	ts.issue(t, grant(), rec.ClientID, secret)
	if got := ts.issuedByAudience(t); got["old.payments"] != "1" || got["new.payments"] != "1" {
		t.Fatalf("while another client still holds the old audience: %v", got)
	}
	rec.Claims = map[string]string{"team": "renamed"} // an update that keeps the audience keeps its count
	if err := ts.Index().Put("m2m-system/"+rec.UID, rec); err != nil {
		t.Fatal(err)
	}
	if got := ts.issuedByAudience(t); got["new.payments"] != "1" {
		t.Fatalf("an update keeping the audience reset its series: %v", got)
	}
	ts.Index().Remove("m2m-system/" + other.UID)
	got := ts.issuedByAudience(t)
	if _, ok := got["old.payments"]; ok || got["new.payments"] != "1" {
		t.Fatalf("after the last holder of old.payments left: %v", got)
	}
	ts.Index().PutBroken("m2m-system/"+rec.UID, rec.ClientID, nil)
	if got := ts.issuedByAudience(t); len(got) != 0 {
		t.Fatalf("after every client left: %v", got)
	}
}

// TestAudienceLabelIsBounded: past maxAudienceLabels distinct audiences, further audiences
// are counted under overflowAudience, and that series goes once none of them is held.
func TestAudienceLabelIsBounded(t *testing.T) {
	ts := newTestServer(t)
	var recs []*credential.Record
	var lastSecret string
	for i := 0; i < maxAudienceLabels+5; i++ {
		rec, secret := newRecord(t, withAudience(fmt.Sprintf("api-%d.payments", i)))
		if err := ts.Index().Put("m2m-system/"+rec.UID, rec); err != nil {
			t.Fatal(err)
		}
		recs, lastSecret = append(recs, rec), secret
	}
	ts.issue(t, grant(), recs[len(recs)-1].ClientID, lastSecret)
	body := ts.probe("/metrics").Body.String()
	if n := strings.Count(body, "m2m_tokenserver_tokens_issued_total{"); n != maxAudienceLabels+1 {
		t.Fatalf("%d series for %d audiences, want %d + the overflow one", n, len(recs), maxAudienceLabels)
	}
	if got := ts.issuedByAudience(t); got[overflowAudience] != "1" {
		t.Fatalf("the token of an audience past the bound is not counted under %s: %q", overflowAudience, got[overflowAudience])
	}
	for _, rec := range recs[maxAudienceLabels:] {
		ts.Index().Remove("m2m-system/" + rec.UID)
	}
	got := ts.issuedByAudience(t)
	if _, ok := got[overflowAudience]; ok || len(got) != maxAudienceLabels {
		t.Fatalf("after the overflowed audiences went: %d series, overflow %q", len(got), got[overflowAudience])
	}
}

// metricLine returns the value of the series whose exposition line starts with series (name
// and labels), or "" when the metrics port does not show it.
func (ts *testServer) metricLine(series string) string {
	for _, line := range strings.Split(ts.probe("/metrics").Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestReadyMetricFollowsReadyz: m2m_tokenserver_ready is 0 while /readyz answers 503, and 1
// once it answers 200.
func TestReadyMetricFollowsReadyz(t *testing.T) {
	ts := newTestServer(t)
	if v := ts.metricLine("m2m_tokenserver_ready"); v != "1" {
		t.Errorf("ready server: m2m_tokenserver_ready %q, want 1", v)
	}
	ts.draining.Store(true)
	if ts.probe("/readyz").Code != http.StatusServiceUnavailable {
		t.Fatal("a draining server should not be ready")
	}
	if v := ts.metricLine("m2m_tokenserver_ready"); v != "0" {
		t.Errorf("draining server: m2m_tokenserver_ready %q, want 0", v)
	}
}

// TestServingCertificateMetrics: the validity of the certificate the replica presents, absent
// before one is loaded.
func TestServingCertificateMetrics(t *testing.T) {
	ts := newTestServer(t)
	const notAfter = "m2m_tokenserver_serving_certificate_not_after_timestamp_seconds"
	const notBefore = "m2m_tokenserver_serving_certificate_not_before_timestamp_seconds"
	if v := ts.metricLine(notAfter); v != "" {
		t.Errorf("no certificate loaded: %s = %q, want no series", notAfter, v)
	}
	ca, err := certs.NewCA("m2m test CA", time.Now(), 3*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := certs.NewServing(ca, []string{"localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.tls.Update(kp.CertPEM, kp.KeyPEM); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Time{notAfter: kp.Cert.NotAfter, notBefore: kp.Cert.NotBefore} {
		got, err := strconv.ParseFloat(ts.metricLine(name), 64)
		if err != nil || int64(got) != want.Unix() {
			t.Errorf("%s = %v (%v), want %d", name, got, err, want.Unix())
		}
	}
}
