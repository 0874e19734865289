// Package interoptest is what the real-provider suites (interop/ against
// oidc-provider, interop/hydra/ against Ory Hydra) share: the gRPC server
// they protect (examples/orderpb behind grpcjwt's interceptors, one policy
// with each kind of rule), a [Client] that calls it with bearer tokens and
// tallies the calls that must pass, and small assertions.
//
// Each suite keeps what is its provider's own: how it gets tokens, how its
// keyset and verifier are configured, its timings.
package interoptest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// The audiences and scopes of the policy [Serve] applies; both suites'
// providers issue tokens for them.
const (
	APIAudience   = "https://api.example.test"
	OtherAudience = "https://other.example.test"
	ScopeRead     = "read:orders"
	ScopeWrite    = "write:orders"
	BothScopes    = ScopeRead + " " + ScopeWrite
)

const (
	// CallTimeout bounds every RPC a [Client] makes.
	CallTimeout = 10 * time.Second
	// PollStep is how often [WaitFor] checks its condition.
	PollStep = 25 * time.Millisecond
)

// ---- the protected gRPC server ----------------------------------------------

// policy is each kind of rule once: ServerInfo public, GetOrder for the api
// audience, CreateOrder for the api audience with write:orders,
// WatchOrders with read:orders; ImportOrders and Chat get the default rule,
// any valid token.
func policy() (*grpcjwt.Policy, error) {
	return grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		orderpb.OrderService_ServerInfo_FullMethodName:  {Public: true},
		orderpb.OrderService_GetOrder_FullMethodName:    {Audiences: []string{APIAudience}},
		orderpb.OrderService_CreateOrder_FullMethodName: {Audiences: []string{APIAudience}, Scopes: []string{ScopeWrite}},
		orderpb.OrderService_WatchOrders_FullMethodName: {Scopes: []string{ScopeRead}},
	})
}

// Serve serves the order service over bufconn behind grpcjwt's unary and
// stream interceptors, with v, the suites' policy (see [APIAudience]) and
// logger, and returns a [Client] of it. The handler learns who called from
// the claims the interceptor put in its context: an order's created_by is
// the token's subject. The server stops when the test ends.
func Serve(t *testing.T, v *grpcjwt.Verifier, logger *slog.Logger) *Client {
	t.Helper()
	p, err := policy()
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	iopts := []grpcjwt.Option{grpcjwt.WithPolicy(p), grpcjwt.WithLogger(logger)}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, iopts...)),
		grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(v, iopts...)),
	)
	svc := orderpb.NewServer()
	svc.CreatedBy = func(ctx context.Context) string {
		if c, ok := grpcjwt.ClaimsFromContext(ctx); ok {
			return c.Subject
		}
		return ""
	}
	orderpb.RegisterOrderServiceServer(srv, svc)
	if err := p.CheckServer(srv); err != nil {
		t.Fatalf("policy.CheckServer: %v", err)
	}
	cc := grpcjwttest.Serve(t, srv)
	return &Client{T: t, Orders: orderpb.NewOrderServiceClient(cc)}
}

// Logger returns a logger that writes to t, at level and above, until the
// test's cleanups have all run; lines that come later (from goroutines
// still unwinding) are dropped. Call it before registering other cleanups:
// its own then runs last.
func Logger(t *testing.T, level slog.Level) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// ---- the client -------------------------------------------------------------

// Client calls the server [Serve] started, each call with a bearer token
// (none for ""), and tallies the calls made with tokens that must pass.
// Its methods can run on any goroutine.
type Client struct {
	// T is the test the client reports to.
	T *testing.T
	// Orders is the gRPC client of the order service.
	Orders orderpb.OrderServiceClient

	// OrderID is an order that exists, for GetOrder (see [Client.Setup]).
	OrderID string

	// Valid counts the calls made with a token that must pass (one the
	// provider considers valid and whose key the keyset can hold); Failed
	// counts those of them that failed.
	Valid, Failed atomic.Int64
}

// CallCtx is an RPC's context, bounded by [CallTimeout], with tok as its
// bearer token unless tok is empty. It is not derived from the test's
// context, so that a call cut short shows as what it is, not as a
// cancelled test.
func CallCtx(tok string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	if tok != "" {
		ctx = grpcjwttest.WithBearer(ctx, tok)
	}
	return ctx, cancel
}

