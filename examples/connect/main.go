// Command connect shows grpcjwt protecting a connect-go server
// (connectrpc.com/connect) in one process: an embedded token issuer, the
// example OrderService served by connect handlers behind
// connectjwt.Interceptor and its Middleware, with per-procedure rules,
// and a connect client that calls each procedure with good and bad
// tokens.
//
//	go run .                      # the Connect protocol
//	go run . -protocol grpc       # or gRPC, or grpcweb
//
// It needs no network beyond 127.0.0.1, prints one line per call
// (procedure, token kind, code, message, WWW-Authenticate challenge), and
// exits 0 when every call got the code the rules call for.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/connectjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

const (
	ordersAPI  = "https://orders.example.test"  // audience A: the orders API
	billingAPI = "https://billing.example.test" // another API of the same server
)

// The procedures served: connect procedures are gRPC's full method names,
// so the rules are those a grpc-go server of the same service would use.
const (
	serverInfo  = orderpb.OrderService_ServerInfo_FullMethodName
	getOrder    = orderpb.OrderService_GetOrder_FullMethodName
	createOrder = orderpb.OrderService_CreateOrder_FullMethodName
	watchOrders = orderpb.OrderService_WatchOrders_FullMethodName
)

func main() {
	protocol := flag.String("protocol", "connect", "the protocol of the client: connect, grpc or grpcweb")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *protocol); err != nil {
		fmt.Fprintln(os.Stderr, "connect example:", err)
		os.Exit(1)
	}
}

// run starts the issuer, the server and the client, prints one line per
// call, and fails if any call's code differs from the expected one.
func run(ctx context.Context, out io.Writer, protocol string) error {
	var opt connect.ClientOption
	switch protocol {
	case "connect":
		opt = connect.WithProtoJSON() // the Connect protocol, with JSON messages
	case "grpc":
		opt = connect.WithGRPC()
	case "grpcweb":
		opt = connect.WithGRPCWeb()
	default:
		return fmt.Errorf("unknown protocol %q: want connect, grpc or grpcweb", protocol)
	}

	// 1. An identity provider: a fresh ES256 key, JWKS and OIDC discovery
	//    on a random 127.0.0.1 port, and a token minter.
	issuer := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("ES256"))
	defer issuer.Close()
	fmt.Fprintf(out, "issuer   %s (JWKS at %s)\n", issuer.URL(), issuer.JWKSURL())

	// 2. The protected connect server.
	url, stop, err := serve(ctx, issuer)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "server   %s (client protocol: %s)\n\n", url, protocol)

	// 3. A client calling every procedure with every kind of token.
	return callAll(ctx, url, opt, issuer, out)
}

// serve starts a connect server protected by connectjwt on 127.0.0.1 and
// returns its URL.
func serve(ctx context.Context, issuer *grpcjwttest.Issuer) (string, func(), error) {
	keys, err := grpcjwt.NewRemoteKeyset(ctx, issuer.JWKSURL())
	if err != nil {
		return "", nil, err
	}
	fail := func(err error) (string, func(), error) {
		keys.Close()
		return "", nil, err
	}
	verifier, err := grpcjwt.NewVerifier(keys,
		grpcjwt.WithIssuer(issuer.URL()),
		grpcjwt.WithAudience(ordersAPI, billingAPI),
	)
	if err != nil {
		return fail(err)
	}
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		serverInfo:  {Public: true},
		getOrder:    {Audiences: []string{ordersAPI}},
		createOrder: {Audiences: []string{ordersAPI}, Scopes: []string{"write:orders"}},
		// WatchOrders has no rule: it needs a valid token for any audience
		// the verifier accepts.
	})
	if err != nil {
		return fail(err)
	}
	// A typo in a rule fails here, against the procedures served.
	if err := connectjwt.CheckProcedures(policy, serverInfo, getOrder, createOrder, watchOrders); err != nil {
		return fail(err)
	}

	auth := connectjwt.NewInterceptor(verifier, grpcjwt.WithPolicy(policy),
		grpcjwt.WithLogger(slog.New(slog.DiscardHandler))) // refusals are printed by the client here
	mux := http.NewServeMux()
	for path, h := range handlers(connect.WithInterceptors(auth)) {
		mux.Handle(path, h)
	}
	// Middleware refuses calls without a well-formed token before their
	// body is read, and hands the TLS state (none here) to the Interceptor.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC needs HTTP/2; serve TLS in production
	srv := &http.Server{Handler: auth.Middleware(mux), Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			slog.Error("serve", "error", err)
		}
	}()
	stop := func() {
		srv.Close()
		<-done
		keys.Close()
	}
	return "http://" + lis.Addr().String(), stop, nil
}

