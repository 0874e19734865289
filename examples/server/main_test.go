package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

const testAudience = "https://orders.example.test"

// addrWriter is run's stdout in tests: it hands the address of the
// "listening on ADDR" line, which run writes in one Write, to the test.
type addrWriter chan string

func (w addrWriter) Write(p []byte) (int, error) {
	if addr, ok := strings.CutPrefix(strings.TrimSpace(string(p)), "listening on "); ok {
		select {
		case w <- addr:
		default:
		}
	}
	return len(p), nil
}

func envFunc(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// start runs the server with args and env until the test ends, and returns
// its address. The cleanup cancels run's ctx and checks that run returns
// nil.
func start(t *testing.T, args []string, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(addrWriter, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, envFunc(env), addrs, t.Output()) }()
	select {
	case addr := <-addrs:
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run returned %v after cancel, want nil", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("run did not return after cancel")
			}
		})
		return addr
	case err := <-done:
		cancel()
		t.Fatalf("run failed before listening: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("run did not start listening")
	}
	return ""
}

// runErr runs the server with a configuration that must fail before it
// listens, and returns run's error.
func runErr(t *testing.T, args []string, env map[string]string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	addrs := make(addrWriter, 1)
	err := run(ctx, args, envFunc(env), addrs, t.Output())
	select {
	case addr := <-addrs:
		t.Errorf("run listened on %s, want a start-up error", addr)
	default:
	}
	return err
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}

// TestServer runs the server against an embedded issuer, discovering the
// JWKS URL, and calls it as a client would.
func TestServer(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	// The issuer comes from the environment, the rest from flags.
	addr := start(t,
		[]string{"-listen", "127.0.0.1:0", "-audience", "https://other.example.test, " + testAudience},
		map[string]string{"GRPCJWT_ISSUER": is.URL(), "GRPCJWT_AUDIENCE": "https://ignored.example.test"})
	cc := dial(t, addr)
	orders := orderpb.NewOrderServiceClient(cc)
	ctx := t.Context()

	writer := is.Mint(is.Claims(testAudience, "write:orders"))
	reader := is.Mint(is.Claims(testAudience, "read:orders"))
	noSub := is.Claims(testAudience, "write:orders")
	delete(noSub, "sub")
	clientOnly := is.Mint(noSub)
	// The env audience lost to the flag: a token for it is refused.
	ignoredAud := is.Mint(is.Claims("https://ignored.example.test", "write:orders"))

	_, err := orders.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
	wantCode(t, "ServerInfo without token", err, codes.OK)

	_, err = orders.GetOrder(ctx, &orderpb.GetOrderRequest{Id: "ord-1"})
	wantCode(t, "GetOrder without token", err, codes.Unauthenticated)

	o, err := orders.CreateOrder(grpcjwttest.WithBearer(ctx, writer), &orderpb.CreateOrderRequest{Item: "book", Quantity: 1})
	wantCode(t, "CreateOrder with write:orders", err, codes.OK)
	if got := o.GetCreatedBy(); got != "user-123" {
		t.Errorf("CreateOrder: created_by = %q, want the token's subject %q", got, "user-123")
	}

	_, err = orders.CreateOrder(grpcjwttest.WithBearer(ctx, reader), &orderpb.CreateOrderRequest{Item: "book", Quantity: 1})
	wantCode(t, "CreateOrder without write:orders", err, codes.PermissionDenied)

	got, err := orders.GetOrder(grpcjwttest.WithBearer(ctx, reader), &orderpb.GetOrderRequest{Id: o.GetId()})
	wantCode(t, "GetOrder with a valid token", err, codes.OK)
	if got.GetId() != o.GetId() {
		t.Errorf("GetOrder: got order %q, want %q", got.GetId(), o.GetId())
	}

	o, err = orders.CreateOrder(grpcjwttest.WithBearer(ctx, clientOnly), &orderpb.CreateOrderRequest{Item: "pen", Quantity: 2})
	wantCode(t, "CreateOrder with a token without sub", err, codes.OK)
	if got := o.GetCreatedBy(); got != "client-abc" {
		t.Errorf("CreateOrder without sub: created_by = %q, want the client_id %q", got, "client-abc")
	}

	_, err = orders.GetOrder(grpcjwttest.WithBearer(ctx, ignoredAud), &orderpb.GetOrderRequest{Id: "ord-1"})
	wantCode(t, "GetOrder with the environment's (overridden) audience", err, codes.Unauthenticated)

	// Streams go through the stream interceptor under the default rule.
	stream, err := orders.WatchOrders(ctx, &orderpb.WatchOrdersRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "WatchOrders without token", err, codes.Unauthenticated)

	health, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	wantCode(t, "health check without token", err, codes.OK)
	if health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check: status %v, want SERVING", health.GetStatus())
	}

	refl, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	if err := refl.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("reflection send: %v", err)
	}
	resp, err := refl.Recv()
	wantCode(t, "reflection without token", err, codes.OK)
	var services []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	if !slices.Contains(services, orderpb.OrderService_ServiceDesc.ServiceName) {
		t.Errorf("reflection lists %v, want it to include the OrderService", services)
	}
	refl.CloseSend()
}

