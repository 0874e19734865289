package connectjwt_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcjwt/grpcjwt"
)

// The rule tests mirror TestRule* of the grpc-go interceptors, in each
// protocol: the same Policy keys (connect procedures are gRPC's full
// method names) and the same Rule semantics.

// ctCallEmpty calls the unary EmptyCall, which reports the handler's
// claims in its response header.
func (e *ctEnv) callEmpty(ctx context.Context, protocol string, auth []string) ctOutcome {
	c := connect.NewClient[testpb.Empty, testpb.Empty](e.client, e.srv.URL+ctEmpty, ctProtocolOption(protocol))
	req := connect.NewRequest(&testpb.Empty{})
	for _, a := range auth {
		req.Header().Add("Authorization", a)
	}
	res, err := c.CallUnary(ctx, req)
	return ctOutcomeOf(err, func() http.Header { return res.Header() })
}

// callHealth calls the health service's Check.
func (e *ctEnv) callHealth(ctx context.Context, protocol string, auth []string) ctOutcome {
	c := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](e.client, e.srv.URL+ctHealth, ctProtocolOption(protocol))
	req := connect.NewRequest(&healthpb.HealthCheckRequest{})
	for _, a := range auth {
		req.Header().Add("Authorization", a)
	}
	res, err := c.CallUnary(ctx, req)
	return ctOutcomeOf(err, func() http.Header { return res.Header() })
}

// TestRulePrecedence checks that the exact procedure rule beats the
// service rule, which beats the default rule.
func TestRulePrecedence(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	e := ctServe(t, ctVerifier(t, is), false, grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{
		grpcjwt.DefaultRuleKey: {Scopes: []string{"default"}},
		ctService:              {Scopes: []string{"svc"}},
		ctUnary:                {Scopes: []string{"exact"}},
		ctEmpty:                {Public: true},
	})))
	tok := func(scope string) []string { return ctBearer(ctMint(is, nil, ctAudience, scope)) }
	ctx := t.Context()
	for _, p := range ctProtocols {
		call := func(kind string, auth []string) connect.Code {
			return e.call(ctx, ctCall{protocol: p, kind: kind, auth: auth, n: 1}).code
		}
		for _, tc := range []struct {
			name string
			got  connect.Code
			want connect.Code
		}{
			{"exact rule: its scope", call("unary", tok("exact")), 0},
			{"exact rule: service scope is not enough", call("unary", tok("svc")), connect.CodePermissionDenied},
			{"exact rule: default scope is not enough", call("unary", tok("default")), connect.CodePermissionDenied},
			{"service rule: its scope", call("server", tok("svc")), 0},
			{"service rule: exact scope is not enough", call("server", tok("exact")), connect.CodePermissionDenied},
			{"service rule: default scope is not enough", call("bidi", tok("default")), connect.CodePermissionDenied},
			{"service rule on bidi", call("bidi", tok("svc")), 0},
			{"service rule on client stream", call("client", tok("svc")), 0},
			{"default rule: its scope", e.callHealth(ctx, p, tok("default")).code, 0},
			{"default rule: service scope is not enough", e.callHealth(ctx, p, tok("svc")).code, connect.CodePermissionDenied},
			{"default rule: token required", e.callHealth(ctx, p, nil).code, connect.CodeUnauthenticated},
			{"public exact rule beats service rule", e.callEmpty(ctx, p, nil).code, 0},
		} {
			if tc.got != tc.want {
				t.Errorf("%s, %s: got %v, want %v", p, tc.name, tc.got, tc.want)
			}
		}
	}
}