// handlers returns the connect handlers of the OrderService procedures,
// over orderpb's in-memory implementation.
func handlers(opts ...connect.HandlerOption) map[string]http.Handler {
	orders := orderpb.NewServer()
	orders.CreatedBy = func(ctx context.Context) string {
		if c, ok := grpcjwt.ClaimsFromContext(ctx); ok {
			return c.Subject
		}
		return ""
	}
	return map[string]http.Handler{
		serverInfo:  connect.NewUnaryHandlerSimple(serverInfo, wrap(orders.ServerInfo), opts...),
		getOrder:    connect.NewUnaryHandlerSimple(getOrder, wrap(orders.GetOrder), opts...),
		createOrder: connect.NewUnaryHandlerSimple(createOrder, wrap(orders.CreateOrder), opts...),
		watchOrders: connect.NewServerStreamHandlerSimple(watchOrders,
			func(ctx context.Context, req *orderpb.WatchOrdersRequest, st *connect.ServerStream[orderpb.OrderEvent]) error {
				n := req.GetMaxEvents()
				if n <= 0 || n > 3 {
					n = 3
				}
				for i := range n {
					if err := st.Send(&orderpb.OrderEvent{Sequence: i + 1, Kind: "heartbeat"}); err != nil {
						return err
					}
				}
				return nil
			}, opts...),
	}
}

// wrap adapts a grpc-go style method of orderpb.Server, whose errors are
// gRPC statuses, to connect.
func wrap[Req, Res any](f func(context.Context, *Req) (*Res, error)) func(context.Context, *Req) (*Res, error) {
	return func(ctx context.Context, req *Req) (*Res, error) {
		res, err := f(ctx, req)
		if s, ok := status.FromError(err); ok && err != nil {
			return nil, connect.NewError(connect.Code(s.Code()), errors.New(s.Message()))
		}
		return res, err
	}
}

// tokenKind is one kind of token the client presents.
type tokenKind struct {
	name  string
	token string // "" sends no Authorization header
}

// ok stands for a call that succeeded: connect has no code for it.
const ok = connect.Code(0)

// expected gives the code each procedure returns for each token kind.
var expected = map[string]map[string]connect.Code{
	"ServerInfo":  {"good": ok, "none": ok, "expired": ok, "wrong-audience": ok, "missing-scope": ok},
	"CreateOrder": {"good": ok, "none": connect.CodeUnauthenticated, "expired": connect.CodeUnauthenticated, "wrong-audience": connect.CodeUnauthenticated, "missing-scope": connect.CodePermissionDenied},
	"GetOrder":    {"good": ok, "none": connect.CodeUnauthenticated, "expired": connect.CodeUnauthenticated, "wrong-audience": connect.CodeUnauthenticated, "missing-scope": ok},
	"WatchOrders": {"good": ok, "none": connect.CodeUnauthenticated, "expired": connect.CodeUnauthenticated, "wrong-audience": ok, "missing-scope": ok},
}

// codeName names a code as the output prints it: connect's names, "ok"
// for success.
func codeName(c connect.Code) string {
	if c == ok {
		return "ok"
	}
	return c.String()
}

