package connectjwt_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"connectrpc.com/connect"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/connectjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// A connect handler behind the Interceptor and its Middleware, called in
// the gRPC protocol without a token and with one. The rules are those a
// grpc-go server of the same service would use.
func ExampleNewInterceptor() {
	ctx := context.Background()
	issuer := grpcjwttest.NewIssuer() // stands for the identity provider
	defer issuer.Close()
	keys, err := grpcjwt.NewRemoteKeyset(ctx, issuer.JWKSURL())
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	verifier, err := grpcjwt.NewVerifier(keys, grpcjwt.WithIssuer(issuer.URL()), grpcjwt.WithAudience("https://api.example.com"))
	if err != nil {
		log.Fatal(err)
	}
	const procedure = "/grpc.testing.TestService/UnaryCall"
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{procedure: {Scopes: []string{"write:orders"}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := connectjwt.CheckProcedures(policy, procedure); err != nil {
		log.Fatal(err) // a rule that names no procedure
	}

	auth := connectjwt.NewInterceptor(verifier, grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(slog.New(slog.DiscardHandler)))
	handler := connect.NewUnaryHandler(procedure,
		func(ctx context.Context, _ *connect.Request[testpb.SimpleRequest]) (*connect.Response[testpb.SimpleResponse], error) {
			claims, _ := grpcjwt.ClaimsFromContext(ctx)
			return connect.NewResponse(&testpb.SimpleResponse{Username: claims.Subject}), nil
		},
		connect.WithInterceptors(auth),
	)
	mux := http.NewServeMux()
	mux.Handle(procedure, handler)
	srv := httptest.NewUnstartedServer(auth.Middleware(mux))
	srv.EnableHTTP2 = true // gRPC needs HTTP/2
	srv.StartTLS()
	defer srv.Close()

	client := connect.NewClient[testpb.SimpleRequest, testpb.SimpleResponse](srv.Client(), srv.URL+procedure, connect.WithGRPC())
	_, err = client.CallUnary(ctx, connect.NewRequest(&testpb.SimpleRequest{}))
	var ce *connect.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Code(), ce.Message(), "|", ce.Meta().Get("WWW-Authenticate"))
	}

	req := connect.NewRequest(&testpb.SimpleRequest{})
	req.Header().Set("Authorization", "Bearer "+issuer.Mint(issuer.Claims("https://api.example.com", "write:orders")))
	res, err := client.CallUnary(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ok", res.Msg.GetUsername())
	// Output:
	// unauthenticated missing bearer token | Bearer
	// ok user-123
}

// CheckServices takes the services' protobuf descriptors, which connect's
// generated code imports; a rule with a typo fails at start-up.
func ExampleCheckServices() {
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		"/grpc.testing.TestService/UnaryCall":       {Scopes: []string{"write:orders"}},
		"/grpc.testing.TestService/StreamingOutput": {Scopes: []string{"read:orders"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	err = connectjwt.CheckServices(policy, testpb.File_grpc_testing_test_proto.Services().ByName("TestService"))
	fmt.Println(err)
	// Output:
	// grpcjwt: rule "/grpc.testing.TestService/StreamingOutput": service "grpc.testing.TestService" has no method "StreamingOutput"
}
