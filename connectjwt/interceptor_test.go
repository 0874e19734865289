package connectjwt_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/connectjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// TestClaimsReachHandlers checks that every kind of call (unary, server,
// client and bidi streams), in every protocol, gets the verified claims in
// its handler's context, and that without a token no handler runs.
func TestClaimsReachHandlers(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	e := ctServe(t, ctVerifier(t, is), false)
	tok := ctMint(is, nil, ctAudience, "read:orders", "write:orders")

	ctEach(func(protocol, kind string) {
		name := protocol + ", " + kind
		o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: ctBearer(tok), n: 3})
		if o.err != nil {
			t.Fatalf("%s: got %v, want OK", name, o.err)
		}
		if got := o.sub(); got != "user-123" {
			t.Errorf("%s: handler saw subject %q, want user-123", name, got)
		}
		if got := strings.Join(o.meta.Values("x-scope"), ","); got != "read:orders write:orders" {
			t.Errorf("%s: handler saw scopes %q, want %q", name, got, "read:orders write:orders")
		}
		if got := strings.Join(o.meta.Values("x-aud"), ","); got != ctAudience {
			t.Errorf("%s: handler saw audience %q, want %q", name, got, ctAudience)
		}
		if len(o.www()) != 0 {
			t.Errorf("%s: accepted call has WWW-Authenticate %q", name, o.www())
		}
		want := map[string][]string{
			"unary":  {"user-123"},
			"server": {"user-123", "user-123", "user-123"},
			"bidi":   {"user-123", "user-123", "user-123"},
		}[kind]
		if !slices.Equal(o.subs, want) {
			t.Errorf("%s: response subjects %q, want %q", name, o.subs, want)
		}
		if kind == "client" && o.received != 3 {
			t.Errorf("%s: handler received %d messages, want 3", name, o.received)
		}
	})
	if got := e.impl.calls.Load(); got != 12 {
		t.Errorf("handler calls = %d, want 12", got)
	}

	// The same calls without a token: refused before the handler.
	ctEach(func(protocol, kind string) {
		o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, n: 2})
		if o.code != connect.CodeUnauthenticated || o.msg != "missing bearer token" {
			t.Errorf("%s, %s without token: got %v, want Unauthenticated %q", protocol, kind, o, "missing bearer token")
		}
		if len(o.subs) != 0 {
			t.Errorf("%s, %s without token: got responses %q", protocol, kind, o.subs)
		}
	})
	if got := e.impl.calls.Load(); got != 12 {
		t.Errorf("handler calls = %d after refused calls, want still 12", got)
	}
}

