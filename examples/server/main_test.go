package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

const (
	testAudience = "https://orders.example.test"
	svc          = "/grpcjwt.examples.orders.v1.OrderService/"

	// openRules are the rules every policy document of the server holds.
	openRules = `"/grpc.health.v1.Health/*": {"public": true},
		"/grpc.reflection.v1.ServerReflection/*": {"public": true},
		"/grpc.reflection.v1alpha.ServerReflection/*": {"public": true}`
)

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

// logBuffer is run's stderr in tests: it keeps the log for the test to
// search and copies it to the test's output.
type logBuffer struct {
	out io.Writer
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.mu.Unlock()
	return b.out.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func envFunc(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// start runs the server with args and env until the test ends, and returns
// its address and its log. The cleanup cancels run's ctx and checks that
// run returns nil.
func start(t *testing.T, args []string, env map[string]string) (string, *logBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(addrWriter, 1)
	logs := &logBuffer{out: t.Output()}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, envFunc(env), addrs, logs) }()
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
		return addr, logs
	case err := <-done:
		cancel()
		t.Fatalf("run failed before listening: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatalf("run did not start listening")
	}
	return "", nil
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

// writePolicy writes a policy document holding openRules and rules to
// path, atomically, so that a watcher never reads half of it.
func writePolicy(t *testing.T, path, rules string) {
	t.Helper()
	doc := `{"rules": {` + openRules
	if rules != "" {
		doc += ",\n" + rules
	}
	writeFile(t, path, doc+"}}")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// policyFile writes a policy document with openRules and rules to a new
// file and returns its path.
func policyFile(t *testing.T, rules string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.json")
	writePolicy(t, path, rules)
	return path
}

// eventually polls cond until it holds, failing the test after 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listServices asks server reflection for the services, as
// "grpcurl -plaintext ADDR list" does, with no token.
func listServices(ctx context.Context, cc *grpc.ClientConn) ([]string, error) {
	refl, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer refl.CloseSend()
	if err := refl.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{},
	}); err != nil {
		return nil, err
	}
	resp, err := refl.Recv()
	if err != nil {
		return nil, err
	}
	var services []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	return services, nil
}

func healthCheck(ctx context.Context, cc *grpc.ClientConn) error {
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		err = errors.New("status " + resp.GetStatus().String() + ", want SERVING")
	}
	return err
}

// TestServer runs the server with the embedded policy against an embedded
// issuer, discovering its keys, and calls it as a client would.
func TestServer(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	// The issuer comes from the environment, the rest from flags.
	addr, _ := start(t,
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

	// Streams go through the stream interceptor under the "*" rule.
	stream, err := orders.WatchOrders(ctx, &orderpb.WatchOrdersRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "WatchOrders without token", err, codes.Unauthenticated)

	wantCode(t, "health check without token", healthCheck(ctx, cc), codes.OK)

	services, err := listServices(ctx, cc)
	wantCode(t, "reflection ListServices without token", err, codes.OK)
	for _, want := range []string{orderpb.OrderService_ServiceDesc.ServiceName, healthpb.Health_ServiceDesc.ServiceName} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v, want it to include %s", services, want)
		}
	}
}

// TestDefaultPolicy checks the rule the embedded policy.json gives each
// method of the server.
func TestDefaultPolicy(t *testing.T) {
	p, err := grpcjwt.ParsePolicy(defaultPolicy)
	if err != nil {
		t.Fatalf("ParsePolicy(policy.json): %v", err)
	}
	tests := []struct {
		method     string
		wantPublic bool
		wantScopes []string
	}{
		{svc + "ServerInfo", true, nil},
		{svc + "CreateOrder", false, []string{"write:orders"}},
		{svc + "GetOrder", false, nil},
		{svc + "WatchOrders", false, nil},
		{svc + "ImportOrders", false, nil},
		{svc + "Chat", false, nil},
		{"/grpc.health.v1.Health/Check", true, nil},
		{"/grpc.health.v1.Health/Watch", true, nil},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true, nil},
		{"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", true, nil},
	}
	for _, tt := range tests {
		key, r := p.Match(tt.method)
		if r.Public != tt.wantPublic || !slices.Equal(r.Scopes, tt.wantScopes) ||
			len(r.Audiences)+len(r.AnyScopes)+len(r.Claims)+len(r.Issuers) > 0 || r.CertificateBound {
			t.Errorf("%s: rule %q is %+v, want public %v, scopes %v and nothing else", tt.method, key, r, tt.wantPublic, tt.wantScopes)
		}
	}
}

