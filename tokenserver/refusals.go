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

// Why a client assertion was refused. The client gets one answer whatever the reason
// (invalid_client): telling it which check failed would help only someone forging assertions,
// and would tell which client ids exist. The operator gets the reason: a log line at info with
// the presented client id (or ServiceAccount), the reason and the header's alg and kid — never
// the assertion, a secret or a hash — and a counter by reason. Log lines are rate-limited
// (refusalLogRate, refusalLogBurst) so that a flood of forged assertions cannot flood the logs;
// the lines left out are counted in the next one, and the counter counts every refusal.

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// refusal is the reason a client assertion was refused: one of refusalReasons, the values of
// the client_assertion_refused_total counter's reason label.
type refusal string

const (
	// refusedMalformed: not a compact JWS with iss, sub, aud and exp, or an untrusted header.
	refusedMalformed refusal = "malformed"
	// refusedClientMismatch: iss differs from sub, or client_id names another client.
	refusedClientMismatch refusal = "client_mismatch"
	// refusedUnknownClient: no client has that id (or ServiceAccount; two clients bound to one
	// ServiceAccount are both unknown for it).
	refusedUnknownClient refusal = "unknown_client"
	// refusedWrongMethod: the client exists but does not authenticate with private_key_jwt.
	refusedWrongMethod refusal = "wrong_method"
	// refusedNoMatchingKey: no key of the client (or the cluster) has the header's kid and fits
	// its alg.
	refusedNoMatchingKey refusal = "no_matching_key"
	// refusedBadSignature: a key fits, the signature does not verify.
	refusedBadSignature refusal = "bad_signature"
	// refusedWrongIssuer: a ServiceAccount token not issued by the cluster's issuer.
	refusedWrongIssuer refusal = "wrong_issuer"
	// refusedWrongAudience: aud names neither the issuer nor the token endpoint.
	refusedWrongAudience refusal = "wrong_audience"
	// refusedExpired: exp has passed.
	refusedExpired refusal = "expired"
	// refusedNotYetValid: nbf or iat is in the future (beyond the leeway).
	refusedNotYetValid refusal = "not_yet_valid"
	// refusedLifetime: exp is further ahead than --max-assertion-lifetime.
	refusedLifetime refusal = "lifetime_too_long"
	// refusedMissingJTI: a private_key_jwt assertion without jti.
	refusedMissingJTI refusal = "missing_jti"
	// refusedReplayed: the jti was accepted before and its assertion has not expired.
	refusedReplayed refusal = "replayed"
	// refusedTokenReview: the API server's TokenReview did not confirm the ServiceAccount
	// token (its pod or ServiceAccount is gone), or could not be asked.
	refusedTokenReview refusal = "token_review_refused"
	// refusedNoCluster: a ServiceAccount token, and no API server to check it with.
	refusedNoCluster refusal = "serviceaccounts_unavailable"
)

// refusalReasons are all the reasons, each a counter series from the start.
var refusalReasons = []refusal{
	refusedMalformed, refusedClientMismatch, refusedUnknownClient, refusedWrongMethod,
	refusedNoMatchingKey, refusedBadSignature, refusedWrongIssuer, refusedWrongAudience,
	refusedExpired, refusedNotYetValid, refusedLifetime, refusedMissingJTI, refusedReplayed,
	refusedTokenReview, refusedNoCluster,
}

const (
	// refusalLogRate and refusalLogBurst bound the refusal log lines per replica.
	refusalLogRate  = 10
	refusalLogBurst = 50
	// maxLoggedLen bounds each logged value taken from the request.
	maxLoggedLen = 128
)

// refusalLog rate-limits the refusal log lines and counts the ones left out.
type refusalLog struct {
	limit      *rate.Limiter
	suppressed atomic.Int64
	counters   map[refusal]prometheus.Counter
}

func newRefusalLog(vec *prometheus.CounterVec) *refusalLog {
	l := &refusalLog{limit: rate.NewLimiter(refusalLogRate, refusalLogBurst), counters: make(map[refusal]prometheus.Counter, len(refusalReasons))}
	for _, r := range refusalReasons {
		l.counters[r] = vec.WithLabelValues(string(r))
	}
	return l
}

// refuseAssertion counts and logs a refused client assertion, then answers as authFailed:
// presented is the id the failure budget is charged to (the client id, or the ServiceAccount
// token's sub); a is the parsed assertion, nil when it did not parse.
func (s *Server) refuseAssertion(why refusal, presented string, a *assertion) *oauthError {
	rl := s.refusals
	if c, ok := rl.counters[why]; ok {
		c.Inc()
	}
	if rl.limit.Allow() {
		kv := make([]any, 0, 10)
		who := "clientID"
		if isServiceAccountSubject(presented) {
			who = "serviceAccount"
		}
		kv = append(kv, "reason", string(why), who, clip(presented))
		if a != nil {
			kv = append(kv, "alg", clip(a.alg), "kid", clip(a.kid))
		}
		if n := rl.suppressed.Swap(0); n > 0 {
			kv = append(kv, "suppressedSinceLast", n)
		}
		s.log.Info("client assertion refused", kv...)
	} else {
		rl.suppressed.Add(1)
	}
	return s.authFailed(presented)
}

// clip bounds a request-supplied value for the log.
func clip(v string) string {
	if len(v) <= maxLoggedLen {
		return v
	}
	return v[:maxLoggedLen] + "…"
}