// TestTokenExtraction checks the parsing of the Authorization header:
// scheme in any case, one value only, empty and oversized tokens, other
// schemes; as TestInterceptorTokenExtraction does for grpc-go.
func TestTokenExtraction(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	e := ctServe(t, ctVerifier(t, is), false)
	tok := ctMint(is, nil, ctAudience)
	other := ctMint(is, func(m map[string]any) { m["sub"] = "user-other" }, ctAudience)
	expired := ctExpired(is, ctAudience)
	const single = "authorization must be a single bearer token"

	for _, tc := range []struct {
		name   string
		values []string
		code   connect.Code
		msg    string
		www    string // expected WWW-Authenticate, if not ""
	}{
		{name: "Bearer", values: []string{"Bearer " + tok}},
		{name: "bearer", values: []string{"bearer " + tok}},
		{name: "BEARER", values: []string{"BEARER " + tok}},
		{name: "bEaReR", values: []string{"bEaReR " + tok}},
		{name: "several spaces after scheme", values: []string{"Bearer    " + tok}},
		{name: "two valid values", values: []string{"Bearer " + tok, "Bearer " + other}, code: connect.CodeUnauthenticated, msg: single,
			www: `Bearer error="invalid_request", error_description="authorization must be a single bearer token"`},
		{name: "valid then invalid", values: []string{"Bearer " + tok, "Bearer " + expired}, code: connect.CodeUnauthenticated, msg: single},
		{name: "invalid then valid", values: []string{"Bearer " + expired, "Bearer " + tok}, code: connect.CodeUnauthenticated, msg: single},
		{name: "valid then other scheme", values: []string{"Bearer " + tok, "Basic xyz"}, code: connect.CodeUnauthenticated, msg: single},
		{name: "empty token", values: []string{"Bearer "}, code: connect.CodeUnauthenticated, msg: single},
		{name: "scheme only", values: []string{"Bearer"}, code: connect.CodeUnauthenticated, msg: single},
		{name: "Basic", values: []string{"Basic xyz"}, code: connect.CodeUnauthenticated, msg: single, www: "Bearer"},
		{name: "scheme glued to token", values: []string{"Bearer" + tok}, code: connect.CodeUnauthenticated, msg: single},
		{name: "token without scheme", values: []string{tok}, code: connect.CodeUnauthenticated, msg: single},
		{name: "just over the size cap", values: []string{"Bearer " + strings.Repeat("a", 16<<10+1)}, code: connect.CodeUnauthenticated, msg: "malformed token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.impl.calls.Load()
			for _, protocol := range ctProtocols {
				for _, kind := range []string{"unary", "server"} {
					o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: tc.values, n: 1})
					if o.code != tc.code || o.msg != tc.msg {
						t.Errorf("%s, %s: got %v, want %v %q", protocol, kind, o, tc.code, tc.msg)
					}
					if tc.code == 0 && o.sub() != "user-123" {
						t.Errorf("%s, %s: handler saw subject %q, want user-123", protocol, kind, o.sub())
					}
					if tc.www != "" && !slices.Equal(o.www(), ctWant(tc.www)) {
						t.Errorf("%s, %s: WWW-Authenticate %q, want [%q]", protocol, kind, o.www(), tc.www)
					}
				}
			}
			ran := e.impl.calls.Load() - before
			if tc.code == 0 && ran != 6 {
				t.Errorf("handler ran %d times, want 6", ran)
			}
			if tc.code != 0 && ran != 0 {
				t.Errorf("handler ran %d times for a refused call", ran)
			}
		})
	}
}

