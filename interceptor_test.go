package grpcjwt_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// The tests in this file run every call through a real grpc.Server on an
// in-memory bufconn listener (grpcjwttest.Serve), against a real JWKS served
// by httptest (grpcjwttest.NewIssuer). Helpers carry an "it" prefix so that
// they do not collide with other test files of package grpcjwt_test.

const (
	itAudience      = "api://orders"
	itAdminAudience = "api://admin"

	itEmpty     = testpb.TestService_EmptyCall_FullMethodName
	itUnary     = testpb.TestService_UnaryCall_FullMethodName
	itOutStream = testpb.TestService_StreamingOutputCall_FullMethodName
	itService   = "/grpc.testing.TestService/*"
	itHealth    = "/grpc.health.v1.Health/Check"

	// itNoClaims is what the handlers report when their context holds no
	// claims.
	itNoClaims = "-"
)

// itServer is a TestService whose handlers report what ClaimsFromContext
// finds, in header metadata ("x-sub", "x-scope", "x-aud"; x-sub is "-"
// without claims) and in their responses (the subject). A request whose
// payload body is "panic" makes the handler panic.
type itServer struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64 // handler invocations
}

func itReport(ctx context.Context) metadata.MD {
	c, ok := grpcjwt.ClaimsFromContext(ctx)
	if !ok {
		return metadata.Pairs("x-sub", itNoClaims)
	}
	return metadata.Pairs("x-sub", c.Subject, "x-scope", strings.Join(c.Scopes, " "), "x-aud", strings.Join(c.Audience, " "))
}

func itSubject(ctx context.Context) string {
	if c, ok := grpcjwt.ClaimsFromContext(ctx); ok {
		return c.Subject
	}
	return itNoClaims
}

func itPayload(s string) *testpb.Payload { return &testpb.Payload{Body: []byte(s)} }

func (s *itServer) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.calls.Add(1)
	if err := grpc.SetHeader(ctx, itReport(ctx)); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

func (s *itServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	if string(req.GetPayload().GetBody()) == "panic" {
		panic("itServer: handler bug")
	}
	if err := grpc.SetHeader(ctx, itReport(ctx)); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{Username: itSubject(ctx)}, nil
}

// StreamingOutputCall sends one message per response parameter, or, with
// none, one every 20 ms until the stream's context ends (or, if the payload
// body is "ignore-ctx", until sending fails).
func (s *itServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	s.calls.Add(1)
	if string(req.GetPayload().GetBody()) == "panic" {
		panic("itServer: handler bug")
	}
	ctx := st.Context()
	if err := st.SetHeader(itReport(ctx)); err != nil {
		return err
	}
	resp := &testpb.StreamingOutputCallResponse{Payload: itPayload(itSubject(ctx))}
	if string(req.GetPayload().GetBody()) == "ignore-ctx" {
		for {
			if err := st.Send(resp); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(req.GetResponseParameters()) == 0 {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := st.Send(resp); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
	}
	for range req.GetResponseParameters() {
		if err := st.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// StreamingInputCall counts the messages received.
func (s *itServer) StreamingInputCall(st testpb.TestService_StreamingInputCallServer) error {
	s.calls.Add(1)
	if err := st.SetHeader(itReport(st.Context())); err != nil {
		return err
	}
	n := 0
	for {
		_, err := st.Recv()
		if err == io.EOF {
			return st.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(n)})
		}
		if err != nil {
			return err
		}
		n++
	}
}

// FullDuplexCall answers each message with the subject.
func (s *itServer) FullDuplexCall(st testpb.TestService_FullDuplexCallServer) error {
	s.calls.Add(1)
	ctx := st.Context()
	if err := st.SetHeader(itReport(ctx)); err != nil {
		return err
	}
	for {
		_, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: itPayload(itSubject(ctx))}); err != nil {
			return err
		}
	}
}

// itLogs is a slog.Handler that keeps every record.
type itLogs struct {
	mu   sync.Mutex
	recs []itRecord
}

type itRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *itLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *itLogs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *itLogs) WithGroup(string) slog.Handler            { return l }
func (l *itLogs) Handle(_ context.Context, r slog.Record) error {
	rec := itRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

func (l *itLogs) records() []itRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// find returns the records with message msg whose attributes include want.
func (l *itLogs) find(msg string, want map[string]string) []itRecord {
	var out []itRecord
	for _, r := range l.records() {
		if r.msg != msg {
			continue
		}
		ok := true
		for k, v := range want {
			if r.attrs[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func (l *itLogs) String() string {
	var b strings.Builder
	for _, r := range l.records() {
		fmt.Fprintf(&b, "%v %q %v\n", r.level, r.msg, r.attrs)
	}
	return b.String()
}

var itDiscard = slog.New(slog.DiscardHandler)

// itIssuer starts a test issuer, closed when the test ends.
func itIssuer(t *testing.T) *grpcjwttest.Issuer {
	t.Helper()
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	return is
}

// itVerifier returns a verifier over a remote keyset fetched from is, for
// is's issuer and itAudience unless opts say otherwise.
func itVerifier(t *testing.T, is *grpcjwttest.Issuer, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	t.Helper()
	ks, err := grpcjwt.NewRemoteKeyset(t.Context(), is.JWKSURL(), grpcjwt.WithKeysetLogger(itDiscard))
	if err != nil {
		t.Fatalf("NewRemoteKeyset: %v", err)
	}
	t.Cleanup(func() { ks.Close() })
	opts = append([]grpcjwt.VerifierOption{grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(itAudience)}, opts...)
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// itServe serves a TestService and the health service on a grpc.Server
// built with opts and returns a client of each.
func itServe(t *testing.T, opts ...grpc.ServerOption) (testpb.TestServiceClient, healthpb.HealthClient, *itServer) {
	t.Helper()
	srv := grpc.NewServer(opts...)
	ts := &itServer{}
	testpb.RegisterTestServiceServer(srv, ts)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	cc := grpcjwttest.Serve(t, srv)
	return testpb.NewTestServiceClient(cc), healthpb.NewHealthClient(cc), ts
}

// itProtect serves with grpcjwt's unary and stream interceptors.
func itProtect(t *testing.T, v *grpcjwt.Verifier, opts ...grpcjwt.Option) (testpb.TestServiceClient, healthpb.HealthClient, *itServer) {
	t.Helper()
	return itServe(t,
		grpc.UnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, opts...)),
		grpc.StreamInterceptor(grpcjwt.StreamServerInterceptor(v, opts...)))
}

func itPolicy(t *testing.T, rules map[string]grpcjwt.Rule) *grpcjwt.Policy {
	t.Helper()
	p, err := grpcjwt.NewPolicy(rules)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

// itMint signs is's typical claims for aud and scopes, changed by edit.
func itMint(is *grpcjwttest.Issuer, edit func(map[string]any), aud string, scopes ...string) string {
	c := is.Claims(aud, scopes...)
	if edit != nil {
		edit(c)
	}
	return is.Mint(c)
}

// itAuth returns ctx carrying the given authorization values (none: no
// authorization metadata at all).
func itAuth(ctx context.Context, values ...string) context.Context {
	if len(values) == 0 {
		return ctx
	}
	kv := make([]string, 0, 2*len(values))
	for _, v := range values {
		kv = append(kv, "authorization", v)
	}
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(kv...))
}

func itBearer(ctx context.Context, token string) context.Context {
	return itAuth(ctx, "Bearer "+token)
}

// itOutcome is what a client saw of one call.
type itOutcome struct {
	code            codes.Code
	msg             string
	header, trailer metadata.MD
	subs            []string // subject in each response
}

func (o itOutcome) sub() string   { return strings.Join(o.header.Get("x-sub"), ",") }
func (o itOutcome) www() []string { return o.trailer.Get("www-authenticate") }

func itStatus(err error) (codes.Code, string) {
	s := status.Convert(err)
	return s.Code(), s.Message()
}

func itCallUnary(ctx context.Context, c testpb.TestServiceClient) itOutcome {
	var o itOutcome
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&o.header), grpc.Trailer(&o.trailer))
	o.code, o.msg = itStatus(err)
	if err == nil {
		o.subs = []string{resp.GetUsername()}
	}
	return o
}

// itCallOut makes a server-streaming call asking for n messages.
func itCallOut(ctx context.Context, c testpb.TestServiceClient, n int) itOutcome {
	var o itOutcome
	req := &testpb.StreamingOutputCallRequest{}
	for range n {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{})
	}
	st, err := c.StreamingOutputCall(ctx, req)
	if err != nil {
		o.code, o.msg = itStatus(err)
		return o
	}
	itDrain(st.Recv, &o)
	o.header, _ = st.Header()
	o.trailer = st.Trailer()
	return o
}

// itDrain records in o the subject of every message recv returns until the
// stream ends, and the status it ended with, if not OK.
func itDrain(recv func() (*testpb.StreamingOutputCallResponse, error), o *itOutcome) {
	for {
		m, err := recv()
		if err != nil {
			if err != io.EOF {
				o.code, o.msg = itStatus(err)
			}
			return
		}
		o.subs = append(o.subs, string(m.GetPayload().GetBody()))
	}
}

// itCallIn makes a client-streaming call sending n messages.
func itCallIn(ctx context.Context, c testpb.TestServiceClient, n int) (itOutcome, int32) {
	var o itOutcome
	st, err := c.StreamingInputCall(ctx)
	if err != nil {
		o.code, o.msg = itStatus(err)
		return o, 0
	}
	for range n {
		if err := st.Send(&testpb.StreamingInputCallRequest{}); err != nil {
			break // the status comes from CloseAndRecv
		}
	}
	resp, err := st.CloseAndRecv()
	o.code, o.msg = itStatus(err)
	o.header, _ = st.Header()
	o.trailer = st.Trailer()
	return o, resp.GetAggregatedPayloadSize()
}

// itCallBidi makes a bidi call sending n messages and reading the answers.
func itCallBidi(ctx context.Context, c testpb.TestServiceClient, n int) itOutcome {
	var o itOutcome
	st, err := c.FullDuplexCall(ctx)
	if err != nil {
		o.code, o.msg = itStatus(err)
		return o
	}
	for range n {
		if err := st.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
			break
		}
	}
	st.CloseSend()
	itDrain(st.Recv, &o)
	o.header, _ = st.Header()
	o.trailer = st.Trailer()
	return o
}