// TestServerExplicitJWKSURL starts without discovery: the issuer's
// discovery endpoint is never needed when -jwks-url is set.
func TestServerExplicitJWKSURL(t *testing.T) {
	is := grpcjwttest.NewIssuer(grpcjwttest.WithPath("oidc"))
	t.Cleanup(is.Close)
	addr := start(t, nil, map[string]string{
		"GRPCJWT_LISTEN":       "127.0.0.1:0",
		"GRPCJWT_ISSUER":       is.URL(),
		"GRPCJWT_JWKS_URL":     is.JWKSURL(),
		"GRPCJWT_AUDIENCE":     testAudience,
		"GRPCJWT_SCOPE_CLAIMS": "scope,permissions",
		"GRPCJWT_RULES":        "*=scope:read:orders",
	})
	orders := orderpb.NewOrderServiceClient(dial(t, addr))
	ctx := t.Context()

	// Auth0-style RBAC: the scope comes from "permissions".
	claims := is.Claims(testAudience)
	claims["permissions"] = []string{"read:orders"}
	_, err := orders.ServerInfo(grpcjwttest.WithBearer(ctx, is.Mint(claims)), &orderpb.ServerInfoRequest{})
	wantCode(t, "ServerInfo with permissions read:orders", err, codes.OK)

	_, err = orders.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
	wantCode(t, "ServerInfo without token under \"*=scope:read:orders\"", err, codes.Unauthenticated)
}