// TestStatusMapping is TestInterceptorStatusMapping of the grpc-go
// interceptors, row for row: the code, the fixed message, the
// WWW-Authenticate value of every class of failure and whether the
// handler ran, here for the four kinds of call in the three protocols,
// with the Interceptor alone and behind its Middleware. None surfaces as
// Internal or Unknown or leaks the issuer's URL.
func TestStatusMapping(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	logs := &ctLogs{}
	v := ctVerifier(t, is)
	opts := []grpcjwt.Option{
		grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{ctService: {Scopes: []string{"write:orders"}}})),
		grpcjwt.WithLogger(slog.New(logs)),
	}

	// An issuer that cannot serve its keys, behind a lazy keyset: its keys
	// are never loaded.
	down := ctIssuer(t)
	down.SetFailure(grpcjwttest.Fail500)
	lazy, err := grpcjwt.NewRemoteKeyset(t.Context(), down.JWKSURL(), grpcjwt.WithLazyFetch(), grpcjwt.WithKeysetLogger(ctDiscard))
	if err != nil {
		t.Fatalf("NewRemoteKeyset(lazy): %v", err)
	}
	t.Cleanup(func() { lazy.Close() })
	vDown, err := grpcjwt.NewVerifier(lazy, grpcjwt.WithIssuer(down.URL()), grpcjwt.WithAudience(ctAudience))
	if err != nil {
		t.Fatal(err)
	}

	type env struct{ up, down *ctEnv }
	envs := map[string]env{
		"interceptor": {ctServe(t, v, false, opts...), ctServe(t, vDown, false, grpcjwt.WithLogger(ctDiscard))},
		"middleware":  {ctServe(t, v, true, grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{ctService: {Scopes: []string{"write:orders"}}})), grpcjwt.WithLogger(ctDiscard)), ctServe(t, vDown, true, grpcjwt.WithLogger(ctDiscard))},
	}

	now := time.Now()
	mint := func(edit func(map[string]any)) string { return ctMint(is, edit, ctAudience, "write:orders") }
	valid := mint(nil)
	stranger := grpcjwttest.NewKey("ES256") // never published by the issuer
	badSig := grpcjwttest.Sign(stranger, map[string]any{"kid": is.SigningKey().ID}, is.Claims(ctAudience, "write:orders"))
	unknownKey := grpcjwttest.Sign(stranger, nil, is.Claims(ctAudience, "write:orders"))
	hmac := grpcjwttest.Sign(is.SigningKey(), map[string]any{"alg": "HS256"}, is.Claims(ctAudience, "write:orders"))
	// valid's header and signature around another token's payload.
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(ctMint(is, func(m map[string]any) { m["sub"] = "admin" }, ctAudience, "write:orders"), ".")[1]
	tampered := parts[0] + "." + otherPayload + "." + parts[2]

	const invalid = `Bearer error="invalid_token", error_description="%s"`
	type row struct {
		name    string
		auth    []string // authorization values; nil: none
		code    connect.Code
		msg     string
		www     string // exact WWW-Authenticate value; "" means none
		onDown  bool   // call the server whose issuer is down
		preAuth bool   // the middleware refuses it before the body is read
	}
	rows := []row{
		{name: "valid", auth: []string{"Bearer " + valid}},
		{name: "missing token", code: connect.CodeUnauthenticated, msg: "missing bearer token", www: "Bearer", preAuth: true},
		{name: "bad scheme", auth: []string{"Basic dXNlcjpwYXNz"}, code: connect.CodeUnauthenticated, msg: "authorization must be a single bearer token", www: "Bearer", preAuth: true},
		{name: "two values", auth: []string{"Bearer " + valid, "Bearer " + valid}, code: connect.CodeUnauthenticated, msg: "authorization must be a single bearer token",
			www: `Bearer error="invalid_request", error_description="authorization must be a single bearer token"`, preAuth: true},
		{name: "malformed", auth: []string{"Bearer not-a-jwt"}, code: connect.CodeUnauthenticated, msg: "malformed token", www: fmt.Sprintf(invalid, "malformed token"), preAuth: true},
		{name: "JWE shape", auth: []string{"Bearer a.b.c.d.e"}, code: connect.CodeUnauthenticated, msg: "malformed token", www: fmt.Sprintf(invalid, "malformed token"), preAuth: true},
		{name: "oversized", auth: []string{"Bearer " + strings.Repeat("x", 64<<10)}, code: connect.CodeUnauthenticated, msg: "malformed token", www: fmt.Sprintf(invalid, "malformed token"), preAuth: true},
		{name: "bad signature", auth: []string{"Bearer " + badSig}, code: connect.CodeUnauthenticated, msg: "invalid token signature", www: fmt.Sprintf(invalid, "invalid token signature")},
		{name: "tampered payload", auth: []string{"Bearer " + tampered}, code: connect.CodeUnauthenticated, msg: "invalid token signature", www: fmt.Sprintf(invalid, "invalid token signature")},
		{name: "unknown key", auth: []string{"Bearer " + unknownKey}, code: connect.CodeUnauthenticated, msg: "token signed by an unknown key", www: fmt.Sprintf(invalid, "token signed by an unknown key")},
		{name: "HMAC algorithm", auth: []string{"Bearer " + hmac}, code: connect.CodeUnauthenticated, msg: "token signing algorithm not accepted", www: fmt.Sprintf(invalid, "token signing algorithm not accepted")},
		{name: "expired", auth: []string{"Bearer " + mint(func(m map[string]any) {
			m["exp"], m["iat"] = now.Add(-time.Hour).Unix(), now.Add(-2*time.Hour).Unix()
		})}, code: connect.CodeUnauthenticated, msg: "expired token", www: `Bearer error="invalid_token", error_description="expired token"`},
		{name: "not yet valid", auth: []string{"Bearer " + mint(func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() })},
			code: connect.CodeUnauthenticated, msg: "token not yet valid", www: fmt.Sprintf(invalid, "token not yet valid")},
		{name: "wrong issuer", auth: []string{"Bearer " + mint(func(m map[string]any) { m["iss"] = "https://other.example" })},
			code: connect.CodeUnauthenticated, msg: "token issuer not trusted", www: fmt.Sprintf(invalid, "token issuer not trusted")},
		{name: "wrong audience", auth: []string{"Bearer " + ctMint(is, nil, "api://billing", "write:orders")},
			code: connect.CodeUnauthenticated, msg: "token audience not accepted", www: fmt.Sprintf(invalid, "token audience not accepted")},
		{name: "no exp", auth: []string{"Bearer " + mint(func(m map[string]any) { delete(m, "exp") })},
			code: connect.CodeUnauthenticated, msg: "token lacks a required claim", www: fmt.Sprintf(invalid, "token lacks a required claim")},
		{name: "missing scope", auth: []string{"Bearer " + ctMint(is, nil, ctAudience, "read:orders")}, code: connect.CodePermissionDenied, msg: "token lacks a required scope",
			www: `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`},
		{name: "keys unavailable", auth: []string{"Bearer " + ctMint(down, nil, ctAudience)}, code: connect.CodeUnavailable, msg: "token signing keys unavailable", onDown: true},
	}
	leaks := []string{is.URL(), is.JWKSURL(), down.URL(), "127.0.0.1", "http"}
	for _, mode := range []string{"interceptor", "middleware"} {
		for _, r := range rows {
			t.Run(mode+"/"+r.name, func(t *testing.T) {
				e := envs[mode].up
				if r.onDown {
					e = envs[mode].down
				}
				before, readsBefore := e.impl.calls.Load(), e.impl.bodyReads.Load()
				ctEach(func(protocol, kind string) {
					name := protocol + ", " + kind
					o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: r.auth, n: 2})
					if o.code != r.code || o.msg != r.msg {
						t.Errorf("%s: got %v %q, want %v %q", name, o.code, o.msg, r.code, r.msg)
					}
					ctNeverInternal(t, name, o.code)
					if !slices.Equal(o.www(), ctWant(r.www)) {
						t.Errorf("%s: WWW-Authenticate %q, want %q", name, o.www(), ctWant(r.www))
					}
					for _, s := range leaks {
						if strings.Contains(o.msg, s) || strings.Contains(strings.Join(o.www(), " "), s) {
							t.Errorf("%s: message %q / WWW-Authenticate %q leaks %q", name, o.msg, o.www(), s)
						}
					}
				})
				want := int64(0)
				if r.code == 0 {
					want = int64(len(ctProtocols) * len(ctKinds))
				}
				if ran := e.impl.calls.Load() - before; ran != want {
					t.Errorf("handler ran %d times, want %d", ran, want)
				}
				if reads := e.impl.bodyReads.Load() - readsBefore; mode == "middleware" && r.preAuth && reads != 0 {
					t.Errorf("request bodies were read %d times; the middleware must refuse before", reads)
				}
			})
		}
	}

	// The logger gets the full cause, which the client never sees.
	recs := logs.find("grpcjwt: call refused", map[string]string{"method": ctUnary, "rule": ctService})
	var causes []string
	for _, r := range recs {
		causes = append(causes, r.attrs["error"])
	}
	for _, want := range []string{
		`grpcjwt: insufficient scope: scope is ["read:orders"], want all of ["write:orders"], lacking "write:orders"`,
		"grpcjwt: token expired: exp is ",
		`grpcjwt: token issuer not trusted: iss is "https://other.example", want one of ["` + is.URL() + `"]`,
		"grpcjwt: invalid token signature",
		"grpcjwt: missing bearer token",
		"grpcjwt: malformed token: authorization value of 65543 bytes exceeds the limit",
	} {
		if !slices.ContainsFunc(causes, func(c string) bool { return strings.HasPrefix(c, want) }) {
			t.Errorf("logged causes %q lack %q", causes, want)
		}
	}
	for _, p := range []string{ctOutStream, ctInStream, ctBidi} {
		if len(logs.find("grpcjwt: call refused", map[string]string{"method": p, "error": "grpcjwt: missing bearer token"})) == 0 {
			t.Errorf("no refusal logged for %s; logs:\n%s", p, logs)
		}
	}
}

