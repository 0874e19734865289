// Package grpcjwt protects gRPC services with OAuth 2.0 / OpenID Connect
// access tokens.
//
// A client sends "authorization: Bearer <JWT>" in its metadata. The server's
// interceptors ([UnaryServerInterceptor], [StreamServerInterceptor]) take the
// token, verify it with a [Verifier], enforce the per-method [Rule] for the
// call, and hand the [Claims] to the handler through the context
// ([ClaimsFromContext]).
//
// # Verification
//
// A [Verifier] accepts a token only if it is a compact JWS (RFC 7515) signed
// with an allowed asymmetric algorithm by a key of its [Keyset], from a
// trusted issuer ("iss"), for an accepted audience ("aud"), and within its
// validity period ("exp" required, "nbf" and "iat" honoured with a small
// leeway). "none", HMAC, JWE, the JSON serialization, embedded or remote
// header keys ("jwk", "jku", "x5u", "x5c") and unknown critical headers are
// never accepted (RFC 8725).
//
// # Keys
//
// A [Keyset] from [NewRemoteKeyset] fetches the issuer's JWK Set, refreshes
// it on the schedule its caching headers give, refetches at once (rate
// limited, shared by all waiters) when a token names an unknown key, and
// keeps the last good keys when the issuer is unreachable.
//
// # Errors
//
// Every rejection wraps one of the sentinel errors ([ErrMalformed],
// [ErrExpired], [ErrAudience], ...), testable with [errors.Is]. The
// interceptors turn them into gRPC status codes once, at the edge:
// Unauthenticated for a missing or invalid token, PermissionDenied for a
// missing scope, Unavailable when no keys could ever be loaded.
package grpcjwt
