package testkit

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

// Serve starts srv on an in-memory bufconn listener and returns a client
// connection to it. Both are stopped when tb's test ends. Register services
// on srv before calling Serve.
func Serve(tb testing.TB, srv *grpc.Server, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	opts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	cc, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		srv.Stop()
		tb.Fatalf("grpcjwttest: dial bufconn: %v", err)
	}
	tb.Cleanup(func() {
		cc.Close()
		srv.Stop()
		<-served
	})
	return cc
}

// WithBearer returns ctx with outgoing metadata "authorization: Bearer
// token", as a client sends it.
func WithBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