// TestRuleNoDefault checks that without a default rule (or without any
// policy) every procedure that no rule names requires a valid token.
func TestRuleNoDefault(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	v := ctVerifier(t, is)
	valid := ctBearer(ctMint(is, nil, ctAudience))
	for name, opts := range map[string][]grpcjwt.Option{
		"public rule only": {grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{ctEmpty: {Public: true}}))},
		"empty policy":     {grpcjwt.WithPolicy(ctPolicy(t, nil))},
		"nil policy":       {grpcjwt.WithPolicy(nil)},
		"no policy option": nil,
	} {
		e := ctServe(t, v, false, opts...)
		for _, p := range ctProtocols {
			for _, kind := range ctKinds {
				if o := e.call(t.Context(), ctCall{protocol: p, kind: kind, n: 1}); o.code != connect.CodeUnauthenticated || o.msg != "missing bearer token" {
					t.Errorf("%s, %s, %s without token: got %v, want Unauthenticated", name, p, kind, o)
				}
				if o := e.call(t.Context(), ctCall{protocol: p, kind: kind, auth: valid, n: 1}); o.err != nil || o.sub() != "user-123" {
					t.Errorf("%s, %s, %s with token: got %v, subject %q", name, p, kind, o, o.sub())
				}
			}
			if o := e.callHealth(t.Context(), p, nil); o.code != connect.CodeUnauthenticated {
				t.Errorf("%s, %s: health without token: got %v, want Unauthenticated", name, p, o)
			}
			o := e.callEmpty(t.Context(), p, nil)
			if wantPublic := name == "public rule only"; (o.err == nil) != wantPublic {
				t.Errorf("%s, %s: EmptyCall without token: got %v, public %v", name, p, o, wantPublic)
			}
		}
	}
}

// TestRulePublic checks public procedures: a valid token's claims reach
// the handler, an invalid token is ignored, or refused with
// WithStrictPublicTokens.
func TestRulePublic(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	v := ctVerifier(t, is)
	policy := ctPolicy(t, map[string]grpcjwt.Rule{ctEmpty: {Public: true}, ctOutStream: {Public: true}, ctBidi: {Public: true}})
	lenient := ctServe(t, v, false, grpcjwt.WithPolicy(policy))
	strict := ctServe(t, v, false, grpcjwt.WithPolicy(policy), grpcjwt.WithStrictPublicTokens())
	// Behind the middleware too: it lets public procedures pass whatever
	// their authorization says.
	lenientMW := ctServe(t, v, true, grpcjwt.WithPolicy(policy))

	cases := []struct {
		name   string
		auth   []string
		strict connect.Code // outcome under WithStrictPublicTokens
		sub    string       // subject the handler sees when the call proceeds
	}{
		{"no token", nil, 0, ctNoClaims},
		{"valid token", ctBearer(ctMint(is, nil, ctAudience)), 0, "user-123"},
		{"expired token", ctBearer(ctExpired(is, ctAudience)), connect.CodeUnauthenticated, ctNoClaims},
		{"wrong audience", ctBearer(ctMint(is, nil, "api://billing")), connect.CodeUnauthenticated, ctNoClaims},
		{"garbage token", []string{"Bearer garbage"}, connect.CodeUnauthenticated, ctNoClaims},
		{"other scheme", []string{"Basic xyz"}, connect.CodeUnauthenticated, ctNoClaims},
		{"two values", []string{"Bearer " + ctMint(is, nil, ctAudience), "Bearer x"}, connect.CodeUnauthenticated, ctNoClaims},
	}
	for _, tc := range cases {
		for _, p := range ctProtocols {
			for kind, call := range map[string]func(e *ctEnv) ctOutcome{
				"unary": func(e *ctEnv) ctOutcome { return e.callEmpty(t.Context(), p, tc.auth) },
				"server": func(e *ctEnv) ctOutcome {
					return e.call(t.Context(), ctCall{protocol: p, kind: "server", auth: tc.auth, n: 1})
				},
				"bidi": func(e *ctEnv) ctOutcome {
					return e.call(t.Context(), ctCall{protocol: p, kind: "bidi", auth: tc.auth, n: 1})
				},
			} {
				for name, e := range map[string]*ctEnv{"lenient": lenient, "lenient behind middleware": lenientMW} {
					if o := call(e); o.err != nil || o.sub() != tc.sub {
						t.Errorf("%s, %s, %s, %s: got %v, subject %q; want OK, subject %q", tc.name, p, kind, name, o, o.sub(), tc.sub)
					}
				}
				o := call(strict)
				if o.code != tc.strict {
					t.Errorf("%s, %s, %s, strict: got %v, want %v", tc.name, p, kind, o, tc.strict)
				}
				if o.code == 0 && o.sub() != tc.sub {
					t.Errorf("%s, %s, %s, strict: subject %q, want %q", tc.name, p, kind, o.sub(), tc.sub)
				}
			}
		}
	}
	// A procedure that is not public on the same server still needs a token.
	if o := lenient.call(t.Context(), ctCall{protocol: "connect", kind: "unary"}); o.code != connect.CodeUnauthenticated {
		t.Errorf("UnaryCall without token on the lenient server: got %v, want Unauthenticated", o)
	}
	if got, want := lenient.impl.calls.Load(), int64(3*len(ctProtocols)*len(cases)); got != want {
		t.Errorf("lenient handler calls = %d, want %d", got, want)
	}
	if got, want := strict.impl.calls.Load(), int64(2*3*len(ctProtocols)); got != want { // no token and valid token
		t.Errorf("strict handler calls = %d, want %d", got, want)
	}
}

