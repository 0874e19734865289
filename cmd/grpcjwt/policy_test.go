package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
)

// writeDescriptorSet writes a FileDescriptorSet of files, as protoc
// --descriptor_set_out does, binary or (for a name ending in .json) JSON.
func writeDescriptorSet(t *testing.T, name string, files ...protoreflect.FileDescriptor) string {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range files {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	marshal := proto.Marshal
	if strings.HasSuffix(name, ".json") {
		marshal = protojson.Marshal
	}
	b, err := marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serve starts srv on a 127.0.0.1 listener and returns its address.
func serve(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// orderServer returns a server with OrderService and health registered.
func orderServer(opts ...grpc.ServerOption) *grpc.Server {
	srv := grpc.NewServer(opts...)
	orderpb.RegisterOrderServiceServer(srv, &orderpb.Server{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	return srv
}

// typoPolicy has a rule for a method OrderService lacks and one for a
// service that does not exist.
const typoPolicy = `{"rules": {
  "/grpcjwt.examples.orders.v1.OrderService/ServerInfo":  {"public": true},
  "/grpcjwt.examples.orders.v1.OrderService/DeleteOrder": {"scopes": ["admin"]},
  "/orders.v1.Billing/*":                                 {"any_scopes": ["billing", "admin"]},
  "*":                                                    {}
}}`

func TestPolicyValidate(t *testing.T) {
	policy := writeFile(t, "policy.json", testPolicy)
	r := runCmd(t, "", "policy", "-file", policy)
	r.expect(t, exitOK, []string{
		policy + ": valid, 3 rules\n",
		"no -descriptors or -server: the rules were not checked against any method",
	})
	r.row(t, `/grpcjwt.examples.orders.v1.OrderService/* {"audiences":["https://api.example.com"]}`)
	r.row(t, `/grpcjwt.examples.orders.v1.OrderService/CreateOrder {"scopes":["write:orders"]}`)
	r.row(t, `/grpcjwt.examples.orders.v1.OrderService/ServerInfo {"public":true}`)

	// The document is the positional argument too.
	r = runCmd(t, "", "policy", policy)
	r.expect(t, exitOK, []string{policy + ": valid, 3 rules\n"})

	for _, tc := range []struct {
		name, doc string
		stdout    []string
	}{
		{
			name: "several errors",
			doc: `{"rules": {"OrderService/Get": {}, "/a.B/C": {"public": true, "scopes": ["x"]},
			       "/a.B/D": {"scopes": ["read orders"]}}}`,
			stdout: []string{
				`  grpcjwt: rule "/a.B/C": a public rule cannot require audiences, issuers, scopes, claims or certificate binding`,
				`  grpcjwt: rule "/a.B/D": scope "read orders" is not a scope-token`,
				`  grpcjwt: rule "OrderService/Get": a method rule is "/pkg.Service/Method"`,
			},
		},
		{
			name:   "case of a member",
			doc:    `{"rules": {"/a.B/C": {"Scopes": ["x"]}}}`,
			stdout: []string{`  grpcjwt: policy rule "/a.B/C": unknown member "Scopes" (names match exactly: "scopes")`},
		},
		{
			name:   "not JSON",
			doc:    `{"rules": {"/a.B/C": {"public": true},}}`,
			stdout: []string{"  grpcjwt: policy document: invalid character '}'"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "policy.json", tc.doc)
			r := runCmd(t, "", "policy", "-file", path)
			r.expect(t, exitRefused, append([]string{"INVALID: " + path + "\n"}, tc.stdout...))
		})
	}

	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no file", []string{"policy"}, "give the policy document: -file POLICY"},
		{"missing file", []string{"policy", "-file", "/nonexistent/policy.json"}, "no such file"},
		{"plaintext alone", []string{"policy", "-file", policy, "-plaintext"}, "-plaintext goes with -server"},
		{"token alone", []string{"policy", "-file", policy, "-token", "x"}, "-token goes with -server"},
		{"two documents", []string{"policy", "-file", policy, policy}, "unexpected arguments"},
		{"not a descriptor set", []string{"policy", "-file", policy, "-descriptors", policy}, "is not a FileDescriptorSet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, "", tc.args...)
			r.expect(t, exitUsage, nil, tc.stderr)
		})
	}
}

func TestPolicyDescriptors(t *testing.T) {
	orders := writeDescriptorSet(t, "orders.binpb", orderpb.File_orders_proto)
	policy := writeFile(t, "policy.json", testPolicy)
	r := runCmd(t, "", "policy", "-file", policy, "-descriptors", orders)
	r.expect(t, exitOK, []string{
		"\n6 methods in 1 service, from " + orders + "\n",
		"\nOK: every rule names a method\n",
	})
	r.row(t, "METHOD RULE REQUIRES")
	r.row(t, `/grpcjwt.examples.orders.v1.OrderService/Chat /grpcjwt.examples.orders.v1.OrderService/* {"audiences":["https://api.example.com"]}`)
	r.row(t, `/grpcjwt.examples.orders.v1.OrderService/CreateOrder /grpcjwt.examples.orders.v1.OrderService/CreateOrder {"scopes":["write:orders"]}`)
	r.row(t, `/grpcjwt.examples.orders.v1.OrderService/ServerInfo /grpcjwt.examples.orders.v1.OrderService/ServerInfo {"public":true}`)
	r.absent(t, "FAIL", "note:")

	// Rules naming no method fail, with the library's words.
	typos := writeFile(t, "typos.json", typoPolicy)
	health := writeDescriptorSet(t, "health.json", healthpb.File_grpc_health_v1_health_proto)
	r = runCmd(t, "", "policy", "-file", typos, "-descriptors", orders+","+health)
	r.expect(t, exitRefused, []string{
		typos + ": valid, 4 rules\n",
		"\n9 methods in 2 services, from " + orders + ", " + health + "\n",
		"\nFAIL: 2 rules name no method:\n",
		`  grpcjwt: rule "/grpcjwt.examples.orders.v1.OrderService/DeleteOrder": service "grpcjwt.examples.orders.v1.OrderService" has no method "DeleteOrder"` + "\n",
		`  grpcjwt: rule "/orders.v1.Billing/*": no service "orders.v1.Billing" is registered` + "\n",
	})
	r.absent(t, "OK:")
	r.row(t, "/grpc.health.v1.Health/Watch * {} (a valid token for one of the verifier's audiences)")
	r.row(t, "/grpcjwt.examples.orders.v1.OrderService/GetOrder * {}")

	// Without a default rule, a method no rule names gets the built-in one.
	r = runCmd(t, "", "policy", "-file", policy, "-descriptors", health)
	r.row(t, "/grpc.health.v1.Health/Check (built-in default: valid token required) {}")
	r.expect(t, exitRefused, []string{"note: no rule names 3 of these methods: they need a valid token (the built-in default),"})

	// A service rule that every method escapes is noted.
	shadowed := writeFile(t, "shadowed.json", `{"rules": {
	  "/grpc.health.v1.Health/*": {"public": true},
	  "/grpc.health.v1.Health/Check": {"public": true},
	  "/grpc.health.v1.Health/List": {"public": true},
	  "/grpc.health.v1.Health/Watch": {"public": true}}}`)
	r = runCmd(t, "", "policy", "-file", shadowed, "-descriptors", health)
	r.expect(t, exitOK, []string{
		`note: rule "/grpc.health.v1.Health/*" applies to none of these methods: each has a more specific rule`,
		"OK: every rule names a method",
	})
}

// TestPolicyServer lists the methods of real servers through reflection.
func TestPolicyServer(t *testing.T) {
	typos := writeFile(t, "typos.json", typoPolicy)

	v1 := orderServer()
	reflection.Register(v1)
	addr := serve(t, v1)
	r := runCmd(t, "", "policy", "-file", typos, "-server", addr, "-plaintext")
	r.expect(t, exitRefused, []string{
		"\n11 methods in 4 services, from " + addr + " (server reflection v1)\n",
		`service "grpcjwt.examples.orders.v1.OrderService" has no method "DeleteOrder"`,
		`no service "orders.v1.Billing" is registered`,
	})
	r.row(t, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo * {}")
	r.row(t, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo * {}")
	r.row(t, "/grpcjwt.examples.orders.v1.OrderService/ImportOrders * {}")

	// A server with only the older reflection service.
	old := orderServer()
	reflectionv1alpha.RegisterServerReflectionServer(old, reflection.NewServer(reflection.ServerOptions{Services: old}))
	addr = serve(t, old)
	policy := writeFile(t, "policy.json", testPolicy)
	r = runCmd(t, "", "policy", "-file", policy, "-server", addr, "-plaintext")
	r.expect(t, exitOK, []string{
		"\n10 methods in 3 services, from " + addr + " (server reflection v1alpha)\n",
		"OK: every rule names a method",
	})

	// A server without reflection, and no server at all.
	addr = serve(t, orderServer())
	r = runCmd(t, "", "policy", "-file", policy, "-server", addr, "-plaintext")
	r.expect(t, exitUsage, nil, "grpcjwt policy: server reflection at "+addr+": the server has no reflection service")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	r = runCmd(t, "", "policy", "-file", policy, "-server", closed, "-plaintext", "-timeout", "2s")
	r.expect(t, exitUsage, nil, "grpcjwt policy: server reflection at "+closed+":", "Unavailable")
}

// TestPolicyServerWithToken reaches a reflection service that grpcjwt
// protects like every other.
func TestPolicyServerWithToken(t *testing.T) {
	is := newIssuer(t)
	keys, err := grpcjwt.NewRemoteKeyset(t.Context(), is.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	v, err := grpcjwt.NewVerifier(keys, grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(testAudience))
	if err != nil {
		t.Fatal(err)
	}
	quiet := grpcjwt.WithLogger(slog.New(slog.DiscardHandler))
	srv := orderServer(grpc.StreamInterceptor(grpcjwt.StreamServerInterceptor(v, quiet)))
	reflection.Register(srv)
	addr := serve(t, srv)
	policy := writeFile(t, "policy.json", testPolicy)

	r := runCmd(t, "", "policy", "-file", policy, "-server", addr, "-plaintext")
	r.expect(t, exitUsage, nil, "Unauthenticated", "missing bearer token")

	tok := is.Mint(is.Claims(testAudience))
	r = runCmd(t, tok+"\n", "policy", "-file", policy, "-server", addr, "-plaintext", "-token", "-")
	r.expect(t, exitOK, []string{fmt.Sprintf("from %s (server reflection v1)", addr), "OK: every rule names a method"})
}

// TestDescriptorMethods covers a service without methods.
func TestDescriptorMethods(t *testing.T) {
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("empty.proto"),
		Package: proto.String("empty.v1"),
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("Nothing")}},
	}
	got := fileMethods(fd, nil)
	if len(got) != 1 || got[0] != "/empty.v1.Nothing/" {
		t.Errorf("fileMethods = %q, want [/empty.v1.Nothing/]", got)
	}
}