// TestNoSecretsInStatus checks that neither the message nor any response
// metadata carries a value of the token or the issuer's URL, while the
// log names the values of a token whose signature verified.
func TestNoSecretsInStatus(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	logs := &ctLogs{}
	e := ctServe(t, ctVerifier(t, is), false, grpcjwt.WithLogger(slog.New(logs)))
	evil := func(m map[string]any) {
		m["iss"] = "https://evil.example/SIGNED-123"
		m["sub"] = "SIGNED-SUB"
	}
	tokens := map[string]string{
		"evil issuer, real key":            ctMint(is, evil, "SIGNED-AUD"),
		"evil audience, real key":          ctMint(is, func(m map[string]any) { m["sub"] = "SIGNED-SUB" }, "SIGNED-AUD"),
		"evil issuer, unknown key":         grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), nil, is.Claims("SECRET-AUD")),
		"evil claims, forged kid":          grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), map[string]any{"kid": is.SigningKey().ID}, map[string]any{"iss": "https://evil.example/SECRET-123", "aud": "SECRET-AUD", "exp": 1}),
		"evil claims, malformed claim set": grpcjwttest.Sign(is.SigningKey(), nil, []byte(`{"iss":"https://evil.example/SECRET-123","aud":"SECRET-AUD","exp":"SECRET-EXP"}`)),
	}
	secrets := []string{"SECRET", "SIGNED", "evil.example", is.URL(), is.JWKSURL()}
	for name, tok := range tokens {
		ctEach(func(protocol, kind string) {
			o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: ctBearer(tok), n: 1})
			if o.code != connect.CodeUnauthenticated {
				t.Errorf("%s, %s, %s: got %v, want Unauthenticated", name, protocol, kind, o)
			}
			for _, s := range secrets {
				if strings.Contains(o.msg, s) {
					t.Errorf("%s, %s, %s: message %q holds %q", name, protocol, kind, o.msg, s)
				}
				for k, vs := range o.meta {
					if strings.Contains(strings.Join(vs, " "), s) {
						t.Errorf("%s, %s, %s: metadata %s=%q holds %q", name, protocol, kind, k, vs, s)
					}
				}
			}
		})
	}
	if len(logs.find("grpcjwt: call refused", map[string]string{"check": "iss", "got": `"https://evil.example/SIGNED-123"`})) == 0 {
		t.Errorf("logger did not get the cause of the issuer refusal; logs:\n%s", logs)
	}
	if all := logs.String(); strings.Contains(all, "SECRET") {
		t.Errorf("logs hold values of a token whose signature failed:\n%s", all)
	}
}

