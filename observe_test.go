package grpcjwt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

type obsServer struct {
	testpb.UnimplementedTestServiceServer
}

func (obsServer) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{}, nil
}

func (obsServer) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

const (
	obsUnary = testpb.TestService_UnaryCall_FullMethodName
	obsEmpty = testpb.TestService_EmptyCall_FullMethodName
)

func obsClient(t *testing.T, v *Verifier, opts ...Option) testpb.TestServiceClient {
	t.Helper()
	srv := grpc.NewServer(grpc.UnaryInterceptor(UnaryServerInterceptor(v, opts...)))
	testpb.RegisterTestServiceServer(srv, obsServer{})
	return testpb.NewTestServiceClient(testkit.Serve(t, srv))
}

func obsVerifier(t *testing.T, is *testkit.Issuer) *Verifier {
	t.Helper()
	ks, err := NewStaticKeyset(is.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(ks, WithIssuer(is.URL()), WithAudience("api"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustPolicy(t *testing.T, rules map[string]Rule) *Policy {
	t.Helper()
	p, err := NewPolicy(rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecisionHook(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	var mu sync.Mutex
	var got []Decision
	hook := func(_ context.Context, d Decision) {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
	}
	c := obsClient(t, obsVerifier(t, is), WithDecisionHook(hook), WithPolicy(mustPolicy(t, map[string]Rule{
		obsUnary: {Scopes: []string{"write"}},
		obsEmpty: {Public: true},
	})))
	expired := is.Claims("api", "write")
	expired["exp"] = 1
	cases := []struct {
		name      string
		call      func(ctx context.Context) error
		token     string
		want      Decision
		wantClaim bool
	}{
		{"allowed", func(ctx context.Context) error { _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); return err },
			is.Mint(is.Claims("api", "write")), Decision{Method: obsUnary, Rule: obsUnary, Allowed: true, Code: codes.OK}, true},
		{"expired", func(ctx context.Context) error { _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); return err },
			is.Mint(expired), Decision{Method: obsUnary, Rule: obsUnary, Code: codes.Unauthenticated, Reason: ErrExpired}, false},
		{"missing scope", func(ctx context.Context) error { _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); return err },
			is.Mint(is.Claims("api", "read")), Decision{Method: obsUnary, Rule: obsUnary, Code: codes.PermissionDenied, Reason: ErrInsufficientScope}, false},
		{"no token", func(ctx context.Context) error { _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); return err },
			"", Decision{Method: obsUnary, Rule: obsUnary, Code: codes.Unauthenticated, Reason: ErrMissingToken}, false},
		{"public without token", func(ctx context.Context) error { _, err := c.EmptyCall(ctx, &testpb.Empty{}); return err },
			"", Decision{Method: obsEmpty, Rule: obsEmpty, Public: true, Allowed: true, Code: codes.OK}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			ctx := t.Context()
			if tc.token != "" {
				ctx = testkit.WithBearer(ctx, tc.token)
			}
			err := tc.call(ctx)
			if status.Code(err) != tc.want.Code {
				t.Fatalf("call: %v, want %v", err, tc.want.Code)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("hook called %d times, want once", len(got))
			}
			d := got[0]
			if d.Method != tc.want.Method || d.Rule != tc.want.Rule || d.Public != tc.want.Public ||
				d.Allowed != tc.want.Allowed || d.Code != tc.want.Code || d.Reason != tc.want.Reason {
				t.Errorf("got %+v, want %+v", d, tc.want)
			}
			if (d.Claims != nil) != tc.wantClaim || (tc.wantClaim && d.Claims.Subject != "user-123") {
				t.Errorf("claims %+v, want present: %v", d.Claims, tc.wantClaim)
			}
			if !d.Allowed && d.Err == nil {
				t.Error("a denial without its cause")
			}
		})
	}
}

func TestFetchHook(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	events := make(chan FetchEvent, 10)
	ks, err := NewRemoteKeyset(t.Context(), is.JWKSURL(), WithFetchHook(func(e FetchEvent) { events <- e }),
		WithKeysetLogger(slog.New(slog.DiscardHandler)), WithUnknownKeyRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	if e := <-events; e.Err != nil || e.Keys != 1 || e.Staleness != 0 || e.Duration <= 0 {
		t.Errorf("first fetch: %+v, want success with 1 key", e)
	}
	v, err := NewVerifier(ks, WithIssuer(is.URL()), WithAudience("api"))
	if err != nil {
		t.Fatal(err)
	}
	is.SetFailure(testkit.Fail500)
	is.Rotate()
	if _, err := v.Verify(t.Context(), is.Mint(is.Claims("api"))); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("during the outage: %v", err)
	}
	if e := <-events; e.Err == nil || e.Keys != 1 || e.Staleness <= 0 {
		t.Errorf("failed fetch: %+v, want an error, the 1 held key and a staleness", e)
	}
}

func TestDryRunPolicy(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	enforced := mustPolicy(t, map[string]Rule{obsEmpty: {Public: true}})
	candidate := mustPolicy(t, map[string]Rule{obsUnary: {Scopes: []string{"write"}}, obsEmpty: {}})
	c := obsClient(t, obsVerifier(t, is), WithPolicy(enforced), WithDryRunPolicy(candidate), WithLogger(logger))

	// The candidate would deny: the call still goes through.
	ctx := testkit.WithBearer(t.Context(), is.Mint(is.Claims("api", "read")))
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("enforced policy allows this call: %v", err)
	}
	if !strings.Contains(logs.String(), "dry-run policy would deny") || !strings.Contains(logs.String(), "insufficient scope") {
		t.Errorf("no would-deny line:\n%s", logs.String())
	}
	// The candidate would deny a public call without a token.
	logs.Reset()
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatalf("public call: %v", err)
	}
	if !strings.Contains(logs.String(), "dry-run policy would deny") || !strings.Contains(logs.String(), obsEmpty) {
		t.Errorf("no would-deny line for the public method:\n%s", logs.String())
	}
	// Agreement logs nothing.
	logs.Reset()
	ok := testkit.WithBearer(t.Context(), is.Mint(is.Claims("api", "write")))
	if _, err := c.UnaryCall(ok, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "dry-run") {
		t.Errorf("dry-run logged although both policies allow:\n%s", logs.String())
	}
	// The candidate would allow what the enforced policy denies.
	c2 := obsClient(t, obsVerifier(t, is), WithDryRunPolicy(mustPolicy(t, map[string]Rule{obsUnary: {Public: true}})), WithLogger(logger))
	logs.Reset()
	if _, err := c2.UnaryCall(t.Context(), &testpb.SimpleRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("enforced default denies a call without token: %v", err)
	}
	if !strings.Contains(logs.String(), "dry-run policy would allow") {
		t.Errorf("no would-allow line:\n%s", logs.String())
	}
}