// TestServerJWKSURL starts without discovery (-jwks-url: the issuer's
// metadata is never needed) and with a -policy file, both from the
// environment.
func TestServerJWKSURL(t *testing.T) {
	is := grpcjwttest.NewIssuer(grpcjwttest.WithPath("oidc"))
	t.Cleanup(is.Close)
	addr, _ := start(t, nil, map[string]string{
		"GRPCJWT_LISTEN":       "127.0.0.1:0",
		"GRPCJWT_ISSUER":       is.URL(),
		"GRPCJWT_JWKS_URL":     is.JWKSURL(),
		"GRPCJWT_AUDIENCE":     testAudience,
		"GRPCJWT_SCOPE_CLAIMS": "scope,permissions",
		"GRPCJWT_POLICY":       policyFile(t, `"*": {"scopes": ["read:orders"]}`),
	})
	cc := dial(t, addr)
	orders := orderpb.NewOrderServiceClient(cc)
	ctx := t.Context()

	// Auth0-style RBAC: the scope comes from "permissions".
	claims := is.Claims(testAudience)
	claims["permissions"] = []string{"read:orders"}
	_, err := orders.ServerInfo(grpcjwttest.WithBearer(ctx, is.Mint(claims)), &orderpb.ServerInfoRequest{})
	wantCode(t, "ServerInfo with permissions read:orders", err, codes.OK)

	_, err = orders.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
	wantCode(t, `ServerInfo without token under "*": {"scopes": ["read:orders"]}`, err, codes.Unauthenticated)

	_, err = orders.ServerInfo(grpcjwttest.WithBearer(ctx, is.Mint(is.Claims(testAudience))), &orderpb.ServerInfoRequest{})
	wantCode(t, "ServerInfo with a token without read:orders", err, codes.PermissionDenied)

	wantCode(t, "health check without token", healthCheck(ctx, cc), codes.OK)
	_, err = listServices(ctx, cc)
	wantCode(t, "reflection without token", err, codes.OK)
}

// TestPolicyFileRules enforces a stricter policy file, with alternative
// scopes and a role claim, over real gRPC calls.
func TestPolicyFileRules(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	path := policyFile(t, `
		"`+svc+`ServerInfo": {"public": true},
		"`+svc+`*": {"any_scopes": ["read:orders", "admin"]},
		"`+svc+`CreateOrder": {"scopes": ["write:orders"], "claims": {"realm_access.roles": ["order-clerk", "order-admin"]}}`)
	addr, _ := start(t, []string{"-listen", "127.0.0.1:0", "-issuer", is.URL(), "-audience", testAudience, "-policy", path}, nil)
	orders := orderpb.NewOrderServiceClient(dial(t, addr))
	ctx := t.Context()

	token := func(roles []string, scopes ...string) context.Context {
		c := is.Claims(testAudience, scopes...)
		if roles != nil {
			c["realm_access"] = map[string]any{"roles": roles}
		}
		return grpcjwttest.WithBearer(ctx, is.Mint(c))
	}
	create := &orderpb.CreateOrderRequest{Item: "book", Quantity: 1}

	_, err := orders.CreateOrder(token(nil, "write:orders"), create)
	wantCode(t, "CreateOrder with write:orders but no realm_access", err, codes.PermissionDenied)
	_, err = orders.CreateOrder(token([]string{"viewer"}, "write:orders"), create)
	wantCode(t, "CreateOrder with write:orders and role viewer", err, codes.PermissionDenied)
	_, err = orders.CreateOrder(token([]string{"order-admin"}, "read:orders"), create)
	wantCode(t, "CreateOrder with role order-admin but without write:orders", err, codes.PermissionDenied)
	o, err := orders.CreateOrder(token([]string{"viewer", "order-clerk"}, "write:orders"), create)
	wantCode(t, "CreateOrder with write:orders and role order-clerk", err, codes.OK)

	get := &orderpb.GetOrderRequest{Id: o.GetId()}
	_, err = orders.GetOrder(token(nil, "read:orders"), get)
	wantCode(t, "GetOrder with read:orders", err, codes.OK)
	_, err = orders.GetOrder(token(nil, "admin"), get)
	wantCode(t, "GetOrder with admin", err, codes.OK)
	_, err = orders.GetOrder(token([]string{"order-admin"}, "write:orders"), get)
	wantCode(t, "GetOrder with neither read:orders nor admin", err, codes.PermissionDenied)
	_, err = orders.GetOrder(ctx, get)
	wantCode(t, "GetOrder without token", err, codes.Unauthenticated)

	_, err = orders.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
	wantCode(t, "ServerInfo without token", err, codes.OK)
}

