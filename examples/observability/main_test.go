package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grpcjwt/grpcjwt"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseSample(t *testing.T, line string) sample {
	t.Helper()
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		t.Fatalf("not a sample: %q", line)
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	if err != nil {
		t.Fatalf("sample %q: %v", line, err)
	}
	s := sample{name: line[:i], labels: map[string]string{}, value: v}
	if j := strings.IndexByte(s.name, '{'); j >= 0 {
		for _, m := range labelRE.FindAllStringSubmatch(s.name[j:], -1) {
			s.labels[m[1]] = m[2]
		}
		s.name = s.name[:j]
	}
	return s
}

// sum adds up the samples named name whose labels include want.
func sum(samples []sample, name string, want map[string]string) (total float64, found bool) {
	for _, s := range samples {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
			found = true
		}
	}
	return total, found
}

// TestRun runs the example and checks the scraped counts and the audit log.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())

	var samples []sample
	var audit []string
	for l := range strings.Lines(out.String()) {
		l = strings.TrimSuffix(l, "\n")
		switch {
		case strings.HasPrefix(l, "grpcjwt_"):
			samples = append(samples, parseSample(t, l))
		case strings.HasPrefix(l, "{"):
			audit = append(audit, l)
		}
	}

	const (
		getOrder    = service + "GetOrder"
		createOrder = service + "CreateOrder"
	)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grpcjwt_allowed_total", nil, 6},
		{"grpcjwt_allowed_total", map[string]string{"rule": service + "ServerInfo", "issuer": "", "client_id": ""}, 1},
		{"grpcjwt_allowed_total", map[string]string{"rule": getOrder, "client_id": "client-abc"}, 3},
		{"grpcjwt_denied_total", nil, 5},
		{"grpcjwt_denied_total", map[string]string{"reason": "missing_token", "rule": getOrder, "code": "Unauthenticated"}, 1},
		{"grpcjwt_denied_total", map[string]string{"reason": "expired", "rule": getOrder, "code": "Unauthenticated"}, 1},
		{"grpcjwt_denied_total", map[string]string{"reason": "audience", "rule": getOrder, "code": "Unauthenticated"}, 1},
		{"grpcjwt_denied_total", map[string]string{"reason": "insufficient_scope", "rule": createOrder, "code": "PermissionDenied"}, 1},
		{"grpcjwt_denied_total", map[string]string{"reason": "unknown_key", "rule": getOrder}, 1},
		// The first fetch and the one after the outage; the background
		// refresh (hourly) does not run during the test.
		{"grpcjwt_jwks_fetch_success_total", nil, 2},
		{"grpcjwt_jwks_fetch_failed_total", nil, 1},
		{"grpcjwt_jwks_fetch_duration_seconds_count", map[string]string{"result": "success"}, 2},
		{"grpcjwt_jwks_fetch_duration_seconds_count", map[string]string{"result": "failed"}, 1},
		{"grpcjwt_jwks_keys", nil, 2},
		{"grpcjwt_jwks_staleness_seconds", nil, 0},
	}
	for _, c := range checks {
		got, found := sum(samples, c.name, c.labels)
		if !found {
			t.Errorf("%s%v: no sample", c.name, c.labels)
		} else if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Five allowed calls carried a valid token; each is a hit or a miss.
	hit, okHit := sum(samples, "grpcjwt_jwt_cache_hit_total", nil)
	miss, okMiss := sum(samples, "grpcjwt_jwt_cache_miss_total", nil)
	if !okHit || !okMiss || hit+miss != 5 || hit < 1 {
		t.Errorf("jwt_cache_hit + jwt_cache_miss = %v + %v, want 5 in all with at least one hit (tokens are presented twice)", hit, miss)
	}

	// The audit log: one line per denial, the fields of an audit record,
	// nothing from a token.
	if len(audit) != 5 {
		t.Fatalf("audit log has %d lines, want 5 (one per denial):\n%s", len(audit), strings.Join(audit, "\n"))
	}
	var reasons []string
	for _, l := range audit {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		for _, k := range []string{"time", "method", "rule", "reason", "code", "peer"} {
			if s, _ := rec[k].(string); s == "" {
				t.Errorf("audit line lacks %q: %s", k, l)
			}
		}
		if rec["authorized"] != false {
			t.Errorf("audit line not authorized=false: %s", l)
		}
		if p, _ := rec["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("audit peer = %q, want the client's 127.0.0.1 address", p)
		}
		reasons = append(reasons, rec["reason"].(string))
		// A compact JWS starts with the base64url of `{"`; claim values
		// of the demo tokens must not appear either.
		for _, secret := range []string{"eyJ", "Bearer", "user-123", "client-abc", "jti-"} {
			if strings.Contains(l, secret) {
				t.Errorf("audit line holds %q: %s", secret, l)
			}
		}
	}
	slices.Sort(reasons)
	if want := []string{"audience", "expired", "insufficient_scope", "missing_token", "unknown_key"}; !slices.Equal(reasons, want) {
		t.Errorf("audit reasons = %v, want %v", reasons, want)
	}
	if strings.Contains(out.String(), "eyJ") {
		t.Errorf("output holds token text")
	}
}

// TestReasonName checks that every sentinel a Decision can carry has a
// label value of its own.
func TestReasonName(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range reasonNames {
		name := reasonName(r.err)
		if name != r.name {
			t.Errorf("reasonName(%v) = %q, want %q", r.err, name, r.name)
		}
		if seen[name] {
			t.Errorf("label value %q used twice", name)
		}
		seen[name] = true
		// Wrapped, as the interceptors' errors are.
		if got := reasonName(fmt.Errorf("detail: %w", r.err)); got != r.name {
			t.Errorf("reasonName(wrapped %v) = %q, want %q", r.err, got, r.name)
		}
	}
	if got := reasonName(errors.New("something else")); got != "other" {
		t.Errorf("reasonName(unknown) = %q, want other", got)
	}
	if got := reasonName(grpcjwt.ErrExpired); got != "expired" {
		t.Errorf("reasonName(ErrExpired) = %q", got)
	}
}

// TestFetchedStaleness checks the staleness gauge's state: set from a
// failed fetch's Staleness, cleared by a success.
func TestFetchedStaleness(t *testing.T) {
	m, err := newAuthMetrics(context.Background(), noop.NewMeterProvider().Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	m.fetched(grpcjwt.FetchEvent{Keys: 2})
	if m.staleSince.Load() != 0 || m.keys.Load() != 2 {
		t.Fatalf("after success: staleSince %d keys %d", m.staleSince.Load(), m.keys.Load())
	}
	m.fetched(grpcjwt.FetchEvent{Err: errors.New("down"), Keys: 2, Staleness: 90e9})
	if m.staleSince.Load() == 0 {
		t.Fatal("after failure: staleSince not set")
	}
	m.fetched(grpcjwt.FetchEvent{Keys: 3})
	if m.staleSince.Load() != 0 || m.keys.Load() != 3 {
		t.Fatalf("after recovery: staleSince %d keys %d", m.staleSince.Load(), m.keys.Load())
	}
}