// ServerInfo calls the public ServerInfo method.
func (c *Client) ServerInfo(tok string) (*orderpb.ServerInfoResponse, error) {
	ctx, cancel := CallCtx(tok)
	defer cancel()
	return c.Orders.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
}

// GetOrder gets the order id.
func (c *Client) GetOrder(tok, id string, opts ...grpc.CallOption) (*orderpb.Order, error) {
	ctx, cancel := CallCtx(tok)
	defer cancel()
	return c.Orders.GetOrder(ctx, &orderpb.GetOrderRequest{Id: id}, opts...)
}

// CreateOrder creates an order of two widgets.
func (c *Client) CreateOrder(tok string, opts ...grpc.CallOption) (*orderpb.Order, error) {
	ctx, cancel := CallCtx(tok)
	defer cancel()
	return c.Orders.CreateOrder(ctx, &orderpb.CreateOrderRequest{Item: "widget", Quantity: 2}, opts...)
}

// Watch opens WatchOrders for three events and reads it to the end; it
// returns the events' sequence numbers.
func (c *Client) Watch(tok string) ([]int32, error) {
	ctx, cancel := CallCtx(tok)
	defer cancel()
	st, err := c.Orders.WatchOrders(ctx, &orderpb.WatchOrdersRequest{MaxEvents: 3})
	if err != nil {
		return nil, err
	}
	var seqs []int32
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return seqs, nil
		}
		if err != nil {
			return seqs, err
		}
		seqs = append(seqs, ev.GetSequence())
	}
}

// ImportOrders sends two orders on the client stream (the default rule:
// any valid token) and returns how many were imported.
func (c *Client) ImportOrders(tok string) (int32, error) {
	ctx, cancel := CallCtx(tok)
	defer cancel()
	st, err := c.Orders.ImportOrders(ctx)
	if err != nil {
		return 0, err
	}
	for _, item := range []string{"a", "b"} {
		if err := st.Send(&orderpb.Order{Item: item, Quantity: 1}); err != nil {
			break // the status comes with CloseAndRecv
		}
	}
	resp, err := st.CloseAndRecv()
	return resp.GetImported(), err
}

// ValidCallE makes one call that a valid api token with both scopes must
// pass: GetOrder of [Client.OrderID] (kind even) or a WatchOrders stream
// (kind odd). It neither counts nor reports the call.
func (c *Client) ValidCallE(tok string, kind int) error {
	if kind%2 == 0 {
		o, err := c.GetOrder(tok, c.OrderID)
		if err == nil && o.GetId() != c.OrderID {
			err = fmt.Errorf("GetOrder returned order %q, want %q", o.GetId(), c.OrderID)
		}
		return err
	}
	seqs, err := c.Watch(tok)
	if err == nil && len(seqs) != 3 {
		err = fmt.Errorf("WatchOrders delivered %v, want 3 events", seqs)
	}
	return err
}

// ValidCall is [Client.ValidCallE], counted and reported (see
// [Client.Tally]).
func (c *Client) ValidCall(label, tok string, kind int) error {
	err := c.ValidCallE(tok, kind)
	c.Tally(label, err)
	return err
}

// Tally counts a call made with a token that must pass, whose result was
// err; if it failed, it counts that too and fails the test, with label.
func (c *Client) Tally(label string, err error) {
	c.Valid.Add(1)
	if err != nil {
		c.Failed.Add(1)
		c.T.Errorf("%s: call with a valid token failed: %v", label, err)
	}
}

// Burst runs n valid calls at once with each token, half GetOrder, half
// WatchOrders, and waits for all of them.
func (c *Client) Burst(label string, n int, toks ...string) {
	var wg sync.WaitGroup
	for ti, tok := range toks {
		for i := range n {
			wg.Go(func() { c.ValidCall(fmt.Sprintf("%s (token %d, call %d)", label, ti, i), tok, i) })
		}
	}
	wg.Wait()
}

// Setup creates the order that the valid calls read, with tok (which must
// carry write:orders), and sets [Client.OrderID]; it stops the test if
// that fails.
func (c *Client) Setup(tok string) {
	c.T.Helper()
	c.Valid.Add(1)
	o, err := c.CreateOrder(tok)
	if err != nil {
		c.Failed.Add(1)
		c.T.Fatalf("CreateOrder with a valid write:orders token: %v", err)
	}
	c.OrderID = o.GetId()
}

