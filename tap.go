package grpcjwt

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// PreAuthHandle returns a [tap.ServerInHandle], installed with
// grpc.InTapHandle, that turns away calls without a well-formed bearer
// token before gRPC reads or decodes any request message. It is an optional
// first line of defence: gRPC decodes a unary request before interceptors
// run, so without it a large message from an anonymous client is read and
// unmarshalled only to be rejected.
//
// It checks only what costs nothing: one authorization value, the Bearer
// scheme, the size cap, and the shape of a compact JWS (three base64url
// segments). Methods that the policy ([WithPolicy]) makes public pass
// untouched. The interceptors still verify every token; this handle never
// accepts a call on its own.
//
// gRPC runs tap handles on the connection's reader goroutine; this one
// never blocks and never does I/O. Calls it rejects end with
// Unauthenticated and no trailer.
func PreAuthHandle(v *Verifier, opts ...Option) tap.ServerInHandle {
	a := newAuthorizer(v, opts)
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if a.policy().match(info.FullMethodName).Public {
			return ctx, nil
		}
		tok, err := bearerFromMD(info.Header["authorization"], a.v.o.maxTokenBytes)
		if err == nil && !compactShape(tok) {
			err = ErrMalformed
		}
		switch {
		case err == nil:
			return ctx, nil
		case errors.Is(err, ErrMissingToken):
			return nil, status.Error(codes.Unauthenticated, "missing bearer token")
		case errors.Is(err, ErrInvalidRequest):
			return nil, status.Error(codes.Unauthenticated, "authorization must be a single bearer token")
		default:
			return nil, status.Error(codes.Unauthenticated, "malformed token")
		}
	}
}

// compactShape reports whether tok looks like a compact JWS: three
// non-empty-header segments of base64url characters separated by two dots.
func compactShape(tok string) bool {
	dots := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2 && !strings.HasPrefix(tok, ".")
}
