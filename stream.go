package grpcjwt

import (
	"context"
	"fmt"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// errStreamExpired ends a stream whose token expired while it was open.
var errStreamExpired = status.Error(codes.Unauthenticated, "token expired during the stream")

// expiredTrailer is the WWW-Authenticate value sent with errStreamExpired,
// the one an expired token gets when the call starts.
const expiredTrailer = `Bearer error="invalid_token", error_description="expired token"`

// StreamServerInterceptor returns an interceptor that authorizes each
// stream as [UnaryServerInterceptor] does each unary call, before the
// handler runs. The handler's ServerStream.Context carries the claims.
//
// By default the stream also ends when the token expires; see
// [WithStreamExpiry].
func StreamServerInterceptor(v *Verifier, opts ...Option) grpc.StreamServerInterceptor {
	a := newAuthorizer(v, opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		rule := a.policy().match(info.FullMethod)
		newCtx, claims, trailer, err := a.authorize(ctx, info.FullMethod, rule)
		if err != nil {
			if trailer != "" {
				ss.SetTrailer(metadata.Pairs("www-authenticate", trailer))
			}
			return err
		}
		wrapped := middleware.WrapServerStream(ss)
		wrapped.WrappedContext = newCtx
		// A public method's optional token does not bound its stream.
		if claims == nil || !a.o.streamExpiry || rule.Public {
			return handler(srv, wrapped)
		}
		deadline := claims.Expiry.Add(a.v.leewayFor(claims))
		expCtx, cancel := context.WithDeadlineCause(newCtx, deadline, errStreamExpired)
		defer cancel()
		wrapped.WrappedContext = expCtx
		err = handler(srv, &expiringStream{WrappedServerStream: wrapped, ctx: expCtx})
		if context.Cause(expCtx) == errStreamExpired && ctx.Err() == nil {
			// Like any other rejection: logged with its cause, and an RFC
			// 6750 challenge so the client knows to fetch a fresh token.
			a.log(ctx, info.FullMethod, rule, fmt.Errorf("%w: during the stream", ErrExpired))
			ss.SetTrailer(metadata.Pairs("www-authenticate", expiredTrailer))
			return errStreamExpired
		}
		return err
	}
}

// expiringStream refuses to send or receive once the token has expired.
// A handler blocked in RecvMsg when the token expires returns at the next
// message from the client or when the client ends the stream; the message
// received after expiry is dropped.
type expiringStream struct {
	*middleware.WrappedServerStream
	ctx context.Context
}

func (s *expiringStream) expired() bool {
	return context.Cause(s.ctx) == errStreamExpired
}

func (s *expiringStream) SendMsg(m any) error {
	if s.expired() {
		return errStreamExpired
	}
	return s.WrappedServerStream.SendMsg(m)
}

func (s *expiringStream) RecvMsg(m any) error {
	if s.expired() {
		return errStreamExpired
	}
	err := s.WrappedServerStream.RecvMsg(m)
	if s.expired() {
		return errStreamExpired
	}
	return err
}