// TestRuleAudience checks a rule that narrows the accepted audiences.
func TestRuleAudience(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	v := ctVerifier(t, is, grpcjwt.WithAudience(ctAdminAudience))
	e := ctServe(t, v, false, grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{
		ctUnary:     {Audiences: []string{ctAdminAudience}},
		ctOutStream: {Audiences: []string{ctAdminAudience, "api://unused"}},
	})))
	orders := ctBearer(ctMint(is, nil, ctAudience))
	admin := ctBearer(ctMint(is, nil, ctAdminAudience))
	both := ctBearer(ctMint(is, func(m map[string]any) { m["aud"] = []string{ctAudience, ctAdminAudience} }, ""))
	const msg = "token audience not accepted for this method"
	for _, p := range ctProtocols {
		for _, kind := range []string{"unary", "server"} {
			o := e.call(t.Context(), ctCall{protocol: p, kind: kind, auth: orders, n: 1})
			if o.code != connect.CodeUnauthenticated || o.msg != msg {
				t.Errorf("%s, %s, orders token: got %v, want Unauthenticated %q", p, kind, o, msg)
			}
			if want := []string{`Bearer error="invalid_token", error_description="` + msg + `"`}; !slices.Equal(o.www(), want) {
				t.Errorf("%s, %s, orders token: WWW-Authenticate %q, want %q", p, kind, o.www(), want)
			}
			if o := e.call(t.Context(), ctCall{protocol: p, kind: kind, auth: admin, n: 1}); o.err != nil {
				t.Errorf("%s, %s, admin token: got %v, want OK", p, kind, o)
			}
			if o := e.call(t.Context(), ctCall{protocol: p, kind: kind, auth: both, n: 1}); o.err != nil {
				t.Errorf("%s, %s, token for both audiences: got %v, want OK", p, kind, o)
			}
		}
		// Procedures without an audience rule take any audience of the verifier.
		if o := e.call(t.Context(), ctCall{protocol: p, kind: "bidi", auth: orders, n: 1}); o.err != nil {
			t.Errorf("%s, bidi without audience rule, orders token: got %v, want OK", p, o)
		}
	}
}

// TestRuleScopes checks that a rule requires every scope it names.
func TestRuleScopes(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	e := ctServe(t, ctVerifier(t, is), false, grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{
		ctService: {Scopes: []string{"read:orders", "write:orders"}},
	})))
	for _, tc := range []struct {
		name   string
		scopes []string
		want   connect.Code
	}{
		{"none", nil, connect.CodePermissionDenied},
		{"first only", []string{"read:orders"}, connect.CodePermissionDenied},
		{"second only", []string{"write:orders"}, connect.CodePermissionDenied},
		{"wrong case", []string{"read:orders", "WRITE:orders"}, connect.CodePermissionDenied},
		{"prefix", []string{"read:orders", "write:order"}, connect.CodePermissionDenied},
		{"both", []string{"write:orders", "read:orders"}, 0},
		{"both and more", []string{"admin", "read:orders", "write:orders"}, 0},
	} {
		auth := ctBearer(ctMint(is, nil, ctAudience, tc.scopes...))
		before := e.impl.calls.Load()
		ctEach(func(p, kind string) {
			o := e.call(t.Context(), ctCall{protocol: p, kind: kind, auth: auth, n: 1})
			if o.code != tc.want {
				t.Errorf("%s, %s, %s: got %v, want %v", tc.name, p, kind, o, tc.want)
			}
			if o.code == connect.CodePermissionDenied {
				if o.msg != "token lacks a required scope" {
					t.Errorf("%s, %s, %s: message %q", tc.name, p, kind, o.msg)
				}
				want := `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="read:orders write:orders"`
				if !slices.Equal(o.www(), []string{want}) {
					t.Errorf("%s, %s, %s: WWW-Authenticate %q, want %q", tc.name, p, kind, o.www(), want)
				}
			}
		})
		want := int64(0)
		if tc.want == 0 {
			want = int64(len(ctProtocols) * len(ctKinds))
		}
		if ran := e.impl.calls.Load() - before; ran != want {
			t.Errorf("%s: handler ran %d times, want %d", tc.name, ran, want)
		}
	}
}