// itNeverInternal fails the test if code is one that a rejection must never
// have.
func itNeverInternal(t *testing.T, what string, code codes.Code) {
	t.Helper()
	if code == codes.Internal || code == codes.Unknown {
		t.Errorf("%s: code %v; a rejection must never surface as Internal or Unknown", what, code)
	}
}

// TestInterceptorClaimsReachHandlers checks that every kind of call (unary,
// server-, client- and bidi streaming) gets the verified claims in its
// handler's context, and that without a token no handler runs.
func TestInterceptorClaimsReachHandlers(t *testing.T) {
	is := itIssuer(t)
	c, _, ts := itProtect(t, itVerifier(t, is))
	tok := itMint(is, nil, itAudience, "read:orders", "write:orders")
	ctx := itBearer(t.Context(), tok)

	checkHeader := func(name string, o itOutcome) {
		t.Helper()
		if o.code != codes.OK {
			t.Fatalf("%s: got %v %q, want OK", name, o.code, o.msg)
		}
		if got := o.sub(); got != "user-123" {
			t.Errorf("%s: handler saw subject %q, want user-123", name, got)
		}
		if got := strings.Join(o.header.Get("x-scope"), ","); got != "read:orders write:orders" {
			t.Errorf("%s: handler saw scopes %q, want %q", name, got, "read:orders write:orders")
		}
		if got := strings.Join(o.header.Get("x-aud"), ","); got != itAudience {
			t.Errorf("%s: handler saw audience %q, want %q", name, got, itAudience)
		}
		if len(o.www()) != 0 {
			t.Errorf("%s: accepted call has www-authenticate %q", name, o.www())
		}
	}

	o := itCallUnary(ctx, c)
	checkHeader("unary", o)
	if !slices.Equal(o.subs, []string{"user-123"}) {
		t.Errorf("unary: response subjects %q, want [user-123]", o.subs)
	}

	o = itCallOut(ctx, c, 3)
	checkHeader("server stream", o)
	if !slices.Equal(o.subs, []string{"user-123", "user-123", "user-123"}) {
		t.Errorf("server stream: response subjects %q, want 3 x user-123", o.subs)
	}

	o, n := itCallIn(ctx, c, 4)
	checkHeader("client stream", o)
	if n != 4 {
		t.Errorf("client stream: handler received %d messages, want 4", n)
	}

	o = itCallBidi(ctx, c, 2)
	checkHeader("bidi stream", o)
	if !slices.Equal(o.subs, []string{"user-123", "user-123"}) {
		t.Errorf("bidi stream: response subjects %q, want 2 x user-123", o.subs)
	}

	if got := ts.calls.Load(); got != 4 {
		t.Errorf("handler calls = %d, want 4", got)
	}

	// The same four kinds without a token: rejected before the handler.
	noTok := t.Context()
	outcomes := map[string]itOutcome{
		"unary":         itCallUnary(noTok, c),
		"server stream": itCallOut(noTok, c, 3),
		"bidi stream":   itCallBidi(noTok, c, 2),
	}
	outcomes["client stream"], _ = itCallIn(noTok, c, 2)
	for name, o := range outcomes {
		if o.code != codes.Unauthenticated || o.msg != "missing bearer token" {
			t.Errorf("%s without token: got %v %q, want Unauthenticated %q", name, o.code, o.msg, "missing bearer token")
		}
		if len(o.subs) != 0 {
			t.Errorf("%s without token: got responses %q", name, o.subs)
		}
	}
	if got := ts.calls.Load(); got != 4 {
		t.Errorf("handler calls = %d after rejected calls, want still 4", got)
	}
}