// AssertNoValidFailures logs the tally of valid calls and fails the test
// if any of them failed.
func (c *Client) AssertNoValidFailures() {
	c.T.Helper()
	v, f := c.Valid.Load(), c.Failed.Load()
	c.T.Logf("calls with a valid token: %d, failed: %d", v, f)
	if f != 0 {
		c.T.Errorf("%d of %d calls with a valid token failed; want 0", f, v)
	}
}

// ---- the rules, method by method ---------------------------------------------

// RuleTokens are a provider's tokens for [Client.CheckRules]. The api
// tokens are for [APIAudience], the other ones for [OtherAudience]; the
// optional ones (empty: not checked) cover shapes only some providers
// issue.
type RuleTokens struct {
	Subject      string // the sub of RW: the created_by of its order
	RW, R, W     string // api: both scopes, read:orders, write:orders
	NoScope      string // api, granting no scope
	NoScopeShape string // how NoScope grants none, for the messages ("scp []")
	Other        string // other audience, both scopes
	OtherR       string // other audience, read:orders

	NoAudience    string // optional: aud [] (refused everywhere)
	BothAudiences string // optional: both audiences, read:orders at least
	Opaque        string // optional: the provider's opaque access token
}

// CheckRules checks each rule of the suites' policy through the real
// interceptors, as subtests of t: ServerInfo public, CreateOrder for the
// api audience with write:orders (which sets [Client.OrderID]), GetOrder
// for the api audience, WatchOrders with read:orders; with the codes,
// messages and challenges a client gets.
func (c *Client) CheckRules(t *testing.T, tk RuleTokens) {
	t.Run("ServerInfo is public", func(t *testing.T) {
		for name, tok := range map[string]string{"no token": "", "garbage token": "not-a-jwt", "valid token": tk.R} {
			resp, err := c.ServerInfo(tok)
			if err != nil || resp.GetVersion() != orderpb.DefaultVersion {
				t.Errorf("ServerInfo with %s: %v, %v", name, resp, err)
			}
		}
	})

	t.Run("CreateOrder needs the api audience and write:orders", func(t *testing.T) {
		o, err := c.CreateOrder(tk.RW)
		if err != nil {
			t.Fatalf("CreateOrder with write:orders: %v", err)
		}
		if o.GetId() == "" || o.GetCreatedBy() != tk.Subject {
			t.Errorf("created order %+v, want an id and created_by %q (the token's sub)", o, tk.Subject)
		}
		c.OrderID = o.GetId()
		if _, err := c.CreateOrder(tk.W); err != nil {
			t.Errorf("CreateOrder with only write:orders: %v", err)
		}
		var tr metadata.MD
		_, err = c.CreateOrder(tk.R, grpc.Trailer(&tr))
		WantStatus(t, "CreateOrder with read:orders only", err, codes.PermissionDenied, "token lacks a required scope")
		WantChallenge(t, tr, `error="insufficient_scope"`, `scope="write:orders"`)
		_, err = c.CreateOrder(tk.NoScope)
		WantStatus(t, "CreateOrder with "+tk.NoScopeShape, err, codes.PermissionDenied, "token lacks a required scope")
		_, err = c.CreateOrder(tk.Other)
		WantStatus(t, "CreateOrder with an other-audience token", err, codes.Unauthenticated, "token audience not accepted for this method")
		if tk.NoAudience != "" {
			_, err = c.CreateOrder(tk.NoAudience)
			WantStatus(t, "CreateOrder with aud []", err, codes.Unauthenticated, "token audience not accepted")
		}
		_, err = c.CreateOrder("")
		WantStatus(t, "CreateOrder without a token", err, codes.Unauthenticated, "missing bearer token")
	})

	t.Run("GetOrder needs the api audience", func(t *testing.T) {
		if c.OrderID == "" {
			// A check that depends on an earlier step fails with it: a
			// suite never passes by skipping.
			t.Fatal("no order was created by the CreateOrder step, so GetOrder cannot be checked")
		}
		pass := map[string]string{"rw": tk.RW, "r": tk.R, tk.NoScopeShape: tk.NoScope}
		if tk.BothAudiences != "" {
			pass["both audiences"] = tk.BothAudiences
		}
		for name, tok := range pass {
			o, err := c.GetOrder(tok, c.OrderID)
			if err != nil || o.GetId() != c.OrderID {
				t.Errorf("GetOrder with api token (%s): %v, %v", name, o, err)
			}
		}
		// Authorized, then the handler's own answer.
		_, err := c.GetOrder(tk.R, "ord-does-not-exist")
		WantStatus(t, "GetOrder of an unknown id", err, codes.NotFound, "")
		var tr metadata.MD
		_, err = c.GetOrder(tk.Other, c.OrderID, grpc.Trailer(&tr))
		WantStatus(t, "GetOrder with an other-audience token", err, codes.Unauthenticated, "token audience not accepted for this method")
		WantChallenge(t, tr, `error="invalid_token"`)
		_, err = c.GetOrder(FlipSignature(tk.R), c.OrderID)
		WantStatus(t, "GetOrder with a token whose signature has one byte flipped", err, codes.Unauthenticated, "invalid token signature")
		if tk.Opaque != "" {
			_, err = c.GetOrder(tk.Opaque, c.OrderID)
			WantStatus(t, "GetOrder with an opaque token", err, codes.Unauthenticated, "malformed token")
		}
		_, err = c.GetOrder("", c.OrderID)
		WantStatus(t, "GetOrder without a token", err, codes.Unauthenticated, "missing bearer token")
	})

	t.Run("WatchOrders needs read:orders", func(t *testing.T) {
		pass := map[string]string{"api r": tk.R, "api rw": tk.RW, "other r": tk.OtherR}
		if tk.BothAudiences != "" {
			pass["both audiences r"] = tk.BothAudiences
		}
		for name, tok := range pass {
			seqs, err := c.Watch(tok)
			if err != nil || len(seqs) != 3 || seqs[0] != 1 || seqs[2] != 3 {
				t.Errorf("WatchOrders with %s: events %v, %v", name, seqs, err)
			}
		}
		_, err := c.Watch(tk.W)
		WantStatus(t, "WatchOrders with write:orders only", err, codes.PermissionDenied, "token lacks a required scope")
		_, err = c.Watch(tk.NoScope)
		WantStatus(t, "WatchOrders with "+tk.NoScopeShape, err, codes.PermissionDenied, "token lacks a required scope")
		_, err = c.Watch("")
		WantStatus(t, "WatchOrders without a token", err, codes.Unauthenticated, "missing bearer token")
	})
}