// TestRuleFromPolicyFile runs the rules of a policy document, the file
// that grpc-go servers read with grpcjwt.ParsePolicy: any-of scopes,
// claim values, audiences and a public procedure, in every protocol.
func TestRuleFromPolicyFile(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	policy, err := grpcjwt.ParsePolicy([]byte(`{"rules": {
		"` + ctEmpty + `":     {"public": true},
		"` + ctUnary + `":     {"any_scopes": ["read:orders", "admin"]},
		"` + ctOutStream + `": {"claims": {"realm_access.roles": ["auditor"], "/https:~1~1example.com~1tenant": ["acme"]}},
		"` + ctInStream + `":  {"audiences": ["` + ctAdminAudience + `"], "scopes": ["import"]},
		"*":                   {"scopes": ["never-granted"]}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	e := ctServe(t, ctVerifier(t, is, grpcjwt.WithAudience(ctAdminAudience)), false, grpcjwt.WithPolicy(policy))
	roles := func(tenant string, roles ...string) func(map[string]any) {
		return func(m map[string]any) {
			m["realm_access"] = map[string]any{"roles": roles}
			m["https://example.com/tenant"] = tenant
		}
	}
	const noClaim = "token lacks a required claim value"
	for _, tc := range []struct {
		name string
		kind string
		tok  string
		code connect.Code
		msg  string
	}{
		{"any-of: first", "unary", ctMint(is, nil, ctAudience, "read:orders"), 0, ""},
		{"any-of: second", "unary", ctMint(is, nil, ctAudience, "admin"), 0, ""},
		{"any-of: neither", "unary", ctMint(is, nil, ctAudience, "write:orders"), connect.CodePermissionDenied, "token lacks a required scope"},
		{"claims: both hold", "server", ctMint(is, roles("acme", "auditor", "x"), ctAudience), 0, ""},
		{"claims: wrong tenant", "server", ctMint(is, roles("other", "auditor"), ctAudience), connect.CodePermissionDenied, noClaim},
		{"claims: role missing", "server", ctMint(is, roles("acme", "viewer"), ctAudience), connect.CodePermissionDenied, noClaim},
		{"claims: absent", "server", ctMint(is, nil, ctAudience), connect.CodePermissionDenied, noClaim},
		{"audience and scope", "client", ctMint(is, nil, ctAdminAudience, "import"), 0, ""},
		{"audience without scope", "client", ctMint(is, nil, ctAdminAudience), connect.CodePermissionDenied, "token lacks a required scope"},
		{"scope without audience", "client", ctMint(is, nil, ctAudience, "import"), connect.CodeUnauthenticated, "token audience not accepted for this method"},
		{"default rule", "bidi", ctMint(is, nil, ctAudience, "read:orders", "admin", "import"), connect.CodePermissionDenied, "token lacks a required scope"},
	} {
		for _, p := range ctProtocols {
			if o := e.call(t.Context(), ctCall{protocol: p, kind: tc.kind, auth: ctBearer(tc.tok), n: 1}); o.code != tc.code || o.msg != tc.msg {
				t.Errorf("%s, %s: got %v, want %v %q", tc.name, p, o, tc.code, tc.msg)
			}
		}
	}
	for _, p := range ctProtocols {
		if o := e.callEmpty(t.Context(), p, nil); o.err != nil || o.sub() != ctNoClaims {
			t.Errorf("public, %s: got %v, subject %q", p, o, o.sub())
		}
	}
}
