package grpcjwt

import (
	"context"

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
// scheme, the size cap, and the shape of a compact JWS (three non-empty
// base64url segments). Methods that the policy ([WithPolicy])
// makes public pass untouched. The interceptors still verify every token;
// this handle never accepts a call on its own.
//
// gRPC runs tap handles on the connection's reader goroutine; this one
// never blocks and never does I/O. Calls it rejects end with
// Unauthenticated and no trailer, and are not logged.
func PreAuthHandle(v *Verifier, opts ...Option) tap.ServerInHandle {
	a := NewAuthorizer(v, opts...)
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if r := a.PreAuthorize(info.FullMethodName, info.Header["authorization"]); r != nil {
			return nil, r
		}
		return ctx, nil
	}
}

// PreAuthorize is [PreAuthHandle]'s check for any transport: it returns a
// *[Refusal] for a call to method whose authorization values are not one
// well-formed bearer token, and nil otherwise (and for a public method).
// It reads no token's contents and never blocks; [Authorizer.Authorize]
// must still decide the call.
func (a *Authorizer) PreAuthorize(method string, authorization []string) error {
	if a.Policy().match(method).Public {
		return nil
	}
	tok, err := bearerFromMD(authorization, a.v.o.maxTokenBytes)
	if err == nil && !compactShape(tok) {
		err = ErrMalformed
	}
	if err == nil {
		return nil
	}
	// The refusal the interceptor would give the same values (no rule
	// bears on these errors).
	return toRefusal(context.Background(), err, nil)
}

// compactShape reports whether tok looks like a compact JWS: three
// non-empty segments of base64url characters separated by two dots (a JWT's
// header, claims set and signature are never empty).
func compactShape(tok string) bool {
	dots, segLen := 0, 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '.':
			if segLen == 0 {
				return false
			}
			dots, segLen = dots+1, 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			segLen++
		default:
			return false
		}
	}
	return dots == 2 && segLen > 0
}