// TestInterceptorTokenExtraction checks the parsing of the authorization
// metadata: scheme in any case, one value only, surrounding space, empty
// and oversized tokens, other schemes.
func TestInterceptorTokenExtraction(t *testing.T) {
	is := itIssuer(t)
	c, _, ts := itProtect(t, itVerifier(t, is))
	tok := itMint(is, nil, itAudience)
	other := itMint(is, func(m map[string]any) { m["sub"] = "user-other" }, itAudience)
	expired := itMint(is, func(m map[string]any) {
		m["exp"] = time.Now().Add(-time.Hour).Unix()
		m["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	}, itAudience)
	const single = "authorization must be a single bearer token"

	for _, tc := range []struct {
		name    string
		values  []string
		code    codes.Code
		msg     string
		www     string // expected www-authenticate, if not ""
		wantSub string
		unary   bool // unary only: the stream case is in TestInterceptorStatusMapping
	}{
		{name: "Bearer", values: []string{"Bearer " + tok}, code: codes.OK, wantSub: "user-123"},
		{name: "bearer", values: []string{"bearer " + tok}, code: codes.OK, wantSub: "user-123"},
		{name: "BEARER", values: []string{"BEARER " + tok}, code: codes.OK, wantSub: "user-123"},
		{name: "bEaReR", values: []string{"bEaReR " + tok}, code: codes.OK, wantSub: "user-123"},
		{name: "surrounding space", values: []string{"  Bearer " + tok + "  "}, code: codes.OK, wantSub: "user-123"},
		{name: "several spaces after scheme", values: []string{"Bearer    " + tok}, code: codes.OK, wantSub: "user-123"},
		{name: "two valid values", values: []string{"Bearer " + tok, "Bearer " + other}, code: codes.Unauthenticated, msg: single,
			www: `Bearer error="invalid_request", error_description="authorization must be a single bearer token"`},
		{name: "valid then invalid", values: []string{"Bearer " + tok, "Bearer " + expired}, code: codes.Unauthenticated, msg: single},
		{name: "invalid then valid", values: []string{"Bearer " + expired, "Bearer " + tok}, code: codes.Unauthenticated, msg: single},
		{name: "valid then other scheme", values: []string{"Bearer " + tok, "Basic xyz"}, code: codes.Unauthenticated, msg: single},
		{name: "empty token", values: []string{"Bearer "}, code: codes.Unauthenticated, msg: single},
		{name: "scheme only", values: []string{"Bearer"}, code: codes.Unauthenticated, msg: single},
		{name: "empty value", values: []string{""}, code: codes.Unauthenticated, msg: single},
		// RFC 6750 §3.1: another scheme is like no credentials: no error code.
		{name: "Basic", values: []string{"Basic xyz"}, code: codes.Unauthenticated, msg: single, www: "Bearer"},
		{name: "scheme glued to token", values: []string{"Bearer" + tok}, code: codes.Unauthenticated, msg: single},
		{name: "token without scheme", values: []string{tok}, code: codes.Unauthenticated, msg: single},
		{name: "just over the size cap", values: []string{"Bearer " + strings.Repeat("a", 16<<10+1)}, code: codes.Unauthenticated, msg: "malformed token"},
		// 1 MiB fits under grpc-go's default 16 MiB header list limit; it is
		// refused on its length alone. (Slow under -race: unary only.)
		{name: "1 MiB value", values: []string{"Bearer " + strings.Repeat("a", 1<<20)}, code: codes.Unauthenticated, msg: "malformed token", unary: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.calls.Load()
			kinds := []string{"unary", "stream"}
			if tc.unary {
				kinds = kinds[:1]
			}
			for _, kind := range kinds {
				ctx := itAuth(t.Context(), tc.values...)
				var o itOutcome
				if kind == "unary" {
					o = itCallUnary(ctx, c)
				} else {
					o = itCallOut(ctx, c, 1)
				}
				if o.code != tc.code || (tc.code != codes.OK && o.msg != tc.msg) {
					t.Errorf("%s: got %v %q, want %v %q", kind, o.code, o.msg, tc.code, tc.msg)
				}
				if tc.wantSub != "" && o.sub() != tc.wantSub {
					t.Errorf("%s: handler saw subject %q, want %q", kind, o.sub(), tc.wantSub)
				}
				if tc.www != "" && !slices.Equal(o.www(), []string{tc.www}) {
					t.Errorf("%s: www-authenticate %q, want [%q]", kind, o.www(), tc.www)
				}
			}
			ran := ts.calls.Load() - before
			if tc.code == codes.OK && ran != int64(len(kinds)) {
				t.Errorf("handler ran %d times, want %d", ran, len(kinds))
			}
			if tc.code != codes.OK && ran != 0 {
				t.Errorf("handler ran %d times for a rejected call", ran)
			}
		})
	}
}

// TestInterceptorStatusMapping checks the gRPC code, the fixed message and
// the www-authenticate value of every class of failure, for unary and
// streaming calls, and that none surfaces as Internal or Unknown or leaks
// the issuer's URL.
func TestInterceptorStatusMapping(t *testing.T) {
	is := itIssuer(t)
	logs := &itLogs{}
	c, _, ts := itProtect(t, itVerifier(t, is),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itService: {Scopes: []string{"write:orders"}}})),
		grpcjwt.WithLogger(slog.New(logs)))

	// An issuer that cannot serve its keys, behind a lazy keyset: its keys
	// are never loaded.
	down := itIssuer(t)
	down.SetFailure(grpcjwttest.Fail500)
	lazy, err := grpcjwt.NewRemoteKeyset(t.Context(), down.JWKSURL(), grpcjwt.WithLazyFetch(), grpcjwt.WithKeysetLogger(itDiscard))
	if err != nil {
		t.Fatalf("NewRemoteKeyset(lazy): %v", err)
	}
	t.Cleanup(func() { lazy.Close() })
	vDown, err := grpcjwt.NewVerifier(lazy, grpcjwt.WithIssuer(down.URL()), grpcjwt.WithAudience(itAudience))
	if err != nil {
		t.Fatal(err)
	}
	cDown, _, tsDown := itProtect(t, vDown)

	now := time.Now()
	mint := func(edit func(map[string]any)) string { return itMint(is, edit, itAudience, "write:orders") }
	valid := mint(nil)
	stranger := grpcjwttest.NewKey("ES256") // never published by the issuer
	badSig := grpcjwttest.Sign(stranger, map[string]any{"kid": is.SigningKey().ID}, is.Claims(itAudience, "write:orders"))
	unknownKey := grpcjwttest.Sign(stranger, nil, is.Claims(itAudience, "write:orders"))
	hmac := grpcjwttest.Sign(is.SigningKey(), map[string]any{"alg": "HS256"}, is.Claims(itAudience, "write:orders"))
	// valid's header and signature around another token's payload.
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(itMint(is, func(m map[string]any) { m["sub"] = "admin" }, itAudience, "write:orders"), ".")[1]
	tampered := parts[0] + "." + otherPayload + "." + parts[2]

	const invalid = `Bearer error="invalid_token", error_description="%s"`
	type row struct {
		name   string
		auth   []string // authorization values; nil: none
		code   codes.Code
		msg    string
		www    string // exact www-authenticate value; "" means none
		onDown bool   // call the server whose issuer is down
	}
	rows := []row{
		{name: "valid", auth: []string{"Bearer " + valid}, code: codes.OK},
		{name: "missing token", code: codes.Unauthenticated, msg: "missing bearer token", www: "Bearer"},
		{name: "bad scheme", auth: []string{"Basic dXNlcjpwYXNz"}, code: codes.Unauthenticated, msg: "authorization must be a single bearer token", www: "Bearer"},
		{name: "two values", auth: []string{"Bearer " + valid, "Bearer " + valid}, code: codes.Unauthenticated, msg: "authorization must be a single bearer token",
			www: `Bearer error="invalid_request", error_description="authorization must be a single bearer token"`},
		{name: "malformed", auth: []string{"Bearer not-a-jwt"}, code: codes.Unauthenticated, msg: "malformed token", www: fmt.Sprintf(invalid, "malformed token")},
		{name: "JWE shape", auth: []string{"Bearer a.b.c.d.e"}, code: codes.Unauthenticated, msg: "malformed token", www: fmt.Sprintf(invalid, "malformed token")},
		{name: "oversized", auth: []string{"Bearer " + strings.Repeat("x", 64<<10)}, code: codes.Unauthenticated, msg: "malformed token", www: fmt.Sprintf(invalid, "malformed token")},
		{name: "bad signature", auth: []string{"Bearer " + badSig}, code: codes.Unauthenticated, msg: "invalid token signature", www: fmt.Sprintf(invalid, "invalid token signature")},
		{name: "tampered payload", auth: []string{"Bearer " + tampered}, code: codes.Unauthenticated, msg: "invalid token signature", www: fmt.Sprintf(invalid, "invalid token signature")},
		{name: "unknown key", auth: []string{"Bearer " + unknownKey}, code: codes.Unauthenticated, msg: "token signed by an unknown key", www: fmt.Sprintf(invalid, "token signed by an unknown key")},
		{name: "HMAC algorithm", auth: []string{"Bearer " + hmac}, code: codes.Unauthenticated, msg: "token signing algorithm not accepted", www: fmt.Sprintf(invalid, "token signing algorithm not accepted")},
		{name: "expired", auth: []string{"Bearer " + mint(func(m map[string]any) {
			m["exp"], m["iat"] = now.Add(-time.Hour).Unix(), now.Add(-2*time.Hour).Unix()
		})}, code: codes.Unauthenticated, msg: "expired token", www: `Bearer error="invalid_token", error_description="expired token"`},
		{name: "not yet valid", auth: []string{"Bearer " + mint(func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() })},
			code: codes.Unauthenticated, msg: "token not yet valid", www: fmt.Sprintf(invalid, "token not yet valid")},
		{name: "wrong issuer", auth: []string{"Bearer " + mint(func(m map[string]any) { m["iss"] = "https://other.example" })},
			code: codes.Unauthenticated, msg: "token issuer not trusted", www: fmt.Sprintf(invalid, "token issuer not trusted")},
		{name: "wrong audience", auth: []string{"Bearer " + itMint(is, nil, "api://billing", "write:orders")},
			code: codes.Unauthenticated, msg: "token audience not accepted", www: fmt.Sprintf(invalid, "token audience not accepted")},
		{name: "no exp", auth: []string{"Bearer " + mint(func(m map[string]any) { delete(m, "exp") })},
			code: codes.Unauthenticated, msg: "token lacks a required claim", www: fmt.Sprintf(invalid, "token lacks a required claim")},
		{name: "missing scope", auth: []string{"Bearer " + itMint(is, nil, itAudience, "read:orders")}, code: codes.PermissionDenied, msg: "token lacks a required scope",
			www: `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`},
		{name: "keys unavailable", auth: []string{"Bearer " + itMint(down, nil, itAudience)}, code: codes.Unavailable, msg: "token signing keys unavailable", onDown: true},
	}
	leaks := []string{is.URL(), is.JWKSURL(), down.URL(), "127.0.0.1", "http"}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			client, server := c, ts
			if r.onDown {
				client, server = cDown, tsDown
			}
			before := server.calls.Load()
			for _, kind := range []string{"unary", "stream"} {
				ctx := itAuth(t.Context(), r.auth...)
				var o itOutcome
				if kind == "unary" {
					o = itCallUnary(ctx, client)
				} else {
					o = itCallOut(ctx, client, 2)
				}
				if o.code != r.code || (r.code != codes.OK && o.msg != r.msg) {
					t.Errorf("%s: got %v %q, want %v %q", kind, o.code, o.msg, r.code, r.msg)
				}
				itNeverInternal(t, kind, o.code)
				want := []string(nil)
				if r.www != "" {
					want = []string{r.www}
				}
				if !slices.Equal(o.www(), want) {
					t.Errorf("%s: www-authenticate %q, want %q", kind, o.www(), want)
				}
				for _, s := range leaks {
					if strings.Contains(o.msg, s) || strings.Contains(strings.Join(o.www(), " "), s) {
						t.Errorf("%s: status %q / trailer %q leaks %q", kind, o.msg, o.www(), s)
					}
				}
			}
			want := int64(0)
			if r.code == codes.OK {
				want = 2
			}
			if ran := server.calls.Load() - before; ran != want {
				t.Errorf("handler ran %d times, want %d", ran, want)
			}
		})
	}

	// The logger gets the full cause, which the client never sees.
	recs := logs.find("grpcjwt: call refused", map[string]string{"method": itUnary, "rule": itService})
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
	// Each interceptor (unary, stream) logs its first refusal as a
	// warning, counting it, and the rest, within the minute, at Debug.
	warnings := 0
	for _, r := range logs.find("grpcjwt: call refused", nil) {
		switch r.level {
		case slog.LevelWarn:
			warnings++
			if r.attrs["refused_since_last_warning"] != "1" {
				t.Errorf("first warning counts %q refusals, want 1", r.attrs["refused_since_last_warning"])
			}
		case slog.LevelDebug:
		default:
			t.Errorf("refusal logged at %v, want WARN or DEBUG", r.level)
		}
	}
	if warnings != 2 {
		t.Errorf("%d refusals logged at WARN, want 2 (the first of each interceptor)", warnings)
	}
}

