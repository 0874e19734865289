// Package connectjwt protects connect-go services (connectrpc.com/connect)
// with grpcjwt: the same [grpcjwt.Verifier], the same [grpcjwt.Policy] and
// rules file, the same status codes, messages and RFC 6750 challenges as
// grpcjwt's grpc-go interceptors, for the gRPC, gRPC-Web and Connect
// protocols alike.
//
//	auth := connectjwt.NewInterceptor(verifier, grpcjwt.WithPolicy(policy))
//	path, handler := ordersv1connect.NewOrderServiceHandler(srv, connect.WithInterceptors(auth))
//	mux.Handle(path, auth.Middleware(handler)) // optional: see below
//	svc := ordersv1.File_orders_v1_orders_proto.Services().ByName("OrderService")
//	if err := connectjwt.CheckServices(policy, svc); err != nil {
//		return err // a rule that names no procedure
//	}
//
// Handlers read the claims with [grpcjwt.ClaimsFromContext], in unary and
// streaming handlers alike. Policy keys are connect procedures,
// "/pkg.Service/Method", which are gRPC's full method names.
//
// The [Interceptor] does the work of grpcjwt's interceptors through
// [grpcjwt.Authorizer]: token extraction, verification, rules, logging and
// decision hooks ([grpcjwt.WithDecisionHook]) are grpcjwt's own, so the
// options of [grpcjwt.UnaryServerInterceptor] all apply.
//
// # Refusals on the wire
//
// A refused call ends with a *[connect.Error] of the code grpcjwt uses
// (Unauthenticated, PermissionDenied, Unavailable; the numbers are
// gRPC's), whose message is the fixed text of the class of failure
// ("missing bearer token", "expired token", ...), never the cause. The
// RFC 6750 WWW-Authenticate value reaches the client where each protocol
// carries error metadata:
//
//   - Connect, unary: an HTTP response header, with HTTP status 401, 403
//     or 503;
//   - Connect, streaming: the metadata of the end-of-stream message;
//   - gRPC-Web: an HTTP response header when the call is refused before
//     any response (a trailers-only response), else the trailers at the
//     end of the body;
//   - gRPC: an HTTP response header. gRPC sends error metadata as HTTP
//     trailers, but net/http never sends a WWW-Authenticate trailer (the
//     field is not allowed in trailers, RFC 9110 §6.5.1), so the
//     Interceptor sets it as a response header instead. A grpc-go client
//     therefore reads it with grpc.Header, not grpc.Trailer. A stream whose
//     token expires after the handler has sent a message has no header
//     left to carry it: over gRPC it ends with the code and message alone.
//
// A connect client finds it, in every case, in the error's Meta():
//
//	var ce *connect.Error
//	if errors.As(err, &ce) {
//		challenge := ce.Meta().Get("WWW-Authenticate")
//	}
//
// On the server the error unwraps to the *[grpcjwt.Refusal], so that an
// interceptor further out can log its cause ([errors.As]) or count its
// class ([errors.Is] with grpcjwt's sentinels).
//
// # Streams
//
// Client, server and bidi streams are authorized before the handler runs
// and before any message is read. A stream then ends when its token
// expires ([grpcjwt.WithStreamExpiry], on by default): its context ends at
// the token's "exp" plus the verifier's leeway, Send and Receive fail from
// then on, and the call ends with Unauthenticated "token expired during the
// stream" and an invalid_token challenge (over gRPC, only while the handler
// has sent nothing; see above).
//
// # Pre-authentication and TLS
//
// connect decodes a unary request before interceptors run.
// [Interceptor.Middleware] wraps the connect handler in net/http
// middleware that turns away calls without a well-formed bearer token
// before the request body is read, as [grpcjwt.PreAuthHandle] does for
// grpc-go, with the same codes, messages and challenges. It checks only the
// token's shape; the interceptor still decides every call.
//
// The middleware also hands the request's TLS state to the interceptor,
// which a connect interceptor cannot otherwise see. Certificate-bound
// tokens (RFC 8705, "cnf" with "x5t#S256") and rules with
// CertificateBound therefore need the middleware: without it, the
// interceptor sees no client certificate and refuses every bound token, as
// grpcjwt does for a call without TLS.
package connectjwt