func TestDiscoveryErrors(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	fake := func(body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/openid-configuration" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	other := fake(`{"issuer":"https://evil.example","jwks_uri":"` + is.JWKSURL() + `"}`)
	huge := fake(`{"issuer":"x","pad":"` + strings.Repeat("A", maxDiscoveryBytes) + `"}`)
	garbage := fake(`<html>`)
	self := httptest.NewServer(nil)
	self.Close()

	tests := []struct {
		name, issuer, want string
	}{
		{"issuer differs", other, `names issuer "https://evil.example"`},
		// Auth0-style trailing slash configured, but this issuer has none.
		{"trailing slash differs", is.URL() + "/", "names issuer"},
		{"document too large", huge, "larger than"},
		{"not JSON", garbage, "not a JSON document"},
		{"not found", is.URL() + "/nothing", "404"},
		{"unreachable", self.URL, "discovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runErr(t, []string{"-listen", "127.0.0.1:0", "-issuer", tt.issuer, "-audience", testAudience}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDiscoveryNoJWKSURI(t *testing.T) {
	var url string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"issuer":"` + url + `"}`))
	}))
	t.Cleanup(srv.Close)
	url = srv.URL
	err := runErr(t, []string{"-issuer", url, "-audience", testAudience}, nil)
	if err == nil || !strings.Contains(err.Error(), "jwks_uri") {
		t.Errorf("run: got %v, want an error about jwks_uri", err)
	}
}

func TestConfigErrors(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	svc := "/grpcjwt.examples.orders.v1.OrderService/"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no issuer", []string{"-audience", testAudience}, "-issuer"},
		{"no audience", []string{"-issuer", is.URL(), "-audience", " , "}, "-audience"},
		{"issuer not a URL without jwks-url", []string{"-issuer", "orders", "-audience", testAudience}, "-jwks-url"},
		{"bad jwks-url", []string{"-issuer", is.URL(), "-jwks-url", "/jwks", "-audience", testAudience}, "-jwks-url"},
		{"no scope claims", []string{"-issuer", is.URL(), "-audience", testAudience, "-scope-claims", ","}, "-scope-claims"},
		{"extra argument", []string{"-issuer", is.URL(), "-audience", testAudience, "serve"}, "unexpected argument"},
		{"unknown flag", []string{"-issuer", is.URL(), "-audience", testAudience, "-bogus"}, "bogus"},
		// Malformed rules.
		{"rules empty", rulesArgs(is, " ; "), "no rule"},
		{"rule without =", rulesArgs(is, svc+"GetOrder"), "KEY=REQUIREMENTS"},
		{"rule without key", rulesArgs(is, "=public"), "KEY=REQUIREMENTS"},
		{"rule without requirement", rulesArgs(is, svc+"GetOrder="), "empty requirement"},
		{"unknown requirement", rulesArgs(is, svc+"GetOrder=admin"), "unknown requirement"},
		{"empty scope", rulesArgs(is, svc+"GetOrder=scope:"), "empty scope"},
		{"empty audience", rulesArgs(is, svc+"GetOrder=aud:"), "empty audience"},
		{"public with scope", rulesArgs(is, svc+"GetOrder=public,scope:read"), "cannot be combined"},
		{"token with aud", rulesArgs(is, svc+"GetOrder=token,aud:"+testAudience), "cannot be combined"},
		{"trailing comma", rulesArgs(is, svc+"GetOrder=scope:read,"), "empty requirement"},
		{"duplicate key", rulesArgs(is, svc+"GetOrder=token;"+svc+"GetOrder=public"), "twice"},
		{"scope with quote", rulesArgs(is, svc+"GetOrder=scope:a\"b"), "scope"},
		{"bad key", rulesArgs(is, "GetOrder=public"), "method rule"},
		{"bad service key", rulesArgs(is, "/*=public"), "service rule"},
		{"audience not accepted", rulesArgs(is, svc+"GetOrder=aud:https://billing.example.test"), "not one of -audience"},
		{"rule for health", rulesArgs(is, "/grpc.health.v1.Health/Check=scope:x"), "without authentication"},
		{"unknown method", rulesArgs(is, svc+"DeleteOrder=public"), "has no method"},
		{"unknown service", rulesArgs(is, "/orders.v2.OrderService/*=public"), "no service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runErr(t, append([]string{"-listen", "127.0.0.1:0"}, tt.args...), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func rulesArgs(is *grpcjwttest.Issuer, rules string) []string {
	return []string{"-issuer", is.URL(), "-audience", testAudience, "-rules", rules}
}

func TestParseRules(t *testing.T) {
	svc := "/grpcjwt.examples.orders.v1.OrderService/"
	tests := []struct {
		name, in string
		want     map[string]grpcjwt.Rule
	}{
		{"defaults", defaultRules, map[string]grpcjwt.Rule{
			svc + "ServerInfo":  {Public: true},
			svc + "CreateOrder": {Scopes: []string{"write:orders"}},
		}},
		{"all forms, spaces and newlines", " " + svc + "ServerInfo = public ;\n" +
			svc + "* = scope:read:orders , aud:https://a.example/api, aud:urn:b\n" +
			svc + "GetOrder=token;;\n" +
			"*=scope:a,scope:b;", map[string]grpcjwt.Rule{
			svc + "ServerInfo": {Public: true},
			svc + "*":          {Scopes: []string{"read:orders"}, Audiences: []string{"https://a.example/api", "urn:b"}},
			svc + "GetOrder":   {},
			"*":                {Scopes: []string{"a", "b"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRules(tt.in)
			if err != nil {
				t.Fatalf("parseRules: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseRules:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	err := run(t.Context(), []string{"-h"}, envFunc(nil), addrWriter(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h: got %v, want flag.ErrHelp", err)
	}
	for _, env := range []string{"GRPCJWT_ISSUER", "GRPCJWT_RULES", "GRPCJWT_SCOPE_CLAIMS"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("usage does not mention %s:\n%s", env, out.String())
		}
	}
}