// TestWWWAuthenticate checks the RFC 6750 challenge of a refused call in
// each protocol: what the client API shows (the error's metadata), and
// where it travelled on the wire: an HTTP header for the Connect
// protocol's unary calls (with the HTTP status of the code), in-body
// end-of-stream metadata for its streams, an HTTP header (a trailers-only
// response) for gRPC-Web, and an HTTP header for gRPC too, since net/http
// drops a WWW-Authenticate trailer. The Middleware's refusals travel the
// same way. Accepted calls get none.
func TestWWWAuthenticate(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	v := ctVerifier(t, is)
	policy := grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{
		ctUnary:     {Scopes: []string{"write:orders"}},
		ctOutStream: {Scopes: []string{"write:orders"}},
		ctInStream:  {Scopes: []string{"write:orders"}},
		ctBidi:      {Scopes: []string{"write:orders"}},
	}))
	envs := map[string]*ctEnv{"interceptor": ctServe(t, v, false, policy), "middleware": ctServe(t, v, true, policy)}
	where := map[string]string{ // protocol, unary or not: where the challenge travels
		"connect unary": "header", "connect stream": "body",
		"grpc unary": "header", "grpc stream": "header",
		"grpcweb unary": "header", "grpcweb stream": "header",
	}
	for _, tc := range []struct {
		name   string
		auth   []string
		want   string
		status int // the HTTP status of a Connect unary refusal
	}{
		{"no token", nil, "Bearer", http.StatusUnauthorized},
		{"expired", ctBearer(ctExpired(is, ctAudience, "write:orders")), `Bearer error="invalid_token", error_description="expired token"`, http.StatusUnauthorized},
		{"missing scope", ctBearer(ctMint(is, nil, ctAudience, "read:orders")),
			`Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`, http.StatusForbidden},
		{"valid", ctBearer(ctMint(is, nil, ctAudience, "write:orders")), "", http.StatusOK},
	} {
		for mode, e := range envs {
			ctEach(func(protocol, kind string) {
				name := fmt.Sprintf("%s, %s, %s, %s", tc.name, mode, protocol, kind)
				o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: tc.auth, n: 1})
				if !slices.Equal(o.www(), ctWant(tc.want)) {
					t.Errorf("%s: WWW-Authenticate %q, want %q", name, o.www(), ctWant(tc.want))
				}
				shape := protocol + " stream"
				if kind == "unary" {
					shape = protocol + " unary"
				}
				want := where[shape]
				if tc.want == "" {
					want = "none"
				}
				if got := o.where(); got != want {
					t.Errorf("%s: WWW-Authenticate travelled in the %s, want the %s (header %q, trailer %q)", name, got, want, o.rawHeader, o.rawTrailer)
				}
				if shape == "connect unary" && o.rawStatus != tc.status {
					t.Errorf("%s: HTTP status %d, want %d", name, o.rawStatus, tc.status)
				}
			})
		}
	}
}

