package grpcjwt

import "errors"

// The sentinel errors below classify every rejection. Errors returned by
// [Verifier.Verify], [Keyset] and the interceptors wrap exactly one of them
// with detail meant for operators; test them with [errors.Is]. The detail
// never holds key material, JWKS bodies, internal URLs or claim values read
// before the signature was checked.
var (
	// ErrMissingToken means the call carried no bearer token.
	ErrMissingToken = errors.New("grpcjwt: missing bearer token")

	// ErrInvalidRequest means the authorization metadata is not a single
	// "Bearer <token>" value: another scheme, an empty token, or more than
	// one authorization value (RFC 6750 §3.1 invalid_request).
	ErrInvalidRequest = errors.New("grpcjwt: invalid authorization metadata")

	// ErrMalformed means the token is not a well-formed compact JWS carrying
	// a JSON claims set of the expected types: bad encoding, wrong number of
	// segments, JWE or JSON serialization, an unsupported critical header,
	// an oversized token, or a claim of the wrong JSON type.
	ErrMalformed = errors.New("grpcjwt: malformed token")

	// ErrAlgorithm means the token's "alg" is not on the verifier's
	// allow-list ("none" and HMAC never are) or does not fit the key it names.
	ErrAlgorithm = errors.New("grpcjwt: signing algorithm not accepted")

	// ErrUnknownKey means no key in the keyset matches the token's "kid"
	// (after a refresh, where one was allowed).
	ErrUnknownKey = errors.New("grpcjwt: no key matches the token")

	// ErrKeysUnavailable means the keyset holds no usable keys because they
	// could never be loaded (or were dropped after the maximum staleness):
	// an outage of the issuer, not a fault of the token.
	ErrKeysUnavailable = errors.New("grpcjwt: signing keys unavailable")

	// ErrSignature means the signature does not verify with the key.
	ErrSignature = errors.New("grpcjwt: invalid token signature")

	// ErrExpired means the token's "exp" has passed (beyond the leeway).
	ErrExpired = errors.New("grpcjwt: token expired")

	// ErrNotYetValid means the token's "nbf" or "iat" lies in the future
	// (beyond the leeway).
	ErrNotYetValid = errors.New("grpcjwt: token not yet valid")

	// ErrIssuer means the token's "iss" is missing or not a trusted issuer.
	ErrIssuer = errors.New("grpcjwt: token issuer not trusted")

	// ErrAudience means the token's "aud" is missing or names no accepted
	// audience.
	ErrAudience = errors.New("grpcjwt: token audience not accepted")

	// ErrTokenType means the token's "typ" header is not an accepted type.
	ErrTokenType = errors.New("grpcjwt: token type not accepted")

	// ErrMissingClaim means a claim the verifier requires is absent ("exp",
	// or one named by [WithRequiredClaims]), or a claim asked of
	// [Claims.DecodeClaim] is not in the token.
	ErrMissingClaim = errors.New("grpcjwt: required claim missing")

	// ErrLifetime means the token's lifetime (exp - iat) exceeds the
	// verifier's maximum (see [WithMaxLifetime]).
	ErrLifetime = errors.New("grpcjwt: token lifetime too long")

	// ErrCertificateBinding means a certificate-bound token (RFC 8705) did
	// not come over mutual TLS with its certificate, or a method that
	// requires binding got a token that is not bound.
	ErrCertificateBinding = errors.New("grpcjwt: token not bound to the client certificate")

	// ErrInsufficientScope means a valid token lacks a scope the method
	// requires.
	ErrInsufficientScope = errors.New("grpcjwt: insufficient scope")

	// ErrKeysetClosed means the keyset was closed and can no longer refresh.
	ErrKeysetClosed = errors.New("grpcjwt: keyset closed")
)