func callAll(ctx context.Context, url string, opt connect.ClientOption, issuer *grpcjwttest.Issuer, out io.Writer) error {
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

	hc := &http.Client{Transport: h2cTransport()}
	defer hc.CloseIdleConnections()
	info := connect.NewClient[orderpb.ServerInfoRequest, orderpb.ServerInfoResponse](hc, url+serverInfo, opt)
	create := connect.NewClient[orderpb.CreateOrderRequest, orderpb.Order](hc, url+createOrder, opt)
	get := connect.NewClient[orderpb.GetOrderRequest, orderpb.Order](hc, url+getOrder, opt)
	watch := connect.NewClient[orderpb.WatchOrdersRequest, orderpb.OrderEvent](hc, url+watchOrders, opt)

	// Each call sets the bearer token, if any, on its request's header.
	calls := []struct {
		method string
		call   func(ctx context.Context, setAuth func(http.Header)) (string, error)
	}{
		{"ServerInfo", func(ctx context.Context, setAuth func(http.Header)) (string, error) {
			req := connect.NewRequest(&orderpb.ServerInfoRequest{})
			setAuth(req.Header())
			r, err := info.CallUnary(ctx, req)
			if err != nil {
				return "", err
			}
			return "version " + r.Msg.GetVersion(), nil
		}},
		{"CreateOrder", func(ctx context.Context, setAuth func(http.Header)) (string, error) {
			req := connect.NewRequest(&orderpb.CreateOrderRequest{Item: "book", Quantity: 1})
			setAuth(req.Header())
			o, err := create.CallUnary(ctx, req)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("created %s by %s", o.Msg.GetId(), o.Msg.GetCreatedBy()), nil
		}},
		{"GetOrder", func(ctx context.Context, setAuth func(http.Header)) (string, error) {
			req := connect.NewRequest(&orderpb.GetOrderRequest{Id: "ord-1"})
			setAuth(req.Header())
			o, err := get.CallUnary(ctx, req)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("order %s: %s", o.Msg.GetId(), o.Msg.GetItem()), nil
		}},
		{"WatchOrders", func(ctx context.Context, setAuth func(http.Header)) (string, error) {
			req := connect.NewRequest(&orderpb.WatchOrdersRequest{MaxEvents: 3})
			setAuth(req.Header())
			st, err := watch.CallServerStream(ctx, req)
			if err != nil {
				return "", err
			}
			defer st.Close()
			n := 0
			for st.Receive() {
				n++
			}
			return fmt.Sprintf("%d events", n), st.Err()
		}},
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCEDURE\tTOKEN\tCODE\tMESSAGE\tWWW-AUTHENTICATE")
	var mismatches []error
	for _, c := range calls {
		for _, k := range kinds {
			setAuth := func(h http.Header) {
				if k.token != "" {
					h.Set("Authorization", "Bearer "+k.token)
				}
			}
			result, err := c.call(ctx, setAuth)
			code, msg, challenge := ok, result, ""
			if err != nil {
				code, msg = connect.CodeOf(err), err.Error()
				var ce *connect.Error
				if errors.As(err, &ce) {
					msg, challenge = ce.Message(), ce.Meta().Get("WWW-Authenticate")
				}
			}
			mark := ""
			if want := expected[c.method][k.name]; code != want {
				mark = fmt.Sprintf("\t<- expected %s", codeName(want))
				mismatches = append(mismatches, fmt.Errorf("%s with %s token: got %s, want %s", c.method, k.name, codeName(code), codeName(want)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s%s\n", c.method, k.name, codeName(code), msg, challenge, mark)
		}
	}
	tw.Flush()
	if err := errors.Join(mismatches...); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nall calls got the expected code")
	return nil
}

// h2cTransport returns an HTTP transport that speaks HTTP/2 without TLS,
// which gRPC needs; a real client would use TLS.
func h2cTransport() *http.Transport {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &protocols}
}
