package grpcjwt_test

import (
	"context"
	"fmt"
	"log"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcjwt/grpcjwt"
)

// A remote keyset for a provider's JWKS, a verifier for one API, and both
// interceptors with per-method rules.
func ExampleUnaryServerInterceptor() {
	ctx := context.Background()
	keys, err := grpcjwt.NewRemoteKeyset(ctx, "https://tenant.logto.app/oidc/jwks")
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	verifier, err := grpcjwt.NewVerifier(keys,
		grpcjwt.WithIssuer("https://tenant.logto.app/oidc"),
		grpcjwt.WithAudience("https://api.example.com"),
	)
	if err != nil {
		log.Fatal(err)
	}
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		"/grpc.health.v1.Health/*":            {Public: true},
		"/orders.v1.OrderService/CreateOrder": {Scopes: []string{"write:orders"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(verifier, grpcjwt.WithPolicy(policy))),
		grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(verifier, grpcjwt.WithPolicy(policy))),
	)
	_ = srv // register services, call policy.CheckServer(srv), then srv.Serve(lis)
}

// With OpenID Connect discovery, the issuer URL is all a verifier needs
// besides its audience.
func ExampleNewIssuerKeyset() {
	ctx := context.Background()
	keys, err := grpcjwt.NewIssuerKeyset(ctx, "https://tenant.logto.app/oidc")
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	verifier, err := grpcjwt.NewVerifier(keys, grpcjwt.WithAudience("https://api.example.com"))
	if err != nil {
		log.Fatal(err)
	}
	_ = verifier
}

// CheckServer catches a rule that names no registered method, so that a
// typo fails at start-up instead of leaving the method on the default rule.
func ExamplePolicy_CheckServer() {
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		"/grpc.health.v1.Health/Check": {Public: true},
		"/grpc.health.v1.Health/Wacth": {Public: true}, // a typo
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(policy.CheckServer(srv))
	// Output:
	// grpcjwt: rule "/grpc.health.v1.Health/Wacth": service "grpc.health.v1.Health" has no method "Wacth"
}

// NewPolicy reports every malformed key at once.
func ExampleNewPolicy() {
	_, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		"orders.v1.OrderService/Get": {},
		"/orders.v1.OrderService/*":  {Public: true, Scopes: []string{"read"}},
	})
	fmt.Println(err)
	// Output:
	// grpcjwt: rule "/orders.v1.OrderService/*": a public rule cannot require audiences, issuers, scopes, claims or certificate binding
	// grpcjwt: rule "orders.v1.OrderService/Get": a method rule is "/pkg.Service/Method"
}

// AuthFunc plugs grpcjwt into go-grpc-middleware's auth interceptors.
func ExampleAuthFunc() {
	var verifier *grpcjwt.Verifier // from grpcjwt.NewVerifier
	if verifier == nil {
		return
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(grpcjwt.AuthFunc(verifier))),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(grpcjwt.AuthFunc(verifier))),
	)
	_ = srv
}

// PreAuthHandle turns away calls without a well-formed bearer token before
// gRPC reads their request message.
func ExamplePreAuthHandle() {
	var verifier *grpcjwt.Verifier // from grpcjwt.NewVerifier
	if verifier == nil {
		return
	}
	srv := grpc.NewServer(
		grpc.InTapHandle(grpcjwt.PreAuthHandle(verifier)),
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(verifier)),
	)
	_ = srv
}
