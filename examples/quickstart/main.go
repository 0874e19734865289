// Command quickstart shows grpcjwt end to end in one process: an embedded
// token issuer, a gRPC server protected by grpcjwt with per-method rules,
// and a client that calls each method with good and bad tokens.
//
//	go run ./examples/quickstart
//
// It needs no flags and no network beyond 127.0.0.1, and exits 0 when every
// call got the status the rules call for.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

const (
	ordersAPI  = "https://orders.example.test"  // audience A: the orders API
	billingAPI = "https://billing.example.test" // another API of the same server
	service    = "/grpcjwt.examples.orders.v1.OrderService/"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run starts the issuer, the server and the client, prints one line per
// call, and fails if any call's status differs from the expected one.
func run(ctx context.Context, out io.Writer) error {
	// 1. An identity provider: a fresh ES256 key, JWKS and OIDC discovery
	//    on a random 127.0.0.1 port, and a token minter.
	issuer := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("ES256"))
	defer issuer.Close()
	fmt.Fprintf(out, "issuer   %s (JWKS at %s)\n", issuer.URL(), issuer.JWKSURL())

	// 2. The protected server.
	addr, stop, err := serve(ctx, issuer)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "server   %s\n\n", addr)

	// 3. A client calling every method with every kind of token.
	return callAll(ctx, addr, issuer, out)
}

// serve starts a gRPC server protected by grpcjwt and returns its address.
func serve(ctx context.Context, issuer *grpcjwttest.Issuer) (string, func(), error) {
	keys, err := grpcjwt.NewRemoteKeyset(ctx, issuer.JWKSURL())
	if err != nil {
		return "", nil, err
	}
	verifier, err := grpcjwt.NewVerifier(keys,
		grpcjwt.WithIssuer(issuer.URL()),
		grpcjwt.WithAudience(ordersAPI, billingAPI),
	)
	if err != nil {
		keys.Close()
		return "", nil, err
	}
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		service + "ServerInfo":  {Public: true},
		service + "GetOrder":    {Audiences: []string{ordersAPI}},
		service + "CreateOrder": {Audiences: []string{ordersAPI}, Scopes: []string{"write:orders"}},
		// WatchOrders has no rule: it needs a valid token for any audience
		// the verifier accepts.
	})
	if err != nil {
		keys.Close()
		return "", nil, err
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(verifier, grpcjwt.WithPolicy(policy))),
		grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(verifier, grpcjwt.WithPolicy(policy))),
	)
	orders := orderpb.NewServer()
	orders.CreatedBy = func(ctx context.Context) string {
		if c, ok := grpcjwt.ClaimsFromContext(ctx); ok {
			return c.Subject
		}
		return ""
	}
	orderpb.RegisterOrderServiceServer(srv, orders)
	if err := policy.CheckServer(srv); err != nil { // a typo in a rule fails here
		keys.Close()
		return "", nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		keys.Close()
		return "", nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil {
			slog.Error("serve", "error", err)
		}
	}()
	stop := func() {
		srv.GracefulStop()
		<-done
		keys.Close()
	}
	return lis.Addr().String(), stop, nil
}

// tokenKind is one kind of token the client presents.
type tokenKind struct {
	name  string
	token string // "" sends no authorization metadata
}

// expected gives the status code each method returns for each token kind.
var expected = map[string]map[string]codes.Code{
	"ServerInfo":  {"good": codes.OK, "none": codes.OK, "expired": codes.OK, "wrong-audience": codes.OK, "missing-scope": codes.OK},
	"CreateOrder": {"good": codes.OK, "none": codes.Unauthenticated, "expired": codes.Unauthenticated, "wrong-audience": codes.Unauthenticated, "missing-scope": codes.PermissionDenied},
	"GetOrder":    {"good": codes.OK, "none": codes.Unauthenticated, "expired": codes.Unauthenticated, "wrong-audience": codes.Unauthenticated, "missing-scope": codes.OK},
	"WatchOrders": {"good": codes.OK, "none": codes.Unauthenticated, "expired": codes.Unauthenticated, "wrong-audience": codes.OK, "missing-scope": codes.OK},
}

func callAll(ctx context.Context, addr string, issuer *grpcjwttest.Issuer, out io.Writer) error {
	good := issuer.Claims(ordersAPI, "read:orders", "write:orders")
	expired := issuer.Claims(ordersAPI, "read:orders", "write:orders")
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	kinds := []tokenKind{
		{"good", issuer.Mint(good)},
		{"none", ""},
		{"expired", issuer.Mint(expired)},
		{"wrong-audience", issuer.Mint(issuer.Claims(billingAPI, "read:orders", "write:orders"))},
		{"missing-scope", issuer.Mint(issuer.Claims(ordersAPI, "read:orders"))},
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := orderpb.NewOrderServiceClient(conn)

	calls := []struct {
		method string
		call   func(ctx context.Context) (string, error)
	}{
		{"ServerInfo", func(ctx context.Context) (string, error) {
			r, err := client.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
			return "version " + r.GetVersion(), err
		}},
		{"CreateOrder", func(ctx context.Context) (string, error) {
			o, err := client.CreateOrder(ctx, &orderpb.CreateOrderRequest{Item: "book", Quantity: 1})
			return fmt.Sprintf("created %s by %s", o.GetId(), o.GetCreatedBy()), err
		}},
		{"GetOrder", func(ctx context.Context) (string, error) {
			o, err := client.GetOrder(ctx, &orderpb.GetOrderRequest{Id: "ord-1"})
			return fmt.Sprintf("order %s: %s", o.GetId(), o.GetItem()), err
		}},
		{"WatchOrders", func(ctx context.Context) (string, error) {
			stream, err := client.WatchOrders(ctx, &orderpb.WatchOrdersRequest{MaxEvents: 3})
			if err != nil {
				return "", err
			}
			n := 0
			for {
				if _, err := stream.Recv(); errors.Is(err, io.EOF) {
					return fmt.Sprintf("%d events", n), nil
				} else if err != nil {
					return "", err
				}
				n++
			}
		}},
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tTOKEN\tCODE\tMESSAGE")
	var mismatches []error
	for _, c := range calls {
		for _, k := range kinds {
			callCtx := ctx
			if k.token != "" {
				callCtx = grpcjwttest.WithBearer(ctx, k.token)
			}
			result, err := c.call(callCtx)
			st := status.Convert(err)
			msg := st.Message()
			if err == nil {
				msg = result
			}
			mark := ""
			if want := expected[c.method][k.name]; st.Code() != want {
				mark = fmt.Sprintf("\t<- expected %s", want)
				mismatches = append(mismatches, fmt.Errorf("%s with %s token: got %s, want %s", c.method, k.name, st.Code(), want))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", c.method, k.name, st.Code(), msg, mark)
		}
	}
	tw.Flush()
	if err := errors.Join(mismatches...); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nall calls got the expected status")
	fmt.Fprint(out, `
Why:
  ServerInfo   is public: every call goes through; a bad token is ignored and the handler gets no claims.
  CreateOrder  needs the orders audience and write:orders: the billing token is refused (Unauthenticated),
               the token without write:orders is valid but lacks the scope (PermissionDenied).
  GetOrder     needs the orders audience and no scope: the token without write:orders passes, the billing one not.
  WatchOrders  has no rule of its own, so it needs a valid token for any audience the verifier accepts
               (orders or billing): the billing token ("wrong-audience" for the orders methods) is OK here.
The WARN lines on stderr are grpcjwt's log of refused calls: the first refusal of each interceptor at
Warn with the check that failed, later ones (within a minute) at Debug.
`)
	return nil
}