// TestInterceptorNoSecretsInStatus checks that neither claim values nor
// URLs reach the client, while the logger gets the cause.
func TestInterceptorNoSecretsInStatus(t *testing.T) {
	is := itIssuer(t)
	logs := &itLogs{}
	c, _, _ := itProtect(t, itVerifier(t, is), grpcjwt.WithLogger(slog.New(logs)))
	// Tokens signed by the issuer's key carry SIGNED markers: their values
	// may reach the log (the check that refused them names them), never
	// the client. Tokens whose signature fails carry SECRET markers, which
	// reach neither.
	evil := func(m map[string]any) {
		m["iss"] = "https://evil.example/SIGNED-123"
		m["sub"] = "SIGNED-SUB"
	}
	tokens := map[string]string{
		"evil issuer, real key":            itMint(is, evil, "SIGNED-AUD"),
		"evil audience, real key":          itMint(is, func(m map[string]any) { m["sub"] = "SIGNED-SUB" }, "SIGNED-AUD"),
		"evil issuer, unknown key":         grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), nil, is.Claims("SECRET-AUD")),
		"evil claims, forged kid":          grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), map[string]any{"kid": is.SigningKey().ID}, map[string]any{"iss": "https://evil.example/SECRET-123", "aud": "SECRET-AUD", "exp": 1}),
		"evil claims, malformed claim set": grpcjwttest.Sign(is.SigningKey(), nil, []byte(`{"iss":"https://evil.example/SECRET-123","aud":"SECRET-AUD","exp":"SECRET-EXP"}`)),
	}
	secrets := []string{"SECRET", "SIGNED", "evil.example", is.URL(), is.JWKSURL()}
	for name, tok := range tokens {
		for _, kind := range []string{"unary", "stream"} {
			var o itOutcome
			if kind == "unary" {
				o = itCallUnary(itBearer(t.Context(), tok), c)
			} else {
				o = itCallOut(itBearer(t.Context(), tok), c, 1)
			}
			if o.code != codes.Unauthenticated {
				t.Errorf("%s, %s: got %v %q, want Unauthenticated", name, kind, o.code, o.msg)
			}
			for _, s := range secrets {
				if strings.Contains(o.msg, s) {
					t.Errorf("%s, %s: status message %q holds %q", name, kind, o.msg, s)
				}
				for k, vs := range o.trailer {
					if strings.Contains(strings.Join(vs, " "), s) {
						t.Errorf("%s, %s: trailer %s=%q holds %q", name, kind, k, vs, s)
					}
				}
			}
		}
	}
	// The cause reaches the logger, naming the signed token's values and
	// the accepted ones, and never a value of a token whose signature
	// failed.
	if len(logs.find("grpcjwt: call refused", map[string]string{"check": "iss", "got": `"https://evil.example/SIGNED-123"`,
		"want": `one of ["` + is.URL() + `"]`})) == 0 {
		t.Errorf("logger did not get the cause of the issuer rejection; logs:\n%s", logs)
	}
	if len(logs.find("grpcjwt: call refused", map[string]string{"check": "aud", "got": `["SIGNED-AUD"]`,
		"want": `one of ["` + itAudience + `"]`})) == 0 {
		t.Errorf("logger did not get the cause of the audience rejection; logs:\n%s", logs)
	}
	all := logs.String()
	if strings.Contains(all, "SECRET") {
		t.Errorf("logs hold values of a token whose signature failed:\n%s", all)
	}
	if strings.Contains(all, "SIGNED-SUB") {
		t.Errorf("logs hold a claim no check read:\n%s", all)
	}
}

// TestInterceptorWWWAuthenticate checks the RFC 6750 challenge sent as a
// trailer, for unary calls and streams, and that accepted calls get none.
func TestInterceptorWWWAuthenticate(t *testing.T) {
	is := itIssuer(t)
	c, _, _ := itProtect(t, itVerifier(t, is),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
			itUnary:     {Scopes: []string{"write:orders"}},
			itOutStream: {Scopes: []string{"write:orders"}},
		})))
	expired := itMint(is, func(m map[string]any) {
		m["exp"], m["iat"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
	}, itAudience, "write:orders")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want []string
	}{
		{"no token", t.Context(), []string{"Bearer"}},
		{"expired", itBearer(t.Context(), expired), []string{`Bearer error="invalid_token", error_description="expired token"`}},
		{"missing scope", itBearer(t.Context(), itMint(is, nil, itAudience, "read:orders")),
			[]string{`Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`}},
		{"valid", itBearer(t.Context(), itMint(is, nil, itAudience, "write:orders")), nil},
	} {
		if got := itCallUnary(tc.ctx, c).www(); !slices.Equal(got, tc.want) {
			t.Errorf("%s, unary: www-authenticate %q, want %q", tc.name, got, tc.want)
		}
		if got := itCallOut(tc.ctx, c, 1).www(); !slices.Equal(got, tc.want) {
			t.Errorf("%s, stream: www-authenticate %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRulePrecedence checks that the exact method rule beats the service
// rule, which beats the default rule.
func TestRulePrecedence(t *testing.T) {
	is := itIssuer(t)
	c, hc, _ := itProtect(t, itVerifier(t, is), grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		grpcjwt.DefaultRuleKey: {Scopes: []string{"default"}},
		itService:              {Scopes: []string{"svc"}},
		itUnary:                {Scopes: []string{"exact"}},
		itEmpty:                {Public: true},
	})))
	tok := func(scope string) context.Context { return itBearer(t.Context(), itMint(is, nil, itAudience, scope)) }
	health := func(ctx context.Context) codes.Code {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return status.Code(err)
	}
	empty := func(ctx context.Context) codes.Code {
		_, err := c.EmptyCall(ctx, &testpb.Empty{})
		return status.Code(err)
	}
	for _, tc := range []struct {
		name string
		got  codes.Code
		want codes.Code
	}{
		{"exact rule: its scope", itCallUnary(tok("exact"), c).code, codes.OK},
		{"exact rule: service scope is not enough", itCallUnary(tok("svc"), c).code, codes.PermissionDenied},
		{"exact rule: default scope is not enough", itCallUnary(tok("default"), c).code, codes.PermissionDenied},
		{"service rule: its scope", itCallOut(tok("svc"), c, 1).code, codes.OK},
		{"service rule: exact scope is not enough", itCallOut(tok("exact"), c, 1).code, codes.PermissionDenied},
		{"service rule: default scope is not enough", itCallBidi(tok("default"), c, 1).code, codes.PermissionDenied},
		{"service rule on bidi", itCallBidi(tok("svc"), c, 1).code, codes.OK},
		{"default rule: its scope", health(tok("default")), codes.OK},
		{"default rule: service scope is not enough", health(tok("svc")), codes.PermissionDenied},
		{"default rule: token required", health(t.Context()), codes.Unauthenticated},
		{"public exact rule beats service rule", empty(t.Context()), codes.OK},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestRuleNoDefault checks that without a default rule (or without any
// policy) every method that no rule names requires a valid token.
func TestRuleNoDefault(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	valid := itBearer(t.Context(), itMint(is, nil, itAudience))
	for name, opts := range map[string][]grpcjwt.Option{
		"public rule only": {grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itEmpty: {Public: true}}))},
		"empty policy":     {grpcjwt.WithPolicy(itPolicy(t, nil))},
		"nil policy":       {grpcjwt.WithPolicy(nil)},
		"no policy option": nil,
	} {
		c, hc, _ := itProtect(t, v, opts...)
		if o := itCallUnary(t.Context(), c); o.code != codes.Unauthenticated || o.msg != "missing bearer token" {
			t.Errorf("%s: unary without token: got %v %q, want Unauthenticated", name, o.code, o.msg)
		}
		if o := itCallOut(t.Context(), c, 1); o.code != codes.Unauthenticated {
			t.Errorf("%s: stream without token: got %v, want Unauthenticated", name, o.code)
		}
		if _, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: health without token: got %v, want Unauthenticated", name, err)
		}
		if o := itCallUnary(valid, c); o.code != codes.OK || o.sub() != "user-123" {
			t.Errorf("%s: unary with token: got %v, subject %q", name, o.code, o.sub())
		}
		if o := itCallOut(valid, c, 1); o.code != codes.OK || o.sub() != "user-123" {
			t.Errorf("%s: stream with token: got %v, subject %q", name, o.code, o.sub())
		}
		_, err := c.EmptyCall(t.Context(), &testpb.Empty{})
		if wantPublic := name == "public rule only"; (status.Code(err) == codes.OK) != wantPublic {
			t.Errorf("%s: EmptyCall without token: got %v, public %v", name, err, wantPublic)
		}
	}
}