// TestPolicyReload rewrites the -policy file while the server runs: a
// valid change takes effect, an invalid one is ignored, and one that the
// start-up checks would refuse takes effect too (the watcher cannot refuse
// it) but is logged.
func TestPolicyReload(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	path := policyFile(t, `"`+svc+`ServerInfo": {"public": true}`)
	addr, logs := start(t, []string{"-listen", "127.0.0.1:0", "-issuer", is.URL(), "-audience", testAudience,
		"-policy", path, "-policy-interval", "1s"}, nil)
	cc := dial(t, addr)
	orders := orderpb.NewOrderServiceClient(cc)
	ctx := t.Context()
	plain := grpcjwttest.WithBearer(ctx, is.Mint(is.Claims(testAudience)))
	reader := grpcjwttest.WithBearer(ctx, is.Mint(is.Claims(testAudience, "read:orders")))
	get := &orderpb.GetOrderRequest{Id: "ord-none"}

	// NotFound: the call got through to the handler.
	_, err := orders.GetOrder(plain, get)
	wantCode(t, "GetOrder with a valid token before the reload", err, codes.NotFound)

	writePolicy(t, path, `"`+svc+`ServerInfo": {"public": true}, "`+svc+`GetOrder": {"scopes": ["read:orders"]}`)
	eventually(t, "GetOrder needs read:orders after the reload", func() bool {
		_, err := orders.GetOrder(plain, get)
		return status.Code(err) == codes.PermissionDenied
	})
	_, err = orders.GetOrder(reader, get)
	wantCode(t, "GetOrder with read:orders after the reload", err, codes.NotFound)

	// An invalid document is logged and the last good policy stays.
	writeFile(t, path, `{"rules": {"`+svc+`GetOrder": {"Public": true}}}`)
	eventually(t, "the invalid document is logged", func() bool { return strings.Contains(logs.String(), "policy file rejected") })
	_, err = orders.GetOrder(plain, get)
	wantCode(t, "GetOrder with a valid token after an invalid document", err, codes.PermissionDenied)

	// A valid document that leaves the health service to "*".
	writeFile(t, path, `{"rules": {"*": {"scopes": ["read:orders"]}}}`)
	eventually(t, "the reloaded policy's check failure is logged", func() bool {
		return strings.Contains(logs.String(), "fails the start-up checks")
	})
	wantCode(t, "health check without token after a reload that protects it", healthCheck(ctx, cc), codes.Unauthenticated)
}

func TestDiscoveryErrors(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	fake := func(body func(url string) string) string {
		var url string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/openid-configuration" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body(url)))
		}))
		t.Cleanup(srv.Close)
		url = srv.URL
		return url
	}
	other := fake(func(string) string { return `{"issuer":"https://evil.example","jwks_uri":"` + is.JWKSURL() + `"}` })
	garbage := fake(func(string) string { return `<html>` })
	noJWKS := fake(func(url string) string { return `{"issuer":"` + url + `"}` })
	closed := httptest.NewServer(nil)
	closed.Close()

	tests := []struct {
		name, issuer string
		want         []string
	}{
		{"issuer differs", other, []string{`names the issuer "https://evil.example"`, `not the configured "` + other + `"`}},
		// Auth0-style trailing slash configured, but this issuer has none.
		{"trailing slash differs", is.URL() + "/", []string{`names the issuer "` + is.URL() + `"`, `not the configured "` + is.URL() + `/"`, "trailing slash"}},
		{"not JSON", garbage, []string{"not a JSON object"}},
		{"no jwks_uri", noJWKS, []string{"no jwks_uri"}},
		{"not found", is.URL() + "/nothing", []string{"no metadata document", "404"}},
		{"unreachable", closed.URL, []string{"failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runErr(t, []string{"-listen", "127.0.0.1:0", "-issuer", tt.issuer, "-audience", testAudience}, nil)
			if err == nil {
				t.Fatalf("run: got nil, want a discovery error")
			}
			for _, want := range slices.Concat([]string{"Discover"}, tt.want) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("run: got %v, want an error containing %q", err, want)
				}
			}
		})
	}
}