// TestRefusalUnwrapsOnServer checks that the error a refusal makes
// unwraps, on the server, to the *grpcjwt.Refusal and grpcjwt's sentinel,
// for an interceptor further out, while the client gets only the fixed
// message.
func TestRefusalUnwrapsOnServer(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	auth := connectjwt.NewInterceptor(ctVerifier(t, is), grpcjwt.WithLogger(ctDiscard))
	var mu sync.Mutex
	var seen []error
	outer := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			res, err := next(ctx, req)
			mu.Lock()
			seen = append(seen, err)
			mu.Unlock()
			return res, err
		}
	})
	impl := &ctServer{}
	e := ctServeHandler(t, impl, impl.mux(connect.WithInterceptors(outer, auth)))
	for _, protocol := range ctProtocols {
		o := e.call(t.Context(), ctCall{protocol: protocol, kind: "unary", auth: ctBearer(ctExpired(is, ctAudience))})
		if o.code != connect.CodeUnauthenticated || o.msg != "expired token" || o.err.Error() != "unauthenticated: expired token" {
			t.Errorf("%s: client got %v (%q), want exactly unauthenticated: expired token", protocol, o, o.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(ctProtocols) {
		t.Fatalf("outer interceptor saw %d calls, want %d", len(seen), len(ctProtocols))
	}
	for _, err := range seen {
		var r *grpcjwt.Refusal
		if !errors.As(err, &r) || !errors.Is(err, grpcjwt.ErrExpired) {
			t.Errorf("outer interceptor got %v: want a connect error wrapping a *grpcjwt.Refusal and ErrExpired", err)
			continue
		}
		if !strings.HasPrefix(r.Err.Error(), "grpcjwt: token expired: exp is ") {
			t.Errorf("the refusal's cause is %q, want the check's detail", r.Err)
		}
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("outer interceptor got code %v", connect.CodeOf(err))
		}
	}
}

// TestInterceptorOnClient checks that the Interceptor passes a client's
// calls through untouched.
func TestInterceptorOnClient(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	auth := connectjwt.NewInterceptor(ctVerifier(t, is))
	impl := &ctServer{}
	e := ctServeHandler(t, impl, impl.mux())
	for _, protocol := range ctProtocols {
		c := connect.NewClient[testpb.SimpleRequest, testpb.SimpleResponse](e.client, e.srv.URL+ctUnary,
			ctProtocolOption(protocol), connect.WithInterceptors(auth))
		if _, err := c.CallUnary(t.Context(), connect.NewRequest(&testpb.SimpleRequest{})); err != nil {
			t.Errorf("%s unary: %v", protocol, err)
		}
		s := connect.NewClient[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse](e.client, e.srv.URL+ctOutStream,
			ctProtocolOption(protocol), connect.WithInterceptors(auth))
		st, err := s.CallServerStream(t.Context(), connect.NewRequest(&testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{}}}))
		if err != nil {
			t.Fatalf("%s stream: %v", protocol, err)
		}
		for st.Receive() {
		}
		if err := st.Err(); err != nil {
			t.Errorf("%s stream: %v", protocol, err)
		}
		st.Close()
	}
}

