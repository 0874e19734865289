package connectjwt_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/connectjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// The tests of this module serve grpc.testing.TestService and the health
// service as connect handlers over a real HTTP/2 server (httptest, TLS),
// call them with connect's own clients in each of the three protocols,
// and verify tokens against a real JWKS served by a grpcjwttest issuer.
// They mirror the grpc-go interceptors' tests of the root module, whose
// helpers carry an "it" prefix; these carry "ct".

const (
	ctAudience      = "api://orders"
	ctAdminAudience = "api://admin"

	ctEmpty     = testpb.TestService_EmptyCall_FullMethodName
	ctUnary     = testpb.TestService_UnaryCall_FullMethodName
	ctOutStream = testpb.TestService_StreamingOutputCall_FullMethodName
	ctInStream  = testpb.TestService_StreamingInputCall_FullMethodName
	ctBidi      = testpb.TestService_FullDuplexCall_FullMethodName
	ctService   = "/grpc.testing.TestService/*"
	ctHealth    = "/grpc.health.v1.Health/Check"

	// ctNoClaims is what the handlers report when their context holds no
	// claims.
	ctNoClaims = "-"
)

// ctProtocols are the three protocols connect speaks.
var ctProtocols = []string{"connect", "grpc", "grpcweb"}

// ctKinds are the four kinds of call.
var ctKinds = []string{"unary", "server", "client", "bidi"}

// ctProtocolOption returns the client option of protocol.
func ctProtocolOption(protocol string) connect.ClientOption {
	switch protocol {
	case "grpc":
		return connect.WithGRPC()
	case "grpcweb":
		return connect.WithGRPCWeb()
	}
	return connect.WithClientOptions() // the Connect protocol, connect's default
}

// ctLeakCheck fails t if a goroutine started during t that runs code of
// grpcjwt, connect, net/http or the network poller is still running once
// every other cleanup of t has run (cleanups run last-registered first:
// call it first). It polls for a while, since a goroutine takes a moment
// to exit after the close that ended it.
func ctLeakCheck(t *testing.T) {
	t.Helper()
	before := ctMaxGoroutineID()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := ctGoroutinesAfter(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) outlived the test:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// ctStacks returns the stacks of all goroutines, by goroutine ID.
func ctStacks() map[int64]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[int64]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		var id int64
		if _, err := fmt.Sscanf(g, "goroutine %d ", &id); err == nil {
			out[id] = g
		}
	}
	return out
}

func ctMaxGoroutineID() int64 {
	var top int64
	for id := range ctStacks() {
		top = max(top, id)
	}
	return top
}

// ctGoroutinesAfter returns the stacks of goroutines with an ID above
// before that run code of grpcjwt, connect, net/http or the poller.
func ctGoroutinesAfter(before int64) []string {
	var out []string
	for id, g := range ctStacks() {
		if id <= before {
			continue
		}
		if strings.Contains(g, "github.com/grpcjwt/grpcjwt") || strings.Contains(g, "connectrpc.com/connect") ||
			strings.Contains(g, "net/http") || strings.Contains(g, "internal/poll") {
			out = append(out, g)
		}
	}
	return out
}

// ctLogs is a slog.Handler that keeps every record.
type ctLogs struct {
	mu   sync.Mutex
	recs []ctRecord
}

type ctRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *ctLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *ctLogs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *ctLogs) WithGroup(string) slog.Handler            { return l }
func (l *ctLogs) Handle(_ context.Context, r slog.Record) error {
	rec := ctRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

// find returns the records with message msg whose attributes include want.
func (l *ctLogs) find(msg string, want map[string]string) []ctRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ctRecord
	for _, r := range l.recs {
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

func (l *ctLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		fmt.Fprintf(&b, "%v %q %v\n", r.level, r.msg, r.attrs)
	}
	return b.String()
}

var ctDiscard = slog.New(slog.DiscardHandler)

// ctIssuer starts a test issuer, closed when the test ends.
func ctIssuer(t *testing.T) *grpcjwttest.Issuer {
	t.Helper()
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	return is
}

// ctVerifier returns a verifier over a remote keyset fetched from is, for
// is's issuer and ctAudience unless opts say otherwise.
func ctVerifier(t *testing.T, is *grpcjwttest.Issuer, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	t.Helper()
	ks, err := grpcjwt.NewRemoteKeyset(t.Context(), is.JWKSURL(), grpcjwt.WithKeysetLogger(ctDiscard))
	if err != nil {
		t.Fatalf("NewRemoteKeyset: %v", err)
	}
	t.Cleanup(func() { ks.Close() })
	opts = append([]grpcjwt.VerifierOption{grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(ctAudience)}, opts...)
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func ctPolicy(t *testing.T, rules map[string]grpcjwt.Rule) *grpcjwt.Policy {
	t.Helper()
	p, err := grpcjwt.NewPolicy(rules)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

// ctMint signs is's typical claims for aud and scopes, changed by edit.
func ctMint(is *grpcjwttest.Issuer, edit func(map[string]any), aud string, scopes ...string) string {
	c := is.Claims(aud, scopes...)
	if edit != nil {
		edit(c)
	}
	return is.Mint(c)
}

// ctExpired mints a token of is for aud and scopes that expired an hour ago.
func ctExpired(is *grpcjwttest.Issuer, aud string, scopes ...string) string {
	return ctMint(is, func(m map[string]any) {
		m["exp"], m["iat"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
	}, aud, scopes...)
}

// ctServer implements TestService's five methods and the health check as
// connect handlers that report what ClaimsFromContext finds in response
// headers ("x-sub", "x-scope", "x-aud"; x-sub is "-" without claims) and
// in their responses (the subject).
type ctServer struct {
	calls     atomic.Int64 // handler invocations
	bodyReads atomic.Int64 // Read calls on request bodies
}

// ctReport sets the x-sub, x-scope and x-aud headers from ctx's claims.
func ctReport(ctx context.Context, h http.Header) {
	c, ok := grpcjwt.ClaimsFromContext(ctx)
	if !ok {
		h.Set("x-sub", ctNoClaims)
		return
	}
	h.Set("x-sub", c.Subject)
	h.Set("x-scope", strings.Join(c.Scopes, " "))
	h.Set("x-aud", strings.Join(c.Audience, " "))
}

func ctSubject(ctx context.Context) string {
	if c, ok := grpcjwt.ClaimsFromContext(ctx); ok {
		return c.Subject
	}
	return ctNoClaims
}

func ctPayload(s string) *testpb.Payload { return &testpb.Payload{Body: []byte(s)} }

func (s *ctServer) empty(ctx context.Context, _ *connect.Request[testpb.Empty]) (*connect.Response[testpb.Empty], error) {
	s.calls.Add(1)
	res := connect.NewResponse(&testpb.Empty{})
	ctReport(ctx, res.Header())
	return res, nil
}

func (s *ctServer) unary(ctx context.Context, _ *connect.Request[testpb.SimpleRequest]) (*connect.Response[testpb.SimpleResponse], error) {
	s.calls.Add(1)
	res := connect.NewResponse(&testpb.SimpleResponse{Username: ctSubject(ctx)})
	ctReport(ctx, res.Header())
	return res, nil
}

// outStream sends one message per response parameter, or, with none, one
// every 20 ms until the stream's context ends (or, if the payload body is
// "ignore-ctx", until sending fails).
func (s *ctServer) outStream(ctx context.Context, req *connect.Request[testpb.StreamingOutputCallRequest],
	st *connect.ServerStream[testpb.StreamingOutputCallResponse]) error {
	s.calls.Add(1)
	ctReport(ctx, st.ResponseHeader())
	resp := &testpb.StreamingOutputCallResponse{Payload: ctPayload(ctSubject(ctx))}
	if string(req.Msg.GetPayload().GetBody()) == "ignore-ctx" {
		for {
			if err := st.Send(resp); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(req.Msg.GetResponseParameters()) == 0 {
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
	for range req.Msg.GetResponseParameters() {
		if err := st.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// inStream counts the messages received.
func (s *ctServer) inStream(ctx context.Context, st *connect.ClientStream[testpb.StreamingInputCallRequest]) (
	*connect.Response[testpb.StreamingInputCallResponse], error) {
	s.calls.Add(1)
	n := 0
	for st.Receive() {
		n++
	}
	if err := st.Err(); err != nil {
		return nil, err
	}
	res := connect.NewResponse(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(n)})
	ctReport(ctx, res.Header())
	return res, nil
}

// bidi answers each message with the subject.
func (s *ctServer) bidi(ctx context.Context, st *connect.BidiStream[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	s.calls.Add(1)
	ctReport(ctx, st.ResponseHeader())
	for {
		if _, err := st.Receive(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: ctPayload(ctSubject(ctx))}); err != nil {
			return err
		}
	}
}

func (s *ctServer) health(ctx context.Context, _ *connect.Request[healthpb.HealthCheckRequest]) (*connect.Response[healthpb.HealthCheckResponse], error) {
	s.calls.Add(1)
	res := connect.NewResponse(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
	ctReport(ctx, res.Header())
	return res, nil
}

// ctProcedures are the procedures ctServer's mux serves.
var ctProcedures = []string{ctEmpty, ctUnary, ctOutStream, ctInStream, ctBidi, ctHealth}

// mux returns the handlers of s, built with opts, on a mux.
func (s *ctServer) mux(opts ...connect.HandlerOption) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(ctEmpty, connect.NewUnaryHandler(ctEmpty, s.empty, opts...))
	mux.Handle(ctUnary, connect.NewUnaryHandler(ctUnary, s.unary, opts...))
	mux.Handle(ctOutStream, connect.NewServerStreamHandler(ctOutStream, s.outStream, opts...))
	mux.Handle(ctInStream, connect.NewClientStreamHandler(ctInStream, s.inStream, opts...))
	mux.Handle(ctBidi, connect.NewBidiStreamHandler(ctBidi, s.bidi, opts...))
	// The health check has no side effects: Connect clients may call it
	// with an HTTP GET (connect.WithHTTPGet).
	mux.Handle(ctHealth, connect.NewUnaryHandler(ctHealth, s.health,
		append([]connect.HandlerOption{connect.WithIdempotency(connect.IdempotencyNoSideEffects)}, opts...)...))
	return mux
}

// ctCountingBody counts the Read calls on a request body.
type ctCountingBody struct {
	io.ReadCloser
	reads *atomic.Int64
}

func (b *ctCountingBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	return b.ReadCloser.Read(p)
}

// ctEnv is a served ctServer and an HTTP client for it.
type ctEnv struct {
	srv    *httptest.Server
	impl   *ctServer
	client *http.Client
}

// ctServeHandler serves h over HTTP/2 with TLS (a client certificate is
// asked for but not required), counting the Read calls on each request
// body in impl, and returns the environment; all of it stops when t ends.
func ctServeHandler(t testing.TB, impl *ctServer, h http.Handler) *ctEnv {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &ctCountingBody{ReadCloser: r.Body, reads: &impl.bodyReads}
		h.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.Config.ErrorLog = ctHTTPErrorLog
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &ctEnv{srv: srv, impl: impl, client: srv.Client()}
}

// ctHTTPErrorLog silences the HTTP server's log of TLS handshakes that
// tests end on purpose.
var ctHTTPErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)

// ctServe serves a ctServer behind an Interceptor of v built with opts;
// with middleware, the mux is wrapped in the Interceptor's Middleware.
func ctServe(t testing.TB, v *grpcjwt.Verifier, middleware bool, opts ...grpcjwt.Option) *ctEnv {
	t.Helper()
	// Quiet unless the test gives a logger of its own (the last one wins).
	auth := connectjwt.NewInterceptor(v, append([]grpcjwt.Option{grpcjwt.WithLogger(ctDiscard)}, opts...)...)
	impl := &ctServer{}
	var h http.Handler = impl.mux(connect.WithInterceptors(auth))
	if middleware {
		h = auth.Middleware(h)
	}
	return ctServeHandler(t, impl, h)
}

// ctRecorder is an http.RoundTripper that keeps the last response, so
// that a test can see where on the wire a value came: HTTP header,
// HTTP trailer, or neither (the body).
type ctRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	resp *http.Response
}

func (r *ctRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	r.mu.Lock()
	r.resp = resp
	r.mu.Unlock()
	return resp, err
}

// ctOutcome is what a client saw of one call.
type ctOutcome struct {
	code connect.Code // 0 when the call succeeded
	msg  string
	err  error
	// meta is what the client API shows of the response's metadata: the
	// error's Meta (HTTP headers and trailers, in-body or not) or, for a
	// call that succeeded, the response header and trailer.
	meta http.Header
	// raw is the HTTP response, read once the call was over.
	rawStatus             int
	rawHeader, rawTrailer http.Header
	subs                  []string // subject in each response
	received              int32    // messages the client-stream handler counted
}

func (o ctOutcome) sub() string   { return strings.Join(o.meta.Values("x-sub"), ",") }
func (o ctOutcome) www() []string { return o.meta.Values("WWW-Authenticate") }

// where tells where on the wire the WWW-Authenticate value was: "header",
// "trailer", "body" (in-body metadata, which only the client API shows),
// or "none".
func (o ctOutcome) where() string {
	switch {
	case len(o.rawHeader.Values("WWW-Authenticate")) > 0:
		return "header"
	case len(o.rawTrailer.Values("WWW-Authenticate")) > 0:
		return "trailer"
	case len(o.www()) > 0:
		return "body"
	}
	return "none"
}

func (o ctOutcome) String() string {
	return fmt.Sprintf("%v %q www=%q", o.code, o.msg, o.www())
}

// ctCall is one call: kind ("unary", "server", "client", "bidi") in
// protocol with the given authorization values, n messages (server: n
// responses asked for; client, bidi: n messages sent).
type ctCall struct {
	protocol, kind string
	auth           []string
	n              int
	procedure      string // "" for the kind's TestService method
	body           string // the payload body of a server stream's request
}

// call makes c against e and returns what the client saw.
func (e *ctEnv) call(ctx context.Context, c ctCall) ctOutcome {
	rec := &ctRecorder{base: e.client.Transport}
	hc := &http.Client{Transport: rec}
	opt := ctProtocolOption(c.protocol)
	url := func(def string) string {
		if c.procedure != "" {
			return e.srv.URL + c.procedure
		}
		return e.srv.URL + def
	}
	addAuth := func(h http.Header) {
		for _, a := range c.auth {
			h.Add("Authorization", a)
		}
	}
	var o ctOutcome
	var header, trailer http.Header
	switch c.kind {
	case "unary":
		cl := connect.NewClient[testpb.SimpleRequest, testpb.SimpleResponse](hc, url(ctUnary), opt)
		req := connect.NewRequest(&testpb.SimpleRequest{})
		addAuth(req.Header())
		res, err := cl.CallUnary(ctx, req)
		o.err = err
		if err == nil {
			o.subs = []string{res.Msg.GetUsername()}
			header, trailer = res.Header(), res.Trailer()
		}
	case "server":
		cl := connect.NewClient[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse](hc, url(ctOutStream), opt)
		msg := &testpb.StreamingOutputCallRequest{Payload: ctPayload(c.body)}
		for range c.n {
			msg.ResponseParameters = append(msg.ResponseParameters, &testpb.ResponseParameters{})
		}
		req := connect.NewRequest(msg)
		addAuth(req.Header())
		st, err := cl.CallServerStream(ctx, req)
		if err != nil {
			o.err = err
			break
		}
		for st.Receive() {
			o.subs = append(o.subs, string(st.Msg().GetPayload().GetBody()))
		}
		o.err = st.Err()
		header, trailer = st.ResponseHeader(), st.ResponseTrailer()
		st.Close()
	case "client":
		cl := connect.NewClient[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse](hc, url(ctInStream), opt)
		st := cl.CallClientStream(ctx)
		addAuth(st.RequestHeader())
		for range c.n {
			if err := st.Send(&testpb.StreamingInputCallRequest{}); err != nil {
				break // the status comes from CloseAndReceive
			}
		}
		res, err := st.CloseAndReceive()
		o.err = err
		if err == nil {
			o.received = res.Msg.GetAggregatedPayloadSize()
			header, trailer = res.Header(), res.Trailer()
		}
	case "bidi":
		cl := connect.NewClient[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse](hc, url(ctBidi), opt)
		st := cl.CallBidiStream(ctx)
		addAuth(st.RequestHeader())
		for range c.n {
			if err := st.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
				break
			}
		}
		st.CloseRequest()
		for {
			m, err := st.Receive()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					o.err = err
				}
				break
			}
			o.subs = append(o.subs, string(m.GetPayload().GetBody()))
		}
		header, trailer = st.ResponseHeader(), st.ResponseTrailer()
		st.CloseResponse()
	default:
		panic("unknown kind " + c.kind)
	}
	o.setStatus(header, trailer)
	rec.mu.Lock()
	if rec.resp != nil {
		o.rawStatus, o.rawHeader, o.rawTrailer = rec.resp.StatusCode, rec.resp.Header, rec.resp.Trailer
	}
	rec.mu.Unlock()
	return o
}

// setStatus fills o's code, message and metadata from o.err or, for a
// call that succeeded, from the response's header and trailer.
func (o *ctOutcome) setStatus(header, trailer http.Header) {
	if o.err != nil {
		o.code = connect.CodeOf(o.err)
		var ce *connect.Error
		if errors.As(o.err, &ce) {
			o.msg = ce.Message()
			o.meta = ce.Meta()
		}
		return
	}
	o.meta = header.Clone()
	if o.meta == nil {
		o.meta = http.Header{}
	}
	for k, v := range trailer {
		o.meta[k] = append(o.meta[k], v...)
	}
}

// ctOutcomeOf is the outcome of a unary call that returned err and, if it
// succeeded, a response with the header that header returns.
func ctOutcomeOf(err error, header func() http.Header) ctOutcome {
	o := ctOutcome{err: err}
	var h http.Header
	if err == nil {
		h = header()
	}
	o.setStatus(h, nil)
	return o
}

// ctBearer returns the authorization values of a bearer token.
func ctBearer(tok string) []string { return []string{"Bearer " + tok} }

// ctNeverInternal fails the test if code is one that a refusal must never
// have.
func ctNeverInternal(t *testing.T, what string, code connect.Code) {
	t.Helper()
	if code == connect.CodeInternal || code == connect.CodeUnknown {
		t.Errorf("%s: code %v; a refusal must never surface as Internal or Unknown", what, code)
	}
}

// ctEach runs f for every protocol and kind.
func ctEach(f func(protocol, kind string)) {
	for _, p := range ctProtocols {
		for _, k := range ctKinds {
			f(p, k)
		}
	}
}

// ctWant returns the one-element list of want, or nil for "".
func ctWant(want string) []string {
	if want == "" {
		return nil
	}
	return []string{want}
}