// TestPolicyErrors: a policy the server cannot serve safely is refused at
// start-up.
func TestPolicyErrors(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	// The error ParsePolicy gives for a member name in the wrong case.
	badDoc := `{"rules": {"` + svc + `GetOrder": {"Public": true}}}`
	_, parseErr := grpcjwt.ParsePolicy([]byte(badDoc))
	if parseErr == nil {
		t.Fatal("ParsePolicy accepted a document with \"Public\"")
	}
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.json")
	writeFile(t, badFile, badDoc)

	tests := []struct {
		name string
		file string
		want string
	}{
		{"invalid document", badFile, parseErr.Error()},
		{"missing file", filepath.Join(dir, "none.json"), "no such file"},
		{"public rule with a scope", policyFile(t, `"`+svc+`GetOrder": {"public": true, "scopes": ["read:orders"]}`), "a public rule cannot require"},
		{"rule audience outside -audience", policyFile(t, `"`+svc+`*": {"audiences": ["https://billing.example.test"]}`),
			`audience "https://billing.example.test" is not one of -audience`},
		{"rule naming no method", policyFile(t, `"`+svc+`DeleteOrder": {"public": true}`), `has no method "DeleteOrder"`},
		{"rule naming no service", policyFile(t, `"/orders.v2.OrderService/*": {"public": true}`), `no service "orders.v2.OrderService"`},
		{"health rule needing a scope", policyFile(t, `"/grpc.health.v1.Health/Check": {"scopes": ["probe"]}`),
			`rule "/grpc.health.v1.Health/Check" makes /grpc.health.v1.Health/Check need a token`},
	}
	noOpen := filepath.Join(dir, "no-open.json")
	writeFile(t, noOpen, `{"rules": {"*": {}}}`)
	tests = append(tests, struct{ name, file, want string }{"health and reflection left to *", noOpen, `rule "*" makes /grpc.health.v1.Health/`})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runErr(t, []string{"-listen", "127.0.0.1:0", "-issuer", is.URL(), "-audience", testAudience, "-policy", tt.file}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "-policy "+tt.file) {
				t.Errorf("run: got %v, want an error naming -policy %s and containing %q", err, tt.file, tt.want)
			}
		})
	}
	// Reflection's services are checked as well as health's.
	err := runErr(t, []string{"-listen", "127.0.0.1:0", "-issuer", is.URL(), "-audience", testAudience, "-policy", noOpen}, nil)
	for _, want := range []string{"/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("run: got %v, want an error naming %s", err, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	t.Cleanup(is.Close)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no issuer", []string{"-audience", testAudience}, nil, "-issuer"},
		{"no audience", []string{"-issuer", is.URL(), "-audience", " , "}, nil, "-audience"},
		{"issuer not a URL without jwks-url", []string{"-issuer", "orders", "-audience", testAudience}, nil, "-jwks-url"},
		{"bad jwks-url", []string{"-issuer", is.URL(), "-jwks-url", "/jwks", "-audience", testAudience}, nil, "-jwks-url"},
		{"no scope claims", []string{"-issuer", is.URL(), "-audience", testAudience, "-scope-claims", ","}, nil, "-scope-claims"},
		{"policy interval under 1s", []string{"-issuer", is.URL(), "-audience", testAudience, "-policy", "p.json", "-policy-interval", "500ms"}, nil, "under one second"},
		{"bad interval in env", []string{"-issuer", is.URL(), "-audience", testAudience}, map[string]string{"GRPCJWT_POLICY_INTERVAL": "often"}, "GRPCJWT_POLICY_INTERVAL"},
		{"extra argument", []string{"-issuer", is.URL(), "-audience", testAudience, "serve"}, nil, "unexpected argument"},
		{"unknown flag", []string{"-issuer", is.URL(), "-audience", testAudience, "-rules", "*=token"}, nil, "-rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runErr(t, append([]string{"-listen", "127.0.0.1:0"}, tt.args...), tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: got %v, want an error containing %q", err, tt.want)
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
	for _, env := range []string{"GRPCJWT_ISSUER", "GRPCJWT_POLICY", "GRPCJWT_POLICY_INTERVAL", "GRPCJWT_SCOPE_CLAIMS"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("usage does not mention %s:\n%s", env, out.String())
		}
	}
}