// TestRulePublic checks public methods: a valid token's claims reach the
// handler, an invalid token is ignored, or rejected with
// WithStrictPublicTokens.
func TestRulePublic(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	policy := itPolicy(t, map[string]grpcjwt.Rule{itEmpty: {Public: true}, itOutStream: {Public: true}})
	lenient, _, lenientSrv := itProtect(t, v, grpcjwt.WithPolicy(policy))
	strict, _, strictSrv := itProtect(t, v, grpcjwt.WithPolicy(policy), grpcjwt.WithStrictPublicTokens())

	empty := func(ctx context.Context, c testpb.TestServiceClient) itOutcome {
		var o itOutcome
		_, err := c.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&o.header), grpc.Trailer(&o.trailer))
		o.code, o.msg = itStatus(err)
		return o
	}
	expired := itMint(is, func(m map[string]any) {
		m["exp"], m["iat"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
	}, itAudience)
	cases := []struct {
		name   string
		auth   []string
		strict codes.Code // outcome under WithStrictPublicTokens
		sub    string     // subject the handler sees when the call proceeds
	}{
		{"no token", nil, codes.OK, itNoClaims},
		{"valid token", []string{"Bearer " + itMint(is, nil, itAudience)}, codes.OK, "user-123"},
		{"expired token", []string{"Bearer " + expired}, codes.Unauthenticated, itNoClaims},
		{"wrong audience", []string{"Bearer " + itMint(is, nil, "api://billing")}, codes.Unauthenticated, itNoClaims},
		{"garbage token", []string{"Bearer garbage"}, codes.Unauthenticated, itNoClaims},
		{"other scheme", []string{"Basic xyz"}, codes.Unauthenticated, itNoClaims},
		{"two values", []string{"Bearer " + itMint(is, nil, itAudience), "Bearer x"}, codes.Unauthenticated, itNoClaims},
	}
	for _, tc := range cases {
		ctx := itAuth(t.Context(), tc.auth...)
		for kind, call := range map[string]func(testpb.TestServiceClient) itOutcome{
			"unary":  func(c testpb.TestServiceClient) itOutcome { return empty(ctx, c) },
			"stream": func(c testpb.TestServiceClient) itOutcome { return itCallOut(ctx, c, 1) },
		} {
			if o := call(lenient); o.code != codes.OK || o.sub() != tc.sub {
				t.Errorf("%s, %s, lenient: got %v %q, subject %q; want OK, subject %q", tc.name, kind, o.code, o.msg, o.sub(), tc.sub)
			}
			o := call(strict)
			if o.code != tc.strict {
				t.Errorf("%s, %s, strict: got %v %q, want %v", tc.name, kind, o.code, o.msg, tc.strict)
			}
			if o.code == codes.OK && o.sub() != tc.sub {
				t.Errorf("%s, %s, strict: subject %q, want %q", tc.name, kind, o.sub(), tc.sub)
			}
		}
	}
	// A non-public method on the same server still needs a token.
	if o := itCallUnary(t.Context(), lenient); o.code != codes.Unauthenticated {
		t.Errorf("UnaryCall without token on the lenient server: got %v, want Unauthenticated", o.code)
	}
	if got := lenientSrv.calls.Load(); got != int64(2*len(cases)) {
		t.Errorf("lenient handler calls = %d, want %d", got, 2*len(cases))
	}
	if got := strictSrv.calls.Load(); got != 4 { // no token and valid token, twice each
		t.Errorf("strict handler calls = %d, want 4", got)
	}
}

// TestRuleAudience checks a rule that narrows the accepted audiences.
func TestRuleAudience(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is, grpcjwt.WithAudience(itAdminAudience))
	c, _, _ := itProtect(t, v, grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		itUnary:     {Audiences: []string{itAdminAudience}},
		itOutStream: {Audiences: []string{itAdminAudience, "api://unused"}},
	})))
	orders := itBearer(t.Context(), itMint(is, nil, itAudience))
	admin := itBearer(t.Context(), itMint(is, nil, itAdminAudience))
	both := itBearer(t.Context(), is.Mint(func() map[string]any {
		m := is.Claims(itAudience)
		m["aud"] = []string{itAudience, itAdminAudience}
		return m
	}()))
	const msg = "token audience not accepted for this method"
	for _, kind := range []string{"unary", "stream"} {
		call := func(ctx context.Context) itOutcome {
			if kind == "unary" {
				return itCallUnary(ctx, c)
			}
			return itCallOut(ctx, c, 1)
		}
		o := call(orders)
		if o.code != codes.Unauthenticated || o.msg != msg {
			t.Errorf("%s, orders token: got %v %q, want Unauthenticated %q", kind, o.code, o.msg, msg)
		}
		if want := []string{`Bearer error="invalid_token", error_description="` + msg + `"`}; !slices.Equal(o.www(), want) {
			t.Errorf("%s, orders token: www-authenticate %q, want %q", kind, o.www(), want)
		}
		if o := call(admin); o.code != codes.OK {
			t.Errorf("%s, admin token: got %v %q, want OK", kind, o.code, o.msg)
		}
		if o := call(both); o.code != codes.OK {
			t.Errorf("%s, token for both audiences: got %v %q, want OK", kind, o.code, o.msg)
		}
	}
	// Methods without an audience rule take any audience of the verifier.
	if o := itCallBidi(orders, c, 1); o.code != codes.OK {
		t.Errorf("bidi without audience rule, orders token: got %v %q, want OK", o.code, o.msg)
	}
}

// TestRuleScopes checks that a rule requires every scope it names.
func TestRuleScopes(t *testing.T) {
	is := itIssuer(t)
	c, _, ts := itProtect(t, itVerifier(t, is), grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		itService: {Scopes: []string{"read:orders", "write:orders"}},
	})))
	for _, tc := range []struct {
		name   string
		scopes []string
		want   codes.Code
	}{
		{"none", nil, codes.PermissionDenied},
		{"first only", []string{"read:orders"}, codes.PermissionDenied},
		{"second only", []string{"write:orders"}, codes.PermissionDenied},
		{"wrong case", []string{"read:orders", "WRITE:orders"}, codes.PermissionDenied},
		{"prefix", []string{"read:orders", "write:order"}, codes.PermissionDenied},
		{"both", []string{"write:orders", "read:orders"}, codes.OK},
		{"both and more", []string{"admin", "read:orders", "write:orders"}, codes.OK},
	} {
		ctx := itBearer(t.Context(), itMint(is, nil, itAudience, tc.scopes...))
		before := ts.calls.Load()
		u, s := itCallUnary(ctx, c), itCallOut(ctx, c, 1)
		for kind, o := range map[string]itOutcome{"unary": u, "stream": s} {
			if o.code != tc.want {
				t.Errorf("%s, %s: got %v %q, want %v", tc.name, kind, o.code, o.msg, tc.want)
			}
			if o.code == codes.PermissionDenied {
				if o.msg != "token lacks a required scope" {
					t.Errorf("%s, %s: message %q", tc.name, kind, o.msg)
				}
				want := `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="read:orders write:orders"`
				if !slices.Equal(o.www(), []string{want}) {
					t.Errorf("%s, %s: www-authenticate %q, want %q", tc.name, kind, o.www(), want)
				}
			}
		}
		if ran := ts.calls.Load() - before; (tc.want == codes.OK && ran != 2) || (tc.want != codes.OK && ran != 0) {
			t.Errorf("%s: handler ran %d times", tc.name, ran)
		}
	}
}

