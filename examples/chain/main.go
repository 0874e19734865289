// Command chain shows grpcjwt inside a go-grpc-middleware v2 interceptor
// chain, in the order this repository recommends:
//
//	logging -> recovery -> selector(grpcjwt) -> handler
//
// logging is outermost so that it records the final status of every call,
// including auth denials and recovered panics; recovery comes next so that
// it catches a panic anywhere below it and turns it into codes.Internal
// before logging sees the result; grpcjwt is applied through selector so
// that health checks and reflection need no token. README.md explains the
// order in full.
//
//	go run ./examples/chain
//
// The program runs an embedded token issuer, the server and a client in one
// process on 127.0.0.1, prints one line per call (method, code, message) on
// stdout and the server's access log on stderr, and exits 0.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

const (
	audience = "https://orders.example.test"
	service  = "/grpcjwt.examples.orders.v1.OrderService/"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chain:", err)
		os.Exit(1)
	}
}

// run starts the issuer and the server, makes the calls, prints one line
// per call to out and the server's logs to logs, and stops everything.
func run(ctx context.Context, out, logs io.Writer) error {
	issuer := grpcjwttest.NewIssuer()
	defer issuer.Close()
	logger := slog.New(slog.NewTextHandler(logs, nil))

	srv, keys, err := newServer(ctx, issuer, logger)
	if err != nil {
		return err
	}
	defer keys.Close()

	lis, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	callErr := callAll(ctx, lis.Addr().String(), issuer, out)
	srv.GracefulStop()
	if err := <-served; err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return callErr
}

// newServer builds the server and its interceptor chain.
func newServer(ctx context.Context, issuer *grpcjwttest.Issuer, logger *slog.Logger) (*grpc.Server, *grpcjwt.Keyset, error) {
	keys, err := grpcjwt.NewRemoteKeyset(ctx, issuer.JWKSURL(), grpcjwt.WithKeysetLogger(logger))
	if err != nil {
		return nil, nil, err
	}
	verifier, err := grpcjwt.NewVerifier(keys, grpcjwt.WithIssuer(issuer.URL()), grpcjwt.WithAudience(audience))
	if err != nil {
		keys.Close()
		return nil, nil, err
	}
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		service + "ServerInfo":  {Public: true},
		service + "CreateOrder": {Scopes: []string{"write:orders"}},
	})
	if err != nil {
		keys.Close()
		return nil, nil, err
	}

	// logging: one "finished call" line per call with its final code.
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	// recovery: a panic becomes codes.Internal with a fixed message; the
	// panic value and stack go to the log, never to the client.
	recoveryOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "recovered from panic", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})}
	// grpcjwt: rejections are logged with their cause by grpcjwt itself.
	authOpts := []grpcjwt.Option{grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(logger)}

	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			logging.UnaryServerInterceptor(interceptorLogger(logger), logOpts...),
			recovery.UnaryServerInterceptor(recoveryOpts...),
			selector.UnaryServerInterceptor(grpcjwt.UnaryServerInterceptor(verifier, authOpts...), selector.MatchFunc(needsAuth)),
			unaryLogCaller,
		),
		grpc.ChainStreamInterceptor(
			logging.StreamServerInterceptor(interceptorLogger(logger), logOpts...),
			recovery.StreamServerInterceptor(recoveryOpts...),
			selector.StreamServerInterceptor(grpcjwt.StreamServerInterceptor(verifier, authOpts...), selector.MatchFunc(needsAuth)),
			streamLogCaller,
		),
	)
	orders := orderpb.NewServer()
	orders.CreatedBy = caller
	orderpb.RegisterOrderServiceServer(srv, &panickyOrders{Server: orders})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	if err := policy.CheckServer(srv); err != nil {
		keys.Close()
		return nil, nil, err
	}
	return srv, keys, nil
}

// interceptorLogger adapts slog to go-grpc-middleware's logging.Logger, as
// go-grpc-middleware's own examples do.
func interceptorLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// exempt lists the services served without a token.
var exempt = []string{
	healthpb.Health_ServiceDesc.ServiceName,
	reflectionv1.ServerReflection_ServiceDesc.ServiceName,
	reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName,
}

// needsAuth is the selector's MatchFunc: true runs grpcjwt for the call.
func needsAuth(_ context.Context, c interceptors.CallMeta) bool {
	return !slices.Contains(exempt, c.Service)
}