// TestDecisionHook checks that the decision hook of grpcjwt reports every
// decision of the Interceptor (procedure, rule, outcome, reason, claims,
// cache hit), and none of the Middleware's refusals.
func TestDecisionHook(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	var mu sync.Mutex
	var got []grpcjwt.Decision
	hook := grpcjwt.WithDecisionHook(func(_ context.Context, d grpcjwt.Decision) {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
	})
	e := ctServe(t, ctVerifier(t, is), true, hook, grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{
		ctEmpty:   {Public: true},
		ctService: {Scopes: []string{"write:orders"}},
	})))
	take := func() []grpcjwt.Decision {
		mu.Lock()
		defer mu.Unlock()
		d := got
		got = nil
		return d
	}
	good := ctMint(is, nil, ctAudience, "write:orders")
	for _, protocol := range ctProtocols {
		for _, kind := range ctKinds {
			procedure := map[string]string{"unary": ctUnary, "server": ctOutStream, "client": ctInStream, "bidi": ctBidi}[kind]
			// Twice, so that the second finds the token in the cache.
			for i := range 2 {
				if o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: ctBearer(good), n: 1}); o.err != nil {
					t.Fatalf("%s, %s: %v", protocol, kind, o.err)
				}
				ds := take()
				if len(ds) != 1 {
					t.Fatalf("%s, %s: %d decisions, want 1", protocol, kind, len(ds))
				}
				d := ds[0]
				if d.Method != procedure || d.Rule != ctService || !d.Allowed || d.Code != 0 || d.Reason != nil ||
					d.Claims == nil || d.Claims.Subject != "user-123" {
					t.Errorf("%s, %s: decision %+v", protocol, kind, d)
				}
				if d.CacheHit != (i == 1 || protocol != ctProtocols[0] || kind != ctKinds[0]) {
					t.Errorf("%s, %s, call %d: CacheHit %v", protocol, kind, i, d.CacheHit)
				}
			}
			o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: ctBearer(ctExpired(is, ctAudience, "write:orders")), n: 1})
			if o.code != connect.CodeUnauthenticated {
				t.Fatalf("%s, %s, expired: %v", protocol, kind, o)
			}
			ds := take()
			if len(ds) != 1 || ds[0].Allowed || ds[0].Code != codes.Unauthenticated || !errors.Is(ds[0].Reason, grpcjwt.ErrExpired) || ds[0].Claims != nil {
				t.Errorf("%s, %s, expired: decisions %+v", protocol, kind, ds)
			}
			// The middleware refuses a call without a token: no decision.
			if o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, n: 1}); o.code != connect.CodeUnauthenticated {
				t.Fatalf("%s, %s, no token: %v", protocol, kind, o)
			}
			if ds := take(); len(ds) != 0 {
				t.Errorf("%s, %s: the middleware's refusal was reported: %+v", protocol, kind, ds)
			}
		}
		// A public method without a token: allowed, no claims.
		c := connect.NewClient[testpb.Empty, testpb.Empty](e.client, e.srv.URL+ctEmpty, ctProtocolOption(protocol))
		if _, err := c.CallUnary(t.Context(), connect.NewRequest(&testpb.Empty{})); err != nil {
			t.Fatalf("%s public: %v", protocol, err)
		}
		if ds := take(); len(ds) != 1 || !ds[0].Allowed || !ds[0].Public || ds[0].Rule != ctEmpty || ds[0].Claims != nil {
			t.Errorf("%s public: decisions %+v", protocol, ds)
		}
	}
}

