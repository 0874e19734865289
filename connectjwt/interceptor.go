package connectjwt

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/grpcjwt/grpcjwt"
)

// Interceptor is a [connect.Interceptor] that authorizes every call a
// connect handler serves, unary or streaming, as grpcjwt's grpc-go
// interceptors do: it takes the bearer token from the "Authorization"
// header, verifies it, applies the [grpcjwt.Rule] of the procedure and
// passes the claims to the handler in its context
// ([grpcjwt.ClaimsFromContext]). A refused call gets a *[connect.Error]; see
// the package documentation for its code, message and WWW-Authenticate
// metadata.
//
// Install it on handlers with [connect.WithInterceptors]. On a client it does
// nothing. It is safe for concurrent use.
type Interceptor struct {
	a  *grpcjwt.Authorizer
	ew *connect.ErrorWriter
}

var _ connect.Interceptor = (*Interceptor)(nil)

// NewInterceptor returns an Interceptor that verifies tokens with v and
// takes grpcjwt's interceptor options: [grpcjwt.WithPolicy] (by default
// every procedure requires a valid token), [grpcjwt.WithLogger],
// [grpcjwt.WithStrictPublicTokens], [grpcjwt.WithStreamExpiry] (on by
// default), [grpcjwt.WithClaimsCheck], [grpcjwt.WithPolicyWatcher],
// [grpcjwt.WithDryRunPolicy] and [grpcjwt.WithDecisionHook], each with the
// meaning and default it has there. It panics if v is nil, as grpcjwt's
// interceptors do.
func NewInterceptor(v *grpcjwt.Verifier, opts ...grpcjwt.Option) *Interceptor {
	return &Interceptor{a: grpcjwt.NewAuthorizer(v, opts...), ew: connect.NewErrorWriter()}
}

// WrapUnary authorizes a unary call before the handler runs. connect has
// decoded the request message by then; [Interceptor.Middleware] refuses
// calls without a well-formed token before the body is read.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		newCtx, _, err := i.a.Authorize(ctx, grpcjwt.Call{
			Method:        req.Spec().Procedure,
			Authorization: req.Header().Values("Authorization"),
			TLS:           tlsFromContext(ctx),
		})
		if err != nil {
			var header http.Header
			if info, ok := connect.CallInfoForHandlerContext(ctx); ok {
				header = info.ResponseHeader()
			}
			return nil, refuse(err, req.Peer().Protocol, header)
		}
		return next(newCtx, req)
	}
}

// WrapStreamingClient returns next: the Interceptor protects handlers only.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler authorizes a client, server or bidi stream before
// the handler runs and before any message is read, and, unless
// [grpcjwt.WithStreamExpiry] turned it off, ends the stream when its token
// expires (see the package documentation).
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		procedure := conn.Spec().Procedure
		newCtx, claims, err := i.a.Authorize(ctx, grpcjwt.Call{
			Method:        procedure,
			Authorization: conn.RequestHeader().Values("Authorization"),
			TLS:           tlsFromContext(ctx),
		})
		if err != nil {
			return refuse(err, conn.Peer().Protocol, conn.ResponseHeader())
		}
		deadline, bounded := i.a.StreamDeadline(procedure, claims)
		if !bounded {
			return next(newCtx, conn)
		}
		expCtx, cancel := context.WithDeadlineCause(newCtx, deadline, errStreamExpired)
		defer cancel()
		err = next(expCtx, &expiringConn{StreamingHandlerConn: conn, ctx: expCtx})
		if context.Cause(expCtx) == errStreamExpired && ctx.Err() == nil {
			return refuse(i.a.StreamExpired(ctx, procedure), conn.Peer().Protocol, conn.ResponseHeader())
		}
		return err
	}
}

// refusalError turns an error of grpcjwt.Authorizer, a *grpcjwt.Refusal,
// into the connect error the client gets, with the refusal's code
// (connect's codes are gRPC's numbers) and fixed message, and returns the
// refusal too.
func refusalError(err error) (*connect.Error, *grpcjwt.Refusal) {
	var r *grpcjwt.Refusal
	if !errors.As(err, &r) {
		// Authorize refuses with a *Refusal only; anything else is a bug,
		// and a bug never lets a call through or shows its cause.
		return connect.NewError(connect.CodeUnauthenticated, errors.New("token verification failed")), nil
	}
	return connect.NewError(connect.Code(r.Code), &refusal{r}), r
}

// refuse returns refusalError's connect error for err, its challenge put
// where protocol carries it to the client: in the error's metadata, which
// connect sends as HTTP headers (Connect unary), in-body metadata (Connect
// streams, gRPC-Web) or HTTP trailers (gRPC). net/http never sends a
// WWW-Authenticate trailer (RFC 9110 §6.5.1; golang.org/x/net/http/httpguts
// drops it), so for gRPC the challenge goes in the response header instead,
// which reaches the client while the server has not sent its headers yet,
// as for every call refused before its handler.
func refuse(err error, protocol string, header http.Header) *connect.Error {
	ce, r := refusalError(err)
	if r == nil || r.Challenge == "" {
		return ce
	}
	if protocol == connect.ProtocolGRPC && header != nil {
		header.Set(wwwAuthenticate, r.Challenge)
	} else {
		ce.Meta().Set(wwwAuthenticate, r.Challenge)
	}
	return ce
}

// wwwAuthenticate is the name of the RFC 6750 challenge's header.
const wwwAuthenticate = "WWW-Authenticate"

// refusal is the error a connect error wraps for a *grpcjwt.Refusal. Its
// text, which connect sends as the error's message, is the refusal's fixed
// message alone, never its cause; on the server it unwraps to the
// refusal, so that errors.As finds it and errors.Is grpcjwt's sentinels.
type refusal struct{ r *grpcjwt.Refusal }

func (e *refusal) Error() string { return e.r.Message }
func (e *refusal) Unwrap() error { return e.r }

// tlsKey is the context key of the request's TLS state, which
// Interceptor.Middleware puts in the context for the interceptor.
type tlsKey struct{}

// tlsFromContext returns the TLS state Middleware stored, or nil.
func tlsFromContext(ctx context.Context) *tls.ConnectionState {
	s, _ := ctx.Value(tlsKey{}).(*tls.ConnectionState)
	return s
}