// ---- assertions ---------------------------------------------------------------

// WantStatus checks that err is a gRPC status with code and, if msg is not
// empty, exactly that message.
func WantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	switch {
	case err == nil:
		t.Errorf("%s: succeeded, want %v %q", what, code, msg)
	case !ok:
		t.Errorf("%s: %v is not a gRPC status, want %v", what, err, code)
	case st.Code() != code || (msg != "" && st.Message() != msg):
		t.Errorf("%s: got %v %q, want %v %q", what, st.Code(), st.Message(), code, msg)
	}
}

// WantChallenge checks that the WWW-Authenticate values of md (a call's
// trailer) hold each of parts, such as `error="insufficient_scope"`.
func WantChallenge(t *testing.T, md metadata.MD, parts ...string) {
	t.Helper()
	got := strings.Join(md.Get("www-authenticate"), "|")
	for _, p := range parts {
		if !strings.Contains(got, p) {
			t.Errorf("www-authenticate trailer = %q, want it to hold %s", got, p)
		}
	}
}

// WaitFor polls cond every [PollStep] until it holds, failing the test
// after within.
func WaitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(PollStep)
	}
}

// ---- tokens, unverified (for assertions only) ---------------------------------

// JWSHeader is the protected header of a compact JWS.
type JWSHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// ParseHeader decodes the protected header of a compact JWS, without
// verifying anything.
func ParseHeader(tok string) (JWSHeader, error) {
	var h JWSHeader
	seg, _, ok := strings.Cut(tok, ".")
	if !ok {
		return h, fmt.Errorf("not a compact JWS: %.40q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return h, err
	}
	return h, json.Unmarshal(b, &h)
}

// HeaderOf is [ParseHeader] that stops the test on an error.
func HeaderOf(t *testing.T, tok string) JWSHeader {
	t.Helper()
	h, err := ParseHeader(tok)
	if err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	return h
}

// FlipSignature changes one bit of the token's signature (keeping the
// base64url canonical: the first character, which carries 6 full bits).
func FlipSignature(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 1
	b := []byte(tok)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