// caller is the CreatedBy hook: the token's subject, else its client.
func caller(ctx context.Context) string {
	c, ok := grpcjwt.ClaimsFromContext(ctx)
	if !ok {
		return ""
	}
	if c.Subject != "" {
		return c.Subject
	}
	return c.ClientID
}

// unaryLogCaller adds the token's subject to the access log line. logging
// runs outside grpcjwt and cannot see the claims itself; logging.AddFields
// writes into the fields it put in the context, which it reads when the
// call finishes.
func unaryLogCaller(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if who := caller(ctx); who != "" {
		logging.AddFields(ctx, logging.Fields{"auth.sub", who})
	}
	return handler(ctx, req)
}

func streamLogCaller(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if who := caller(ss.Context()); who != "" {
		logging.AddFields(ss.Context(), logging.Fields{"auth.sub", who})
	}
	return handler(srv, ss)
}

// panickyOrders is the example OrderService with a bug planted for the
// demonstration: an order for the item "panic" panics.
type panickyOrders struct {
	*orderpb.Server
}

func (s *panickyOrders) CreateOrder(ctx context.Context, req *orderpb.CreateOrderRequest) (*orderpb.Order, error) {
	if req.GetItem() == "panic" {
		panic("planted bug: cannot create an order for \"panic\"")
	}
	return s.Server.CreateOrder(ctx, req)
}

// callAll makes the demonstration calls and prints one line per call:
// method, status code, and the status message or a summary of the reply.
// It returns an error if a call ends with another code than the chain
// should give it.
func callAll(ctx context.Context, addr string, issuer *grpcjwttest.Issuer, out io.Writer) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	orders := orderpb.NewOrderServiceClient(cc)
	writer := grpcjwttest.WithBearer(ctx, issuer.Mint(issuer.Claims(audience, "write:orders")))
	reader := grpcjwttest.WithBearer(ctx, issuer.Mint(issuer.Claims(audience, "read:orders")))

	var mismatches []string
	report := func(method string, want codes.Code, err error, okMsg string) {
		msg := okMsg
		if err != nil {
			msg = status.Convert(err).Message()
		}
		fmt.Fprintf(out, "%-12s %-17s %s\n", method, status.Code(err), msg)
		if got := status.Code(err); got != want {
			mismatches = append(mismatches, fmt.Sprintf("%s: got %v, want %v", method, got, want))
		}
	}

	h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	report("Health.Check", codes.OK, err, "status "+h.GetStatus().String()+" (no token: selector skips grpcjwt)")

	info, err := orders.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
	report("ServerInfo", codes.OK, err, "version "+info.GetVersion()+" (public rule, no token)")

	o, err := orders.CreateOrder(writer, &orderpb.CreateOrderRequest{Item: "book", Quantity: 1})
	report("CreateOrder", codes.OK, err, fmt.Sprintf("created %s by %s", o.GetId(), o.GetCreatedBy()))

	_, err = orders.GetOrder(ctx, &orderpb.GetOrderRequest{Id: o.GetId()})
	report("GetOrder", codes.Unauthenticated, err, "")

	g, err := orders.GetOrder(reader, &orderpb.GetOrderRequest{Id: o.GetId()})
	report("GetOrder", codes.OK, err, fmt.Sprintf("%s: %d x %s", g.GetId(), g.GetQuantity(), g.GetItem()))

	_, err = orders.CreateOrder(reader, &orderpb.CreateOrderRequest{Item: "pen", Quantity: 1})
	report("CreateOrder", codes.PermissionDenied, err, "")

	_, err = orders.CreateOrder(writer, &orderpb.CreateOrderRequest{Item: "panic", Quantity: 1})
	report("CreateOrder", codes.Internal, err, "")

	n := 0
	stream, err := orders.WatchOrders(reader, &orderpb.WatchOrdersRequest{})
	for err == nil {
		if _, err = stream.Recv(); err == nil {
			n++
		}
	}
	if err == io.EOF {
		err = nil
	}
	report("WatchOrders", codes.OK, err, fmt.Sprintf("%d events", n))

	if len(mismatches) > 0 {
		return fmt.Errorf("unexpected status: %s", strings.Join(mismatches, "; "))
	}
	return nil
}
