package grpcjwt

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// This file tests Policy (validation, matching, CheckServer) from inside the
// package, and the one interceptor property that needs the package's
// internals: a panic while verifying never lets a call through. Helpers
// carry a "pt" prefix so that they do not collide with other test files of
// package grpcjwt.

// ptErrors unwraps the errors that errors.Join put together.
func ptErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// TestPolicyRejectsMalformedRules checks that NewPolicy refuses every
// malformed key and contradictory rule, naming the key.
func TestPolicyRejectsMalformedRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		rule Rule
	}{
		{"empty key", "", Rule{}},
		{"bare name", "Foo", Rule{}},
		{"service without method", "/svc", Rule{}},
		{"empty method", "/svc/", Rule{}},
		{"empty service", "//m", Rule{}},
		{"extra segment", "/svc/m/x", Rule{}},
		{"wildcard with suffix", "/svc/*x", Rule{}},
		{"wildcard service", "/*/m", Rule{}},
		{"no leading slash", "svc/m", Rule{}},
		{"bare service wildcard", "/*", Rule{}},
		{"wildcard in a service rule's service", "/pkg.*/*", Rule{}},
		{"nested service wildcard", "/a/b/*", Rule{}},
		{"space in method", "/svc/m n", Rule{}},
		{"double wildcard default", "**", Rule{}},
		{"public with scopes", "/svc/m", Rule{Public: true, Scopes: []string{"read"}}},
		{"public with audiences", "/svc/m", Rule{Public: true, Audiences: []string{"api://x"}}},
		{"public default with scopes", DefaultRuleKey, Rule{Public: true, Scopes: []string{"read"}}},
		{"empty scope", "/svc/m", Rule{Scopes: []string{"read", ""}}},
		{"scope with space", "/svc/m", Rule{Scopes: []string{"read write"}}},
		{"scope with tab", "/svc/*", Rule{Scopes: []string{"read\twrite"}}},
		{"scope with quote", "/svc/m", Rule{Scopes: []string{`read"`}}},
		{"scope with backslash", "/svc/m", Rule{Scopes: []string{`read\`}}},
		{"empty audience", "/svc/m", Rule{Audiences: []string{""}}},
		{"empty issuer", "/svc/m", Rule{Issuers: []string{""}}},
		{"any-of scope with space", "/svc/m", Rule{AnyScopes: []string{"a b"}}},
		{"scope with NBSP", "/svc/m", Rule{Scopes: []string{"a\u00a0b"}}},
		{"scope with a control character", "/svc/m", Rule{Scopes: []string{"a\x7f"}}},
		{"public with issuers", "/svc/m", Rule{Public: true, Issuers: []string{"https://a"}}},
		{"public with any-of scopes", "/svc/m", Rule{Public: true, AnyScopes: []string{"a"}}},
		{"public with claims", "/svc/m", Rule{Public: true, Claims: map[string][]string{"roles": {"a"}}}},
		{"empty claim path", "/svc/m", Rule{Claims: map[string][]string{"": {"a"}}}},
		{"claim path with an empty name", "/svc/m", Rule{Claims: map[string][]string{"a..b": {"a"}}}},
		{"claim path ending in a dot", "/svc/m", Rule{Claims: map[string][]string{"a.": {"a"}}}},
		{"JSON Pointer with a bad escape", "/svc/m", Rule{Claims: map[string][]string{"/a~2b": {"a"}}}},
		{"JSON Pointer ending in ~", "/svc/m", Rule{Claims: map[string][]string{"/a~": {"a"}}}},
		{"JSON Pointer with an empty name", "/svc/m", Rule{Claims: map[string][]string{"/a//b": {"a"}}}},
		{"claim without values", "/svc/m", Rule{Claims: map[string][]string{"roles": {}}}},
		{"claim with an empty value", "/svc/m", Rule{Claims: map[string][]string{"roles": {"admin", ""}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy(map[string]Rule{tc.key: tc.rule})
			if err == nil {
				t.Fatalf("NewPolicy(%q: %+v) = %v, nil; want an error", tc.key, tc.rule, p)
			}
			if p != nil {
				t.Errorf("NewPolicy returned a policy with its error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "grpcjwt: ") || !strings.Contains(msg, "rule "+strconv.Quote(tc.key)) {
				t.Errorf("error %q does not name rule %q", msg, tc.key)
			}
		})
	}
}

// TestPolicyJoinsAllErrors checks that one NewPolicy call reports every bad
// rule, not only the first.
func TestPolicyJoinsAllErrors(t *testing.T) {
	rules := map[string]Rule{
		"":             {},
		"Foo":          {},
		"/svc":         {},
		"/svc/":        {},
		"//m":          {},
		"/svc/m/x":     {},
		"/svc/*x":      {},
		"/*/m":         {},
		"svc/m":        {},
		"/ok.Svc/Pub":  {Public: true, Scopes: []string{"read"}},
		"/ok.Svc/Sp":   {Scopes: []string{"a b"}},
		"/ok.Svc/Em":   {Scopes: []string{""}},
		"/ok.Svc/Good": {Scopes: []string{"read"}},
		"/ok.Svc/*":    {},
		"*":            {},
	}
	_, err := NewPolicy(rules)
	if err == nil {
		t.Fatal("NewPolicy accepted malformed rules")
	}
	if got, want := len(ptErrors(err)), len(rules)-3; got != want {
		t.Errorf("joined %d errors, want %d: %v", got, want, err)
	}
	for key := range rules {
		named := strings.Contains(err.Error(), "rule "+strconv.Quote(key)+":")
		if valid := key == "/ok.Svc/Good" || key == "/ok.Svc/*" || key == "*"; named == valid {
			t.Errorf("error names rule %q: %v; valid rule: %v\n%v", key, named, valid, err)
		}
	}
}

// TestPolicyAcceptsWellFormedRules checks the key forms NewPolicy takes.
func TestPolicyAcceptsWellFormedRules(t *testing.T) {
	p, err := NewPolicy(map[string]Rule{
		DefaultRuleKey:                      {Public: true},
		"/grpc.testing.TestService/*":       {Scopes: []string{"read:orders", "write:orders"}},
		"/grpc.testing.TestService/Unary":   {Audiences: []string{"api://admin"}},
		"/a/b":                              {},
		"/pkg.v1.Svc_With-Odd.Name/Method2": {Scopes: []string{"https://example.com/scope"}},
	})
	if err != nil || p == nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	if p, err := NewPolicy(nil); err != nil || p == nil {
		t.Errorf("NewPolicy(nil) = %v, %v; want an empty policy", p, err)
	}
}

// TestPolicyMatch checks precedence: exact method, then service wildcard,
// then the default rule, then the built-in rule requiring a valid token.
func TestPolicyMatch(t *testing.T) {
	scopes := []string{"exact"}
	p, err := NewPolicy(map[string]Rule{
		DefaultRuleKey:    {Scopes: []string{"default"}},
		"/pkg.Svc/*":      {Scopes: []string{"svc"}},
		"/pkg.Svc/Method": {Scopes: scopes},
		"/pkg.Svc/Open":   {Public: true},
		"/pkg.Other/*":    {Public: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	scopes[0] = "mutated" // the policy holds its own copy
	noDefault, err := NewPolicy(map[string]Rule{"/pkg.Svc/Open": {Public: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p      *Policy
		method string
		key    string
	}{
		{p, "/pkg.Svc/Method", "/pkg.Svc/Method"},
		{p, "/pkg.Svc/Open", "/pkg.Svc/Open"},
		{p, "/pkg.Svc/Other", "/pkg.Svc/*"},
		{p, "/pkg.Svc/method", "/pkg.Svc/*"},       // names are case-sensitive
		{p, "/pkg.SvcX/Method", DefaultRuleKey},    // not a prefix match
		{p, "/pkg.Sv/Method", DefaultRuleKey},      // nor a suffix one
		{p, "/pkg.Other/Anything", "/pkg.Other/*"}, // a public service
		{p, "/grpc.health.v1.Health/Check", "*"},   // everything else
		{p, "", DefaultRuleKey},                    // nonsense falls to the default
		{noDefault, "/pkg.Svc/Open", "/pkg.Svc/Open"},
		{noDefault, "/pkg.Svc/Method", defaultRule.key},
		{nil, "/pkg.Svc/Open", defaultRule.key},
	} {
		got := tc.p.match(tc.method)
		if got.key != tc.key {
			t.Errorf("match(%q) = rule %q, want %q", tc.method, got.key, tc.key)
		}
	}
	if r := p.match("/pkg.Svc/Method"); len(r.Scopes) != 1 || r.Scopes[0] != "exact" {
		t.Errorf("rule scopes %q changed with the caller's slice", r.Scopes)
	}
	if r := noDefault.match("/x.Y/Z"); r.Public || len(r.Scopes) != 0 || len(r.Audiences) != 0 {
		t.Errorf("built-in default rule %+v is not 'valid token required'", r.Rule)
	}
}

// ptServer is a TestService that counts handler runs.
type ptServer struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (s *ptServer) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	return &testpb.SimpleResponse{}, nil
}

func (s *ptServer) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	s.calls.Add(1)
	return st.Send(&testpb.StreamingOutputCallResponse{})
}

// TestPolicyCheckServer checks that CheckServer, given a real *grpc.Server,
// reports every rule whose service or method is not registered (a typo).
func TestPolicyCheckServer(t *testing.T) {
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &ptServer{})
	healthpb.RegisterHealthServer(srv, health.NewServer())

	good, err := NewPolicy(map[string]Rule{
		DefaultRuleKey:                             {},
		"/grpc.testing.TestService/*":              {Scopes: []string{"read"}},
		"/grpc.testing.TestService/UnaryCall":      {Scopes: []string{"write"}},
		"/grpc.testing.TestService/FullDuplexCall": {},
		"/grpc.health.v1.Health/Check":             {Public: true},
		"/grpc.health.v1.Health/*":                 {Public: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := good.CheckServer(srv); err != nil {
		t.Errorf("CheckServer(correct policy) = %v, want nil", err)
	}

	typos := []string{
		"/grpc.testing.TestService/UnaryCal", // method typo
		"/grpc.testing.TestServce/*",         // service typo in a wildcard
		"/grpc.testing.TestServce/UnaryCall", // service typo
		"/grpc.health.v1.Health/check",       // wrong case
		"/TestService/UnaryCall",             // package missing
	}
	rules := map[string]Rule{DefaultRuleKey: {}, "/grpc.testing.TestService/EmptyCall": {}}
	for _, k := range typos {
		rules[k] = Rule{}
	}
	bad, err := NewPolicy(rules)
	if err != nil {
		t.Fatal(err)
	}
	err = bad.CheckServer(srv)
	if err == nil {
		t.Fatal("CheckServer accepted rules for unregistered methods")
	}
	if got := len(ptErrors(err)); got != len(typos) {
		t.Errorf("CheckServer reported %d problems, want %d: %v", got, len(typos), err)
	}
	for _, k := range typos {
		if !strings.Contains(err.Error(), strconv.Quote(k)) {
			t.Errorf("CheckServer error does not name %q: %v", k, err)
		}
	}
	if strings.Contains(err.Error(), "EmptyCall") {
		t.Errorf("CheckServer reported a registered method: %v", err)
	}

	var none *Policy
	if err := none.CheckServer(srv); err != nil {
		t.Errorf("nil policy: CheckServer = %v, want nil", err)
	}
}

// ptLogs is a slog.Handler that keeps messages and levels.
type ptLogs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *ptLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *ptLogs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *ptLogs) WithGroup(string) slog.Handler            { return l }
func (l *ptLogs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func (l *ptLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "\n")
}

func (l *ptLogs) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// TestInterceptorPanicInVerifier checks that a panic inside verification
// rejects the call (Unauthenticated) and never runs the handler, for the
// unary and stream interceptors and for AuthFunc. Verify cannot be made to
// panic from outside the package, so the verifiers here are built broken:
// one with no keyset at all, one whose remote keyset has none of its
// fields set.
func TestInterceptorPanicInVerifier(t *testing.T) {
	key := testkit.NewKey("ES256")
	const iss, aud = "https://issuer.example", "api://orders"
	tok := testkit.Sign(key, nil, map[string]any{
		"iss": iss, "aud": aud, "sub": "user-1", "exp": time.Now().Add(time.Hour).Unix(),
	})
	broken := map[string]func(t *testing.T) *Verifier{
		"nil keyset": func(t *testing.T) *Verifier {
			o := defaultVerifierOptions()
			o.issuers, o.audiences = []string{iss}, []string{aud}
			return &Verifier{o: o} // Verify dereferences the nil *Keyset
		},
		"remote keyset with nil fields": func(t *testing.T) *Verifier {
			// The on-demand refresh calls its nil clock (with the
			// keyset's mutex held: each call needs a fresh one).
			v, err := NewVerifier(&Keyset{remote: &remoteSource{}}, WithIssuer(iss), WithAudience(aud))
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
	}
	// Each chain gets a fresh broken verifier per call.
	type chain struct {
		name  string
		serve func(v *Verifier, logger *slog.Logger) []grpc.ServerOption
	}
	chains := []chain{
		{"interceptors", func(v *Verifier, l *slog.Logger) []grpc.ServerOption {
			return []grpc.ServerOption{
				grpc.UnaryInterceptor(UnaryServerInterceptor(v, WithLogger(l))),
				grpc.StreamInterceptor(StreamServerInterceptor(v, WithLogger(l))),
			}
		}},
		{"AuthFunc", func(v *Verifier, l *slog.Logger) []grpc.ServerOption {
			af := AuthFunc(v, WithLogger(l))
			return []grpc.ServerOption{
				grpc.UnaryInterceptor(auth.UnaryServerInterceptor(af)),
				grpc.StreamInterceptor(auth.StreamServerInterceptor(af)),
			}
		}},
		{"public method, strict", func(v *Verifier, l *slog.Logger) []grpc.ServerOption {
			p, err := NewPolicy(map[string]Rule{DefaultRuleKey: {Public: true}})
			if err != nil {
				panic(err)
			}
			opts := []Option{WithLogger(l), WithPolicy(p), WithStrictPublicTokens()}
			return []grpc.ServerOption{
				grpc.UnaryInterceptor(UnaryServerInterceptor(v, opts...)),
				grpc.StreamInterceptor(StreamServerInterceptor(v, opts...)),
			}
		}},
	}
	for bname, mk := range broken {
		for _, ch := range chains {
			t.Run(bname+"/"+ch.name, func(t *testing.T) {
				for _, kind := range []string{"unary", "stream"} {
					logs := &ptLogs{}
					srv := grpc.NewServer(ch.serve(mk(t), slog.New(logs))...)
					ts := &ptServer{}
					testpb.RegisterTestServiceServer(srv, ts)
					c := testpb.NewTestServiceClient(testkit.Serve(t, srv))
					ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tok)

					var err error
					var trailer metadata.MD
					if kind == "unary" {
						_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
					} else {
						var st grpc.ServerStreamingClient[testpb.StreamingOutputCallResponse]
						st, err = c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
						if err == nil {
							for err == nil {
								_, err = st.Recv()
							}
							if err == io.EOF {
								err = nil
							}
							trailer = st.Trailer()
						}
					}
					s := status.Convert(err)
					if s.Code() != codes.Unauthenticated || s.Message() != "token verification failed" {
						t.Errorf("%s: got %v %q, want Unauthenticated %q", kind, s.Code(), s.Message(), "token verification failed")
					}
					if got := trailer.Get("www-authenticate"); len(got) != 1 || got[0] != `Bearer error="invalid_token"` {
						t.Errorf("%s: www-authenticate %q", kind, got)
					}
					if n := ts.calls.Load(); n != 0 {
						t.Errorf("%s: the handler ran %d times after a panic in the verifier", kind, n)
					}
					if logs.count("ERROR grpcjwt: panic while authorizing; call rejected") != 1 {
						t.Errorf("%s: panic not logged at ERROR; logs:\n%s", kind, logs)
					}
				}
			})
		}
	}
}

// TestParseClaimPath: dotted names, or an RFC 6901 JSON Pointer for names
// that hold a dot or a slash.
func TestParseClaimPath(t *testing.T) {
	for path, want := range map[string][]string{
		"roles":                             {"roles"},
		"realm_access.roles":                {"realm_access", "roles"},
		"resource_access.orders-api.roles":  {"resource_access", "orders-api", "roles"},
		"urn:zitadel:iam:org:project:roles": {"urn:zitadel:iam:org:project:roles"},
		"/https:~1~1example.com~1roles":     {"https://example.com/roles"},
		"/resource_access/my.client/roles":  {"resource_access", "my.client", "roles"},
		"/a~01":                             {"a~1"},
		"/~0~1":                             {"~/"},
	} {
		got, err := parseClaimPath(path)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseClaimPath(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
}
