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
// header keys ("jwk", "jku", "x5u", "x5c") and unknown critical headers
// are never accepted (RFC 8725); ID tokens and tokens bound to a proof this
// library cannot check are refused unless an Insecure option says
// otherwise ([InsecureAcceptIDTokens],
// [InsecureIgnoreUnsupportedConfirmation]).
//
// # Keys
//
// A [Keyset] from [NewIssuerKeyset] or [NewRemoteKeyset] fetches the
// issuer's JWK Set, refreshes it on the schedule its caching headers give,
// refetches at once (rate limited, shared by all waiters) when a token names
// an unknown key, and keeps the last good keys when the issuer is
// unreachable.
//
// # Rules
//
// A [Policy] maps methods to rules: public methods, audiences, issuers,
// scopes (all of, any of) and claim values such as roles or tenants.
// [WithClaimsCheck] adds the application's own check. Policies come from Go
// ([NewPolicy]) or from a JSON document ([ParsePolicy], [WatchPolicyFile]).
//
// # Errors and logs
//
// Every rejection wraps one of the sentinel errors ([ErrMalformed],
// [ErrExpired], [ErrAudience], ...), testable with [errors.Is]; a verified
// token refused by its issuer, audience, time claims, lifetime, scopes or a
// rule's claim values gets a [CheckError] naming the claim, its value and
// the accepted ones. The interceptors turn them into gRPC status codes
// once, at the edge, as a [Refusal]: Unauthenticated for a missing or
// invalid token, PermissionDenied for a missing scope or claim value,
// Unavailable when no keys could ever be loaded. The client gets a fixed
// message per class of failure; the cause goes to the log ([WithLogger]),
// one refusal a minute at Warn and the rest at Debug.
//
// # Other transports
//
// [Authorizer] is the interceptors' transport-neutral core; the connectjwt
// module builds connect-go interceptors on it.
package grpcjwt
