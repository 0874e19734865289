package grpcjwt_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// tapServer counts the unary calls that reach it.
type tapServer struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (s *tapServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	return &testpb.SimpleResponse{}, nil
}

func (s *tapServer) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.calls.Add(1)
	return &testpb.Empty{}, nil
}

// tapServe serves a TestService with only the pre-authentication handle
// (withInterceptor adds the unary interceptor behind it).
func tapServe(tb testing.TB, v *grpcjwt.Verifier, withTap, withInterceptor bool, opts ...grpcjwt.Option) (testpb.TestServiceClient, *tapServer) {
	tb.Helper()
	var sopts []grpc.ServerOption
	if withTap {
		sopts = append(sopts, grpc.InTapHandle(grpcjwt.PreAuthHandle(v, opts...)))
	}
	if withInterceptor {
		sopts = append(sopts, grpc.UnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, opts...)))
	}
	srv := grpc.NewServer(sopts...)
	impl := &tapServer{}
	testpb.RegisterTestServiceServer(srv, impl)
	return testpb.NewTestServiceClient(grpcjwttest.Serve(tb, srv)), impl
}

func tapVerifier(tb testing.TB) (*grpcjwt.Verifier, *grpcjwttest.Issuer) {
	tb.Helper()
	is := grpcjwttest.NewIssuer()
	tb.Cleanup(is.Close)
	ks, err := grpcjwt.NewStaticKeyset(is.JWKS())
	if err != nil {
		tb.Fatal(err)
	}
	v, err := grpcjwt.NewVerifier(ks, grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience("api"))
	if err != nil {
		tb.Fatal(err)
	}
	return v, is
}

func TestPreAuthHandle(t *testing.T) {
	v, is := tapVerifier(t)
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{testpb.TestService_EmptyCall_FullMethodName: {Public: true}})
	if err != nil {
		t.Fatal(err)
	}
	// The tap alone: what it turns away never reaches a handler, and what it
	// lets through is only well-formed, not verified.
	c, impl := tapServe(t, v, true, false, grpcjwt.WithPolicy(policy))
	cases := []struct {
		name     string
		auth     []string
		wantCode codes.Code
		wantMsg  string
	}{
		{"no token", nil, codes.Unauthenticated, "missing bearer token"},
		{"other scheme", []string{"Basic dXNlcjpwYXNz"}, codes.Unauthenticated, "authorization must be a single bearer token"},
		{"two values", []string{"Bearer a.b.c", "Bearer a.b.c"}, codes.Unauthenticated, "authorization must be a single bearer token"},
		{"not three segments", []string{"Bearer abc"}, codes.Unauthenticated, "malformed token"},
		{"JWE shape", []string{"Bearer a.b.c.d.e"}, codes.Unauthenticated, "malformed token"},
		{"not base64url", []string{"Bearer a+b.c/d.e="}, codes.Unauthenticated, "malformed token"},
		{"oversized", []string{"Bearer " + strings.Repeat("a", 17<<10) + ".b.c"}, codes.Unauthenticated, "malformed token"},
		{"well-formed, unverified: passes the tap", []string{"Bearer eyJh.eyJi.c2ln"}, codes.OK, ""},
		{"real token", []string{"Bearer " + is.Mint(is.Claims("api"))}, codes.OK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := impl.calls.Load()
			ctx := t.Context()
			for _, a := range tc.auth {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", a)
			}
			_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
			st := status.Convert(err)
			if st.Code() != tc.wantCode || (tc.wantMsg != "" && st.Message() != tc.wantMsg) {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
			}
			ran := impl.calls.Load() - before
			if (tc.wantCode == codes.OK) != (ran == 1) {
				t.Errorf("handler ran %d times", ran)
			}
		})
	}
	// A public method passes the tap without a token.
	if _, err := c.EmptyCall(t.Context(), &testpb.Empty{}); err != nil {
		t.Errorf("public method without token: %v", err)
	}
}

// BenchmarkPreAuthLargeMessage measures what the tap saves when anonymous
// clients send a large unary request: without it, gRPC reads and decodes
// the 1 MiB message before the interceptor rejects the call.
func BenchmarkPreAuthLargeMessage(b *testing.B) {
	v, _ := tapVerifier(b)
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 1<<20)}}
	for _, withTap := range []bool{false, true} {
		name := "interceptor-only"
		if withTap {
			name = "tap+interceptor"
		}
		b.Run(name, func(b *testing.B) {
			c, _ := tapServe(b, v, withTap, true)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.UnaryCall(b.Context(), req); status.Code(err) != codes.Unauthenticated {
					b.Fatalf("got %v, want Unauthenticated", err)
				}
			}
		})
	}
}

// TestPreAuthorizeRefusesAsAuthorize: for the values it turns away,
// PreAuthorize gives the refusal Authorize gives (code, message and
// challenge, which connectjwt's middleware sends), and a well-formed
// token passes it without an allocation.
func TestPreAuthorizeRefusesAsAuthorize(t *testing.T) {
	v, _ := tapVerifier(t)
	a := grpcjwt.NewAuthorizer(v, grpcjwt.WithLogger(slog.New(slog.DiscardHandler)))
	const method = "/pkg.S/M"
	for _, auth := range [][]string{
		nil,
		{"Basic dXNlcjpwYXNz"},
		{"Bearer a.b.c", "Bearer a.b.c"},
		{"Bearer "},
		{"Bearer abc"},
		{"Bearer .eyJi.c2ln"},
		{"Bearer " + strings.Repeat("a", 17<<10) + ".b.c"},
	} {
		var pre *grpcjwt.Refusal
		if !errors.As(a.PreAuthorize(method, auth), &pre) {
			t.Errorf("%.40q: PreAuthorize let it through", auth)
			continue
		}
		_, _, err := a.Authorize(t.Context(), grpcjwt.Call{Method: method, Authorization: auth})
		var full *grpcjwt.Refusal
		if !errors.As(err, &full) {
			t.Fatalf("%.40q: Authorize gave %v, want a *Refusal", auth, err)
		}
		if pre.Code != full.Code || pre.Message != full.Message || pre.Challenge != full.Challenge {
			t.Errorf("%.40q: PreAuthorize refuses with %v %q %q, Authorize with %v %q %q",
				auth, pre.Code, pre.Message, pre.Challenge, full.Code, full.Message, full.Challenge)
		}
	}
	ok := []string{"Bearer eyJh.eyJi.c2ln"}
	if n := testing.AllocsPerRun(100, func() {
		if a.PreAuthorize(method, ok) != nil {
			t.Fatal("a well-formed token was refused")
		}
	}); n != 0 {
		t.Errorf("PreAuthorize of a well-formed token allocates %v times, want 0", n)
	}
}
