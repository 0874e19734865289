package connectjwt

import (
	"context"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Middleware returns next wrapped in net/http middleware that does two
// things for the Interceptor, which must still be installed on next's
// connect handlers: it never accepts a call on its own.
//
// First, it turns away RPCs (gRPC, gRPC-Web or Connect requests, as
// [connect.ErrorWriter] recognises them) that carry no well-formed bearer
// token, before the request body is read: connect decodes a unary
// request before interceptors run, so without it a large message from an
// anonymous client is read and unmarshalled only to be refused. Like
// [grpcjwt.PreAuthHandle], it checks only what costs nothing (one
// Authorization value, the Bearer scheme, the size cap, the shape of a
// compact JWS), lets the procedures that the policy makes public pass, and
// neither logs its refusals nor reports them to a decision hook. They end
// with the code, message and WWW-Authenticate value that the Interceptor
// would give. Requests that are not RPCs pass untouched.
//
// Second, it hands the request's TLS state ([http.Request].TLS) to the
// Interceptor, which needs it for certificate-bound tokens (RFC 8705);
// without the middleware the Interceptor refuses every bound token.
//
// The procedure is read from the request path's last two segments,
// "/pkg.Service/Method", so next may be a connect handler, a mux of
// connect handlers, or either under a path prefix. Wrap connect handlers
// only, not a mux that also serves other routes: like connect itself, the
// middleware takes every GET request and every POST request with an
// "application/..." body for a Connect unary call, and would refuse such
// a request without a token unless the policy makes its path public.
func (i *Interceptor) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i.ew.IsSupported(r) {
			if err := i.a.PreAuthorize(procedureOf(r.URL.Path), r.Header.Values("Authorization")); err != nil {
				protocol := connect.ProtocolConnect // or gRPC-Web: the challenge goes in the error's metadata
				if isGRPC(r) {
					protocol = connect.ProtocolGRPC
				}
				_ = i.ew.Write(w, r, refuse(err, protocol, w.Header()))
				return
			}
		}
		if r.TLS != nil {
			r = r.WithContext(context.WithValue(r.Context(), tlsKey{}, r.TLS))
		}
		next.ServeHTTP(w, r)
	})
}

// isGRPC reports whether r is a call in the gRPC protocol (not gRPC-Web).
func isGRPC(r *http.Request) bool {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;")
}

// procedureOf returns the last two segments of path, "/pkg.Service/Method"
// for a connect procedure under any prefix.
func procedureOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return path
	}
	if j := strings.LastIndexByte(path[:i], '/'); j > 0 {
		return path[j:]
	}
	return path
}