// TestRuleScopesSplitOnSpaceOnly: a space-delimited scope claim is split
// on U+0020 alone (RFC 6749 §3.3). A granted scope holding any other white
// space stays one scope-token, so "reports:tenant-7<c>admin" never
// satisfies a rule that needs "admin", through the interceptor as through
// Claims.HasScope; the same scopes in an array behave alike.
func TestRuleScopesSplitOnSpaceOnly(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	c, _, _ := itProtect(t, v, grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itService: {Scopes: []string{"admin"}}})))
	for _, sp := range []string{"\t", "\n", "\r", "\v", "\f", "\u00a0", "\u0085", "\u2028", "\u3000"} {
		granted := "reports:tenant-7" + sp + "admin"
		for form, scope := range map[string]any{"string": granted, "string with more": "read " + granted, "array": []string{granted}} {
			tok := itMint(is, func(m map[string]any) { m["scope"] = scope }, itAudience)
			claims, err := v.Verify(t.Context(), tok)
			if err != nil {
				t.Fatalf("%q, %s: Verify: %v", sp, form, err)
			}
			if claims.HasScope("admin") || !claims.HasScope(granted) {
				t.Errorf("%q, %s: Scopes %q: HasScope(admin) = %v, HasScope(whole) = %v", sp, form, claims.Scopes,
					claims.HasScope("admin"), claims.HasScope(granted))
			}
			ctx := itBearer(t.Context(), tok)
			for kind, o := range map[string]itOutcome{"unary": itCallUnary(ctx, c), "stream": itCallOut(ctx, c, 1)} {
				if o.code != codes.PermissionDenied {
					t.Errorf("%q, %s, %s: got %v %q, want PermissionDenied", sp, form, kind, o.code, o.msg)
				}
			}
		}
	}
	// A space still delimits.
	if o := itCallUnary(itBearer(t.Context(), itMint(is, func(m map[string]any) { m["scope"] = "reports:tenant-7 admin" }, itAudience)), c); o.code != codes.OK {
		t.Errorf("space-delimited admin: got %v %q, want OK", o.code, o.msg)
	}
}

// TestAuthFuncBridge runs grpcjwt.AuthFunc under go-grpc-middleware's auth
// interceptors, with selector skipping the health service.
func TestAuthFuncBridge(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	af := grpcjwt.AuthFunc(v, grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		itUnary:     {Scopes: []string{"write:orders"}},
		itOutStream: {Scopes: []string{"read:orders"}},
	})))
	notHealth := selector.MatchFunc(func(_ context.Context, cm interceptors.CallMeta) bool {
		return cm.Service != healthpb.Health_ServiceDesc.ServiceName
	})
	c, hc, ts := itServe(t,
		grpc.ChainUnaryInterceptor(selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(af), notHealth)),
		grpc.ChainStreamInterceptor(selector.StreamServerInterceptor(auth.StreamServerInterceptor(af), notHealth)))

	// Health checks need no token, unary or streaming.
	if resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health Check without token: %v, %v; want SERVING", resp, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	cancel()
	if err != nil {
		t.Errorf("health Watch without token: %v", err)
	}

	// The test service needs one, with the rule of each method.
	if o := itCallUnary(t.Context(), c); o.code != codes.Unauthenticated || o.msg != "missing bearer token" || !slices.Equal(o.www(), []string{"Bearer"}) {
		t.Errorf("unary without token: got %v %q, www-authenticate %q", o.code, o.msg, o.www())
	}
	if o := itCallOut(t.Context(), c, 1); o.code != codes.Unauthenticated || !slices.Equal(o.www(), []string{"Bearer"}) {
		t.Errorf("stream without token: got %v %q, www-authenticate %q", o.code, o.msg, o.www())
	}
	w2 := itBearer(t.Context(), itMint(is, nil, itAudience, "write:orders"))
	r2 := itBearer(t.Context(), itMint(is, nil, itAudience, "read:orders"))
	if o := itCallUnary(w2, c); o.code != codes.OK || o.sub() != "user-123" || !slices.Equal(o.subs, []string{"user-123"}) {
		t.Errorf("unary with write scope: got %v %q, subject %q", o.code, o.msg, o.sub())
	}
	if o := itCallUnary(r2, c); o.code != codes.PermissionDenied {
		t.Errorf("unary with read scope only: got %v %q, want PermissionDenied", o.code, o.msg)
	} else if want := `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`; !slices.Equal(o.www(), []string{want}) {
		t.Errorf("unary with read scope only: www-authenticate %q, want %q", o.www(), want)
	}
	if o := itCallOut(r2, c, 2); o.code != codes.OK || o.sub() != "user-123" || !slices.Equal(o.subs, []string{"user-123", "user-123"}) {
		t.Errorf("stream with read scope: got %v %q, subjects %q", o.code, o.msg, o.subs)
	}
	if o := itCallOut(w2, c, 1); o.code != codes.PermissionDenied {
		t.Errorf("stream with write scope only: got %v %q, want PermissionDenied", o.code, o.msg)
	}
	if o := itCallBidi(w2, c, 1); o.code != codes.OK || !slices.Equal(o.subs, []string{"user-123"}) {
		t.Errorf("bidi (default rule) with token: got %v %q, subjects %q", o.code, o.msg, o.subs)
	}
	if o, _ := itCallIn(r2, c, 1); o.code != codes.OK || o.sub() != "user-123" {
		t.Errorf("client stream (default rule) with token: got %v %q, subject %q", o.code, o.msg, o.sub())
	}
	if got := ts.calls.Load(); got != 4 {
		t.Errorf("handler calls = %d, want 4", got)
	}

	// Without the selector, the health service needs a token too: the
	// selector is what lets it through.
	_, hcAll, _ := itServe(t, grpc.UnaryInterceptor(auth.UnaryServerInterceptor(af)))
	if _, err := hcAll.Check(t.Context(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("health Check without selector and token: %v, want Unauthenticated", err)
	}
}

