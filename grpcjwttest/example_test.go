package grpcjwttest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// An Issuer mints tokens that a verifier of its JWK Set accepts.
func ExampleNewIssuer() {
	is := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("ES384"), grpcjwttest.WithPath("/oidc"))
	defer is.Close()

	keys, err := grpcjwt.NewIssuerKeyset(context.Background(), is.URL()) // discovery, then the JWK Set
	if err != nil {
		fmt.Println(err)
		return
	}
	defer keys.Close()
	verifier, err := grpcjwt.NewVerifier(keys, grpcjwt.WithAudience("https://api.example.com"))
	if err != nil {
		fmt.Println(err)
		return
	}

	claims, err := verifier.Verify(context.Background(), is.Mint(is.Claims("https://api.example.com", "read:orders")))
	fmt.Println(claims.Subject, claims.Scopes, err)

	// Claims is a map: change it to build tokens that must be refused.
	expired := is.Claims("https://api.example.com")
	expired["exp"] = 1
	_, err = verifier.Verify(context.Background(), is.Mint(expired))
	fmt.Println(errors.Is(err, grpcjwt.ErrExpired))
	// Output:
	// user-123 [read:orders] <nil>
	// true
}

// exampleT stands in, in these examples, for the *testing.T that a test
// function passes: it runs the cleanups when the example ends. (It embeds
// testing.TB, which a type outside package testing cannot implement
// otherwise, and answers only the methods grpcjwttest calls.)
type exampleT struct {
	testing.TB
	cleanups []func()
}

func newExampleT() *exampleT                          { return &exampleT{} }
func (t *exampleT) Helper()                           {}
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// NewVerifier builds, in one call, a verifier that trusts the issuer; in a
// test, pass the test's t.
func ExampleNewVerifier() {
	t := newExampleT() // in a test: func TestOrders(t *testing.T) { ... }
	defer t.done()
	is := grpcjwttest.NewIssuer()
	defer is.Close()

	verifier := grpcjwttest.NewVerifier(t, is, "https://api.example.com", grpcjwt.WithScopeClaims("scope", "scp"))
	claims, err := verifier.Verify(context.Background(), is.Mint(is.Claims("https://api.example.com", "write:orders")))
	fmt.Println(claims.HasScope("write:orders"), err)
	// Output: true <nil>
}

// Rotate publishes a new key; a keyset learns it on the first token that
// names it, with one fetch of the JWK Set.
func ExampleIssuer_Rotate() {
	t := newExampleT()
	defer t.done()
	is := grpcjwttest.NewIssuer()
	defer is.Close()
	verifier := grpcjwttest.NewVerifier(t, is, "api")

	before := is.JWKSHits()
	is.Rotate()
	_, err := verifier.Verify(context.Background(), is.Mint(is.Claims("api")))
	fmt.Println(err, is.JWKSHits()-before)
	// Output: <nil> 1
}

// SetFailure makes the JWK Set endpoint fail: a verifier keeps the keys it
// holds.
func ExampleIssuer_SetFailure() {
	t := newExampleT()
	defer t.done()
	is := grpcjwttest.NewIssuer()
	defer is.Close()
	verifier := grpcjwttest.NewVerifier(t, is, "api", grpcjwt.WithTokenCache(0, 0, 0))

	is.SetFailure(grpcjwttest.Fail500)
	_, err := verifier.Verify(context.Background(), is.Mint(is.Claims("api")))
	fmt.Println(err)
	// Output: <nil>
}

// Serve runs a gRPC server over bufconn; WithBearer sends a token.
func ExampleServe() {
	t := newExampleT()
	defer t.done()
	is := grpcjwttest.NewIssuer()
	defer is.Close()
	verifier := grpcjwttest.NewVerifier(t, is, "https://orders.example.test")

	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(verifier)))
	orderpb.RegisterOrderServiceServer(srv, orderpb.NewServer())
	client := orderpb.NewOrderServiceClient(grpcjwttest.Serve(t, srv))

	_, err := client.ServerInfo(context.Background(), &orderpb.ServerInfoRequest{})
	fmt.Println(status.Code(err))
	ctx := grpcjwttest.WithBearer(context.Background(), is.Mint(is.Claims("https://orders.example.test")))
	_, err = client.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
	fmt.Println(status.Code(err))
	// Output:
	// Unauthenticated
	// OK
}