// TestDryRunPolicyRunsTheCheckOnce: with a dry-run policy, the
// application's check (WithClaimsCheck) still runs once per call, and its
// verdict counts in both judgements.
func TestDryRunPolicyRunsTheCheckOnce(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	var logs bytes.Buffer
	var runs atomic.Int64
	check := func(_ context.Context, _ string, c *Claims) error {
		runs.Add(1)
		if c.Subject == "blocked" {
			return errors.New("subject blocked")
		}
		return nil
	}
	candidate := mustPolicy(t, map[string]Rule{obsUnary: {Scopes: []string{"write"}}})
	c := obsClient(t, obsVerifier(t, is), WithDryRunPolicy(candidate), WithClaimsCheck(check),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for _, tc := range []struct {
		sub, scope string
		want       codes.Code
		dryRun     string // the dry-run line expected, or "" for none
	}{
		{"alice", "write", codes.OK, ""},
		{"alice", "read", codes.OK, "would deny"},
		{"blocked", "write", codes.PermissionDenied, ""},
	} {
		logs.Reset()
		before := runs.Load()
		claims := is.Claims("api", tc.scope)
		claims["sub"] = tc.sub
		_, err := c.UnaryCall(testkit.WithBearer(t.Context(), is.Mint(claims)), &testpb.SimpleRequest{})
		if status.Code(err) != tc.want {
			t.Errorf("%s with %s: %v, want %v", tc.sub, tc.scope, err, tc.want)
		}
		if n := runs.Load() - before; n != 1 {
			t.Errorf("%s with %s: the check ran %d times, want once", tc.sub, tc.scope, n)
		}
		if got := logs.String(); (tc.dryRun == "") == strings.Contains(got, "dry-run") ||
			(tc.dryRun != "" && !strings.Contains(got, tc.dryRun)) {
			t.Errorf("%s with %s: dry-run log %q, want %q", tc.sub, tc.scope, got, tc.dryRun)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"rules": {
		"/pkg.S/Public": {"public": true},
		"/pkg.S/Write": {"scopes": ["write:orders"], "audiences": ["api"]},
		"/pkg.S/*": {"audiences": ["api"]},
		"*": {}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r := p.match("/pkg.S/Public"); !r.Public {
		t.Errorf("Public: %+v", r)
	}
	if r := p.match("/pkg.S/Write"); strings.Join(r.Scopes, ",") != "write:orders" || strings.Join(r.Audiences, ",") != "api" {
		t.Errorf("Write: %+v", r)
	}
	if r := p.match("/pkg.S/Other"); r.key != "/pkg.S/*" {
		t.Errorf("Other matched %q", r.key)
	}
	if r := p.match("/pkg.T/M"); r.key != "*" {
		t.Errorf("default matched %q", r.key)
	}
	for name, doc := range map[string]string{
		"unknown rule field":  `{"rules": {"/pkg.S/M": {"scope": ["x"]}}}`,
		"unknown top field":   `{"rules": {}, "extra": 1}`,
		"duplicate key":       `{"rules": {"/pkg.S/M": {}, "/pkg.S/M": {"public": true}}}`,
		"invalid key":         `{"rules": {"pkg.S/M": {}}}`,
		"public with scopes":  `{"rules": {"/pkg.S/M": {"public": true, "scopes": ["x"]}}}`,
		"rules not an object": `{"rules": []}`,
		"no rules":            `{}`,
		"scopes not strings":  `{"rules": {"/pkg.S/M": {"scopes": [1]}}}`,
		"trailing data":       `{"rules": {}} {}`,
		"not JSON":            `rules:`,
		"oversized":           `{"rules": {}, "x": "` + strings.Repeat("a", maxPolicyBytes) + `"}`,
		"public not a bool":   `{"rules": {"/pkg.S/M": {"public": "true"}}}`,
		"public null":         `{"rules": {"/pkg.S/M": {"public": null}}}`,
		"scopes null":         `{"rules": {"/pkg.S/M": {"scopes": null}}}`,
		"claims not object":   `{"rules": {"/pkg.S/M": {"claims": ["roles"]}}}`,
		"claim value string":  `{"rules": {"/pkg.S/M": {"claims": {"roles": "admin"}}}}`,
		"invalid UTF-8":       "{\"rules\": {\"/pkg.S/M\": {\"scopes\": [\"\xff\"]}}}",
	} {
		if _, err := ParsePolicy([]byte(doc)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// TestParsePolicyNamesMatchExactly: a repeated member name or one that
// differs only in case is an error at every level of a policy document,
// and so is a name in another case alone, so that a typo or a bad merge
// never relaxes a rule (encoding/json would take "Public" for "public",
// and the last of two "public" members).
func TestParsePolicyNamesMatchExactly(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"repeated scopes", `{"rules": {"/pkg.S/M": {"scopes": ["admin"], "scopes": []}}}`, `"scopes" and "scopes"`},
		{"repeated public", `{"rules": {"/pkg.S/M": {"public": false, "public": true}}}`, `"public" and "public"`},
		{"two top-level rules", `{"rules": {"/pkg.S/M": {"scopes": ["admin"]}}, "rules": {"/pkg.S/M": {"public": true}}}`, `"rules" and "rules"`},
		{"Public beside public", `{"rules": {"/pkg.S/M": {"public": false, "Public": true}}}`, `"public" and "Public"`},
		{"Public alone", `{"rules": {"/pkg.S/M": {"Public": true}}}`, `unknown member "Public" (names match exactly: "public")`},
		{"RULES", `{"RULES": {"/pkg.S/M": {"public": true}}}`, `unknown member "RULES"`},
		{"Kelvin-sign variant", `{"rules": {"/pkg.S/M": {"scopes": ["admin"], "\u017fcopes": []}}}`, `differ only in case`},
		{"repeated rule key", `{"rules": {"/pkg.S/M": {"scopes": ["admin"]}, "/pkg.S/M": {}}}`, `"/pkg.S/M" and "/pkg.S/M"`},
		{"repeated claim path", `{"rules": {"/pkg.S/M": {"claims": {"roles": ["admin"], "roles": ["user"]}}}}`, `"roles" and "roles"`},
		{"case-variant claim path", `{"rules": {"/pkg.S/M": {"claims": {"roles": ["admin"], "Roles": ["user"]}}}}`, `"roles" and "Roles"`},
		{"nested case variant in a value", `{"rules": {"/pkg.S/M": {"scopes": ["a"]}}, "rules2": {"x": 1, "X": 2}}`, `"x" and "X"`},
	} {
		p, err := ParsePolicy([]byte(tc.doc))
		if err == nil {
			t.Errorf("%s: got %+v, want an error", tc.name, p)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.want)
		}
	}
	// The new members read as the Rule fields do.
	p, err := ParsePolicy([]byte(`{"rules": {"/pkg.S/M": {"issuers": ["https://a.example"], "any_scopes": ["read", "admin"],
		"claims": {"realm_access.roles": ["admin"], "/https:~1~1x.example~1roles": ["r"]}, "certificate_bound": true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if key, r := p.Match("/pkg.S/M"); key != "/pkg.S/M" || !slices.Equal(r.Issuers, []string{"https://a.example"}) ||
		!slices.Equal(r.AnyScopes, []string{"read", "admin"}) || !r.CertificateBound ||
		!slices.Equal(r.Claims["realm_access.roles"], []string{"admin"}) || !slices.Equal(r.Claims["/https:~1~1x.example~1roles"], []string{"r"}) {
		t.Errorf("Match = %q, %+v", key, r)
	}
}

func TestPolicyWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	write := func(doc string) {
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"rules": {"/pkg.S/M": {"public": true}}}`)
	var logs bytes.Buffer
	w, err := WatchPolicyFile(path, 3600e9, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.Policy().match("/pkg.S/M").Public {
		t.Fatal("initial policy not loaded")
	}
	write(`{"rules": {"/pkg.S/M": {"scopes": ["x"]}}}`)
	w.reload()
	if r := w.Policy().match("/pkg.S/M"); r.Public || len(r.Scopes) != 1 {
		t.Errorf("after a valid change: %+v", r)
	}
	write(`{"rules": {"/pkg.S/M": {"public": true, "scopes": ["x"]}}}`)
	w.reload()
	if r := w.Policy().match("/pkg.S/M"); r.Public || len(r.Scopes) != 1 {
		t.Errorf("an invalid change replaced the policy: %+v", r)
	}
	if !strings.Contains(logs.String(), "policy file rejected") || !strings.Contains(logs.String(), "policy reloaded") {
		t.Errorf("logs:\n%s", logs.String())
	}
	os.Remove(path)
	w.reload()
	if w.Policy() == nil {
		t.Error("a vanished file dropped the policy")
	}
	w.Close()
	w.Close() // twice is fine
	if _, err := WatchPolicyFile(filepath.Join(t.TempDir(), "missing.json"), 3600e9, nil); err == nil {
		t.Error("missing file: want an error")
	}
	if _, err := WatchPolicyFile(path, 10e6, nil); err == nil {
		t.Error("interval under a second: want an error")
	}
}

// TestPolicyWatcherInterceptor: the interceptors follow the watcher's
// reloads.
func TestPolicyWatcherInterceptor(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(path, []byte(`{"rules": {"`+obsEmpty+`": {"public": true}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := WatchPolicyFile(path, 3600e9, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := obsClient(t, obsVerifier(t, is), WithPolicyWatcher(w))
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Fatalf("public by the file: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"rules": {"*": {}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w.reload()
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("after the reload made it protected: %v, want Unauthenticated", err)
	}
}

// obsRecords is a slog handler that keeps each record's level and attrs.
type obsRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *obsRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *obsRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *obsRecords) WithGroup(string) slog.Handler            { return h }
func (h *obsRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// levels returns the levels of the records with message msg, and the
// refused_since_last_warning of each Warn among them.
func (h *obsRecords) levels(msg string) (levels []slog.Level, counts []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Message != msg {
			continue
		}
		levels = append(levels, r.Level)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "refused_since_last_warning" {
				counts = append(counts, a.Value.Int64())
			}
			return true
		})
	}
	return levels, counts
}

// TestRefusalLogRateLimit: a flood of refusals gives one Warn line a
// minute, counting the refusals since the previous one, and Debug lines
// for the rest; a logger whose Debug is off pays nothing for them.
func TestRefusalLogRateLimit(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	h := &obsRecords{}
	a := NewAuthorizer(obsVerifier(t, is), WithLogger(slog.New(h)))
	refuse := func(n int) {
		for range n {
			if _, _, err := a.Authorize(t.Context(), Call{Method: obsUnary}); err == nil {
				t.Fatal("a call without a token was allowed")
			}
		}
	}
	refuse(100)
	// A minute later, the next refusal is a warning again.
	a.lastWarn.Add(-int64(refusalWarnEvery))
	refuse(10)
	levels, counts := h.levels("grpcjwt: call refused")
	if len(levels) != 110 {
		t.Fatalf("%d refusals logged, want 110", len(levels))
	}
	for i, l := range levels {
		want := slog.LevelDebug
		if i == 0 || i == 100 {
			want = slog.LevelWarn
		}
		if l != want {
			t.Errorf("refusal %d logged at %v, want %v", i, l, want)
		}
	}
	if !slices.Equal(counts, []int64{1, 100}) {
		t.Errorf("warnings count %v refusals, want [1 100] (the first; then the 99 since it and this one)", counts)
	}

	// With Debug off, the Debug lines cost no allocation of the log's.
	quiet := NewAuthorizer(obsVerifier(t, is), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	quiet.Authorize(t.Context(), Call{Method: obsUnary}) // the first refusal: a warning
	base := testing.AllocsPerRun(50, func() { a.PreAuthorize(obsUnary, nil) })
	got := testing.AllocsPerRun(50, func() { quiet.Authorize(t.Context(), Call{Method: obsUnary}) })
	if got > base+4 {
		t.Errorf("a refusal logged at a disabled Debug costs %v allocations; the refusal alone (PreAuthorize) %v", got, base)
	}
}