// TestInterceptorChain runs grpcjwt in the chain a README should recommend:
// logging first (it then logs denials and recovered panics with their
// code), then recovery (it then also covers grpcjwt), then grpcjwt.
func TestInterceptorChain(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	mwLogs, jwtLogs := &itLogs{}, &itLogs{}
	mw := slog.New(mwLogs)
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		mw.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	toInternal := recovery.WithRecoveryHandler(func(any) error { return status.Error(codes.Internal, "internal error") })
	jwtOpts := []grpcjwt.Option{grpcjwt.WithLogger(slog.New(jwtLogs))}
	c, _, ts := itServe(t,
		grpc.ChainUnaryInterceptor(
			logging.UnaryServerInterceptor(logger),
			recovery.UnaryServerInterceptor(toInternal),
			grpcjwt.UnaryServerInterceptor(v, jwtOpts...)),
		grpc.ChainStreamInterceptor(
			logging.StreamServerInterceptor(logger),
			recovery.StreamServerInterceptor(toInternal),
			grpcjwt.StreamServerInterceptor(v, jwtOpts...)))
	valid := itBearer(t.Context(), itMint(is, nil, itAudience))

	// A handler panic becomes Internal, from recovery.
	_, err := c.UnaryCall(valid, &testpb.SimpleRequest{Payload: itPayload("panic")})
	if code, msg := itStatus(err); code != codes.Internal || msg != "internal error" {
		t.Errorf("panicking unary handler: got %v %q, want Internal from recovery", code, msg)
	}
	st, err := c.StreamingOutputCall(valid, &testpb.StreamingOutputCallRequest{Payload: itPayload("panic")})
	if err == nil {
		_, err = st.Recv()
	}
	if code, msg := itStatus(err); code != codes.Internal || msg != "internal error" {
		t.Errorf("panicking stream handler: got %v %q, want Internal from recovery", code, msg)
	}
	// Denials still come back Unauthenticated, and accepted calls pass.
	if o := itCallUnary(t.Context(), c); o.code != codes.Unauthenticated || !slices.Equal(o.www(), []string{"Bearer"}) {
		t.Errorf("unary without token: got %v %q, www-authenticate %q", o.code, o.msg, o.www())
	}
	if o := itCallOut(t.Context(), c, 1); o.code != codes.Unauthenticated || !slices.Equal(o.www(), []string{"Bearer"}) {
		t.Errorf("stream without token: got %v %q, www-authenticate %q", o.code, o.msg, o.www())
	}
	if o := itCallUnary(valid, c); o.code != codes.OK || o.sub() != "user-123" {
		t.Errorf("unary with token: got %v %q, subject %q", o.code, o.msg, o.sub())
	}
	if o := itCallOut(valid, c, 1); o.code != codes.OK || o.sub() != "user-123" {
		t.Errorf("stream with token: got %v %q, subject %q", o.code, o.msg, o.sub())
	}
	if got := ts.calls.Load(); got != 4 {
		t.Errorf("handler calls = %d, want 4 (2 panics, 2 accepted)", got)
	}

	// The logging interceptor saw every outcome with its code.
	for _, w := range []struct {
		method, code string
		level        slog.Level
	}{
		{"UnaryCall", "Internal", slog.LevelError},
		{"StreamingOutputCall", "Internal", slog.LevelError},
		{"UnaryCall", "Unauthenticated", slog.LevelInfo},
		{"StreamingOutputCall", "Unauthenticated", slog.LevelInfo},
		{"UnaryCall", "OK", slog.LevelInfo},
		{"StreamingOutputCall", "OK", slog.LevelInfo},
	} {
		recs := mwLogs.find("finished call", map[string]string{"grpc.method": w.method, "grpc.code": w.code})
		if len(recs) != 1 {
			t.Errorf("logging interceptor: %d %q records for %s with code %s, want 1; logs:\n%s", len(recs), "finished call", w.method, w.code, mwLogs)
			continue
		}
		if recs[0].level != w.level {
			t.Errorf("logging interceptor: %s %s logged at %v, want %v", w.method, w.code, recs[0].level, w.level)
		}
	}
	// grpcjwt's own logger got the cause of both denials.
	if got := len(jwtLogs.find("grpcjwt: call refused", map[string]string{"error": "grpcjwt: missing bearer token"})); got != 2 {
		t.Errorf("grpcjwt logged %d missing-token rejections, want 2; logs:\n%s", got, jwtLogs)
	}
}

// TestStreamExpiry checks that, by default, a stream ends with
// Unauthenticated when its token expires, and that WithStreamExpiry(false)
// lets it outlive the token. This test waits for a real token to expire
// (about 1.5 s); its subtests run at once so that the wait is paid once.
func TestStreamExpiry(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is, grpcjwt.WithLeeway(0))
	exp := time.Now().Add(1500 * time.Millisecond)
	// A fractional NumericDate, so that the token expires 1.5 s from now
	// rather than at the next whole second.
	tok := itMint(is, func(m map[string]any) { m["exp"] = float64(exp.UnixMilli()) / 1000 }, itAudience)
	const expiredWWW = `Bearer error="invalid_token", error_description="expired token"`

	// The cases share the wait: they run at once, in goroutines
	// rather than with t.Parallel, whose -parallel limit (GOMAXPROCS) could
	// start one of them after the token expired.
	var wg sync.WaitGroup
	run := func(name string, f func(t *testing.T)) { wg.Go(func() { t.Run(name, f) }) }
	defer wg.Wait()

	run("server stream ends at expiry", func(t *testing.T) {
		logs := &itLogs{}
		c, _, _ := itProtect(t, v, grpcjwt.WithLogger(slog.New(logs)))
		ctx, cancel := context.WithTimeout(itBearer(t.Context(), tok), 3*time.Second)
		defer cancel()
		st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{}) // sends until ctx.Done
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			m, err := st.Recv()
			if err != nil {
				code, msg := itStatus(err)
				if code != codes.Unauthenticated || msg != "token expired during the stream" {
					t.Fatalf("stream ended with %v %q after %d messages, want Unauthenticated %q; logs:\n%s", code, msg, n, "token expired during the stream", logs)
				}
				break
			}
			if string(m.GetPayload().GetBody()) != "user-123" {
				t.Errorf("message %d: subject %q", n, m.GetPayload().GetBody())
			}
			n++
		}
		if early := time.Until(exp); early > 50*time.Millisecond {
			t.Errorf("stream ended %v before the token expired", early)
		}
		if n < 10 { // one message per 20 ms for 1.5 s
			t.Errorf("client got %d messages before expiry, want many", n)
		}
		if got := st.Trailer().Get("www-authenticate"); !slices.Equal(got, []string{expiredWWW}) {
			t.Errorf("www-authenticate %q, want %q", got, expiredWWW)
		}
		if len(logs.find("grpcjwt: call refused", map[string]string{"method": itOutStream, "error": "grpcjwt: token expired: during the stream"})) != 1 {
			t.Errorf("expiry not logged; logs:\n%s", logs)
		}
	})

	run("handler that ignores its context cannot send after expiry", func(t *testing.T) {
		c, _, _ := itProtect(t, v)
		ctx, cancel := context.WithTimeout(itBearer(t.Context(), tok), 3*time.Second)
		defer cancel()
		st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{Payload: itPayload("ignore-ctx")})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			if _, err := st.Recv(); err != nil {
				if code, msg := itStatus(err); code != codes.Unauthenticated || msg != "token expired during the stream" {
					t.Fatalf("stream ended with %v %q after %d messages, want Unauthenticated", code, msg, n)
				}
				break
			}
			n++
		}
		if n == 0 || time.Until(exp) > 50*time.Millisecond {
			t.Errorf("got %d messages, stream ended %v before expiry", n, time.Until(exp))
		}
	})

	run("client stream ends at expiry", func(t *testing.T) {
		c, _, _ := itProtect(t, v)
		ctx, cancel := context.WithTimeout(itBearer(t.Context(), tok), 3*time.Second)
		defer cancel()
		st, err := c.StreamingInputCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The server only receives: it learns of the expiry from RecvMsg.
		sent := 0
		for st.Send(&testpb.StreamingInputCallRequest{}) == nil && ctx.Err() == nil {
			sent++
			time.Sleep(20 * time.Millisecond)
		}
		_, err = st.CloseAndRecv()
		if code, msg := itStatus(err); code != codes.Unauthenticated || msg != "token expired during the stream" {
			t.Fatalf("client stream ended with %v %q after %d messages, want Unauthenticated", code, msg, sent)
		}
		if sent == 0 || time.Until(exp) > 50*time.Millisecond {
			t.Errorf("sent %d messages, stream ended %v before expiry", sent, time.Until(exp))
		}
	})

	run("bidi stream ends at expiry", func(t *testing.T) {
		c, _, _ := itProtect(t, v)
		ctx, cancel := context.WithTimeout(itBearer(t.Context(), tok), 3*time.Second)
		defer cancel()
		st, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The client keeps talking; the server stops at expiry.
		var sender sync.WaitGroup
		defer func() { cancel(); sender.Wait() }()
		sender.Go(func() {
			for st.Send(&testpb.StreamingOutputCallRequest{}) == nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
		n := 0
		for {
			_, err := st.Recv()
			if err != nil {
				if code, msg := itStatus(err); code != codes.Unauthenticated || msg != "token expired during the stream" {
					t.Fatalf("bidi ended with %v %q after %d messages, want Unauthenticated", code, msg, n)
				}
				break
			}
			n++
		}
		if n == 0 {
			t.Error("client got no message before expiry")
		}
		if time.Until(exp) > 50*time.Millisecond {
			t.Error("bidi stream ended before the token expired")
		}
	})

	run("a public method's optional token does not bound its stream", func(t *testing.T) {
		c, _, _ := itProtect(t, v, grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itOutStream: {Public: true}})))
		ctx, cancel := context.WithTimeout(itBearer(t.Context(), tok), 3*time.Second)
		defer cancel()
		st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		itRecvPastExpiry(t, st, exp, "the optional token")
		cancel()
	})

	run("WithStreamExpiry(false) outlives the token", func(t *testing.T) {
		c, _, _ := itProtect(t, v, grpcjwt.WithStreamExpiry(false))
		ctx, cancel := context.WithTimeout(itBearer(t.Context(), tok), 3*time.Second)
		defer cancel()
		st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		itRecvPastExpiry(t, st, exp, "the token")
		cancel() // the test's own bound
		for {
			if _, err := st.Recv(); err != nil {
				if code := status.Code(err); code != codes.Canceled {
					t.Errorf("after cancel: %v, want Canceled", err)
				}
				break
			}
		}
	})
}