// TestConcurrent runs 60 clients at once, 20 per protocol, each making
// unary and streaming calls with its own valid token and with invalid
// ones, and checks every outcome (run it with -race).
func TestConcurrent(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	e := ctServe(t, ctVerifier(t, is), true, grpcjwt.WithLogger(ctDiscard), grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{
		ctEmpty: {Public: true},
		ctUnary: {Scopes: []string{"write:orders"}},
	})))
	const clients = 60
	invalid := []struct {
		tok  string
		code connect.Code
		msg  string
	}{
		{ctExpired(is, ctAudience, "write:orders"), connect.CodeUnauthenticated, "expired token"},
		{ctMint(is, nil, "api://billing", "write:orders"), connect.CodeUnauthenticated, "token audience not accepted"},
		{grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), map[string]any{"kid": is.SigningKey().ID}, is.Claims(ctAudience, "write:orders")),
			connect.CodeUnauthenticated, "invalid token signature"},
		{"garbage", connect.CodeUnauthenticated, "malformed token"},
		{ctMint(is, nil, ctAudience), connect.CodePermissionDenied, "token lacks a required scope"},
	}
	tokens := make([]string, clients)
	for i := range tokens {
		tokens[i] = ctMint(is, func(m map[string]any) { m["sub"] = fmt.Sprintf("user-%d", i) }, ctAudience, "write:orders")
	}
	var wg sync.WaitGroup
	var failures atomic.Int64
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			<-start
			protocol := ctProtocols[i%len(ctProtocols)]
			sub := fmt.Sprintf("user-%d", i)
			bad := invalid[i%len(invalid)]
			fail := func(format string, args ...any) {
				failures.Add(1)
				t.Errorf("client %d (%s): "+format, append([]any{i, protocol}, args...)...)
			}
			for _, kind := range ctKinds {
				o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: ctBearer(tokens[i]), n: 2})
				if o.err != nil || o.sub() != sub {
					fail("%s: got %v, subject %q", kind, o, o.sub())
				}
				o = e.call(t.Context(), ctCall{protocol: protocol, kind: kind, auth: ctBearer(bad.tok), n: 2})
				wantCode, wantMsg := bad.code, bad.msg
				if bad.code == connect.CodePermissionDenied && kind != "unary" {
					wantCode, wantMsg = 0, "" // the scope rule is on UnaryCall only
				}
				if o.code != wantCode || o.msg != wantMsg {
					fail("%s, bad token: got %v, want %v %q", kind, o, wantCode, wantMsg)
				}
			}
			// Public method: a bad token is ignored, a good one is seen.
			c := connect.NewClient[testpb.Empty, testpb.Empty](e.client, e.srv.URL+ctEmpty, ctProtocolOption(protocol))
			for tok, want := range map[string]string{tokens[i]: sub, bad.tok: map[bool]string{true: "user-123", false: ctNoClaims}[bad.code == connect.CodePermissionDenied]} {
				req := connect.NewRequest(&testpb.Empty{})
				req.Header().Set("Authorization", "Bearer "+tok)
				res, err := c.CallUnary(t.Context(), req)
				if err != nil {
					fail("public: %v", err)
				} else if got := res.Header().Get("x-sub"); got != want {
					fail("public: subject %q, want %q", got, want)
				}
			}
		})
	}
	close(start)
	wg.Wait()
}
