package grpcjwt

import (
	"context"

	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// StreamServerInterceptor returns an interceptor that authorizes each
// stream as [UnaryServerInterceptor] does each unary call, before the
// handler runs. The handler's ServerStream.Context carries the claims.
//
// By default the stream also ends when the token expires; see
// [WithStreamExpiry].
func StreamServerInterceptor(v *Verifier, opts ...Option) grpc.StreamServerInterceptor {
	a := NewAuthorizer(v, opts...)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		rule := a.Policy().match(info.FullMethod)
		newCtx, claims, r := a.authorize(ctx, info.FullMethod, rule, authorizationMD(ctx), grpcPeerTLS(ctx))
		if r != nil {
			if r.Challenge != "" {
				ss.SetTrailer(metadata.Pairs("www-authenticate", r.Challenge))
			}
			return r
		}
		wrapped := middleware.WrapServerStream(ss)
		wrapped.WrappedContext = newCtx
		deadline, bounded := a.streamDeadline(rule, claims)
		if !bounded {
			return handler(srv, wrapped)
		}
		expCtx, cancel := context.WithDeadlineCause(newCtx, deadline, errStreamExpired)
		defer cancel()
		wrapped.WrappedContext = expCtx
		err := handler(srv, &expiringStream{WrappedServerStream: wrapped, ctx: expCtx})
		if context.Cause(expCtx) == errStreamExpired && ctx.Err() == nil {
			r := a.streamExpired(ctx, info.FullMethod, rule)
			ss.SetTrailer(metadata.Pairs("www-authenticate", r.Challenge))
			return r
		}
		return err
	}
}

// errStreamExpired is the cause of a stream context cancelled at its
// token's expiry, and what SendMsg and RecvMsg return from then on.
var errStreamExpired = &Refusal{Code: codes.Unauthenticated, Message: "token expired during the stream", Err: ErrExpired}

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