// TestInterceptorConcurrent runs 200 clients at once, each making unary and
// streaming calls with its own valid token and with invalid ones, and
// checks every outcome (run it with -race).
func TestInterceptorConcurrent(t *testing.T) {
	is := itIssuer(t)
	c, _, ts := itProtect(t, itVerifier(t, is), grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		itEmpty: {Public: true},
		itUnary: {Scopes: []string{"write:orders"}},
	})))
	const clients = 200
	now := time.Now()
	invalid := []struct {
		tok  string
		code codes.Code
		msg  string
	}{
		{itMint(is, func(m map[string]any) { m["exp"], m["iat"] = now.Add(-time.Hour).Unix(), now.Add(-2*time.Hour).Unix() }, itAudience, "write:orders"),
			codes.Unauthenticated, "expired token"},
		{itMint(is, nil, "api://billing", "write:orders"), codes.Unauthenticated, "token audience not accepted"},
		{grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), map[string]any{"kid": is.SigningKey().ID}, is.Claims(itAudience, "write:orders")),
			codes.Unauthenticated, "invalid token signature"},
		{"garbage", codes.Unauthenticated, "malformed token"},
		{itMint(is, nil, itAudience), codes.PermissionDenied, "token lacks a required scope"},
	}
	tokens := make([]string, clients)
	for i := range tokens {
		tokens[i] = itMint(is, func(m map[string]any) { m["sub"] = fmt.Sprintf("user-%d", i) }, itAudience, "write:orders")
	}
	var wg sync.WaitGroup
	var accepted atomic.Int64
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			<-start
			sub := fmt.Sprintf("user-%d", i)
			ctx := itBearer(t.Context(), tokens[i])
			bad := invalid[i%len(invalid)]
			badCtx := itBearer(t.Context(), bad.tok)

			if o := itCallUnary(ctx, c); o.code != codes.OK || o.sub() != sub || !slices.Equal(o.subs, []string{sub}) {
				t.Errorf("client %d unary: got %v %q, subject %q, responses %q", i, o.code, o.msg, o.sub(), o.subs)
			}
			if o := itCallOut(ctx, c, 3); o.code != codes.OK || o.sub() != sub || !slices.Equal(o.subs, []string{sub, sub, sub}) {
				t.Errorf("client %d stream: got %v %q, responses %q", i, o.code, o.msg, o.subs)
			}
			if o := itCallBidi(ctx, c, 2); o.code != codes.OK || !slices.Equal(o.subs, []string{sub, sub}) {
				t.Errorf("client %d bidi: got %v %q, responses %q", i, o.code, o.msg, o.subs)
			}
			accepted.Add(3)
			if o := itCallUnary(badCtx, c); o.code != bad.code || o.msg != bad.msg {
				t.Errorf("client %d unary, bad token: got %v %q, want %v %q", i, o.code, o.msg, bad.code, bad.msg)
			}
			o := itCallOut(badCtx, c, 3)
			switch {
			case bad.code == codes.PermissionDenied:
				// The scope rule is on UnaryCall only.
				if o.code != codes.OK || !slices.Equal(o.subs, []string{"user-123", "user-123", "user-123"}) {
					t.Errorf("client %d stream, token without scope: got %v %q, responses %q; want OK", i, o.code, o.msg, o.subs)
				}
			case o.code != bad.code || o.msg != bad.msg || len(o.subs) != 0:
				t.Errorf("client %d stream, bad token: got %v %q, responses %q; want %v %q", i, o.code, o.msg, o.subs, bad.code, bad.msg)
			}
			// Public method: a bad token is ignored, a good one is seen.
			var h metadata.MD
			wantSub := itNoClaims
			if bad.code == codes.PermissionDenied {
				wantSub = "user-123" // valid, only short of a scope
			}
			if _, err := c.EmptyCall(badCtx, &testpb.Empty{}, grpc.Header(&h)); err != nil || strings.Join(h.Get("x-sub"), "") != wantSub {
				t.Errorf("client %d public, bad token: %v, subject %q, want %q", i, err, h.Get("x-sub"), wantSub)
			}
			if _, err := c.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&h)); err != nil || strings.Join(h.Get("x-sub"), "") != sub {
				t.Errorf("client %d public, own token: %v, subject %q", i, err, h.Get("x-sub"))
			}
			accepted.Add(2)
		})
	}
	close(start)
	wg.Wait()
	// Handlers ran for accepted calls, plus the streams of scope-less
	// tokens (allowed on StreamingOutputCall), and never for rejected ones.
	scopeless := int64(0)
	for i := range clients {
		if invalid[i%len(invalid)].code == codes.PermissionDenied {
			scopeless++
		}
	}
	if got, want := ts.calls.Load(), accepted.Load()+scopeless; got != want {
		t.Errorf("handler calls = %d, want %d", got, want)
	}
}

// TestRuleAudienceNarrowsVerifier: a rule's audiences narrow the
// verifier's on that method. A token for an audience the verifier does not
// accept is refused everywhere, even on a method whose rule names it; with
// InsecureSkipAudienceCheck the rule's audiences are the only check.
func TestRuleAudienceNarrowsVerifier(t *testing.T) {
	is := itIssuer(t)
	rules := map[string]grpcjwt.Rule{itUnary: {Audiences: []string{itAdminAudience}}}
	orders := itBearer(t.Context(), itMint(is, nil, itAudience))
	admin := itBearer(t.Context(), itMint(is, nil, itAdminAudience))
	both := itBearer(t.Context(), itMint(is, func(m map[string]any) { m["aud"] = []string{itAudience, itAdminAudience} }, ""))

	c, _, _ := itProtect(t, itVerifier(t, is), grpcjwt.WithPolicy(itPolicy(t, rules))) // the verifier accepts only itAudience
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		unary   bool
		code    codes.Code
		message string
	}{
		{"rule audience outside the verifier's, on the rule's method", admin, true, codes.Unauthenticated, "token audience not accepted"},
		{"verifier audience on a method whose rule names another", orders, true, codes.Unauthenticated, "token audience not accepted for this method"},
		{"both audiences, on the rule's method", both, true, codes.OK, ""},
		{"rule audience on a method without the rule", admin, false, codes.Unauthenticated, "token audience not accepted"},
		{"verifier audience on a method without a rule", orders, false, codes.OK, ""},
	} {
		var o itOutcome
		if tc.unary {
			o = itCallUnary(tc.ctx, c)
		} else {
			o = itCallBidi(tc.ctx, c, 1)
		}
		if o.code != tc.code || o.msg != tc.message {
			t.Errorf("%s: got %v %q, want %v %q", tc.name, o.code, o.msg, tc.code, tc.message)
		}
	}

	// Without the verifier's audience check, the rule's audiences decide.
	ks, err := grpcjwt.NewRemoteKeyset(t.Context(), is.JWKSURL(), grpcjwt.WithKeysetLogger(itDiscard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	skip, err := grpcjwt.NewVerifier(ks, grpcjwt.WithIssuer(is.URL()), grpcjwt.InsecureSkipAudienceCheck())
	if err != nil {
		t.Fatal(err)
	}
	c2, _, _ := itProtect(t, skip, grpcjwt.WithPolicy(itPolicy(t, rules)))
	if o := itCallUnary(admin, c2); o.code != codes.OK {
		t.Errorf("skip-audience verifier, rule audience: got %v %q, want OK", o.code, o.msg)
	}
	if o := itCallUnary(orders, c2); o.code != codes.Unauthenticated || o.msg != "token audience not accepted for this method" {
		t.Errorf("skip-audience verifier, other audience: got %v %q", o.code, o.msg)
	}
}

// itRecvPastExpiry reads st until it has received five messages 200 ms or
// more after exp, failing t if the stream ends first or a message names
// another subject than whose's user-123: the stream outlives whose expiry.
func itRecvPastExpiry(t *testing.T, st testpb.TestService_StreamingOutputCallClient, exp time.Time, whose string) {
	t.Helper()
	after := 0
	for after < 5 {
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("stream ended with %v; want it to outlive %s", err, whose)
		}
		if sub := string(m.GetPayload().GetBody()); sub != "user-123" {
			t.Fatalf("handler saw subject %q, want %s's user-123", sub, whose)
		}
		if time.Since(exp) > 200*time.Millisecond {
			after++
		}
	}
}
