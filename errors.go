package grpcjwt

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The sentinel errors below classify every rejection. Errors returned by
// [Verifier.Verify], [Keyset] and the interceptors wrap one of them with
// detail meant for operators; test them with [errors.Is]. (A refusal by
// [WithClaimsCheck] wraps [ErrDenied] and the application's own error,
// which may wrap others.) The detail names the values that decided, taken
// only from the configuration and from a token whose signature verified
// (see [CheckError]); it never holds key material, JWKS bodies or values
// read before the signature was checked. The errors of verifying a token
// name no URL; those of the constructors and of [Discover] name the URL
// that failed (without its query or credentials), as configuration errors
// must.
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

	// ErrClaimRequirement means a valid token's claims do not hold a value
	// that the method's rule requires ([Rule].Claims): a role, a tenant,
	// an organization.
	ErrClaimRequirement = errors.New("grpcjwt: token lacks a claim value the method requires")

	// ErrDenied means the application's own check ([WithClaimsCheck])
	// refused a valid token.
	ErrDenied = errors.New("grpcjwt: call denied by the application's check")

	// ErrUnsupportedConfirmation means the token is bound (its "cnf" claim,
	// RFC 7800) to a proof of possession this library cannot check, such as
	// a DPoP key ("jkt", RFC 9449): accepting it as a plain bearer token
	// would let a stolen sender-constrained token work here. See
	// [InsecureIgnoreUnsupportedConfirmation].
	ErrUnsupportedConfirmation = errors.New("grpcjwt: token bound to a proof of possession this verifier cannot check")

	// ErrKeysetClosed means the keyset was closed and can no longer refresh.
	ErrKeysetClosed = errors.New("grpcjwt: keyset closed")
)

// A CheckError is the refusal of a token whose signature verified by one
// check of its claims, or of the rule of a method: it names the check, what
// the token holds and what was wanted, so that an operator can tell a
// typo in the configuration from a token for another API. It wraps the
// sentinel of its class ([ErrIssuer], [ErrAudience], [ErrExpired],
// [ErrNotYetValid], [ErrLifetime], [ErrInsufficientScope],
// [ErrClaimRequirement]), so [errors.Is] matches it.
//
// Its values come from the verifier's configuration and from the verified
// token, never from a token whose signature did not hold. The interceptors
// log it; the client only gets the fixed message of the class.
type CheckError struct {
	// Err is the sentinel of the refusal's class.
	Err error
	// Check names what was checked: a claim ("iss", "aud", "exp", "nbf",
	// "iat", "scope"), a rule's claim path ("realm_access.roles"), or
	// "exp - iat" for the lifetime bound.
	Check string
	// Got is what the token holds, formatted for a log line.
	Got string
	// Want is what the check accepts, formatted for a log line.
	Want string
}

// Error returns the sentinel's text followed by the check, the token's
// value and the wanted one.
func (e *CheckError) Error() string {
	return fmt.Sprintf("%v: %s is %s, want %s", e.Err, e.Check, e.Got, e.Want)
}

// Unwrap returns the sentinel.
func (e *CheckError) Unwrap() error { return e.Err }

// maxLoggedValue bounds a value quoted in a CheckError, so that a token's
// long claim does not make a long log line.
const maxLoggedValue = 200

// quoted formats s for a CheckError: Go-quoted (control characters and
// newlines escaped, so a value cannot forge a log line) and truncated.
func quoted(s string) string {
	if len(s) > maxLoggedValue {
		return fmt.Sprintf("%q... (%d bytes)", s[:maxLoggedValue], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// quotedList formats a list of strings for a CheckError.
func quotedList(list []string) string {
	b := []byte{'['}
	n := 0
	for i, s := range list {
		if i > 0 {
			b = append(b, ' ')
		}
		if n > 4*maxLoggedValue {
			b = fmt.Appendf(b, "... (%d more)", len(list)-i)
			break
		}
		q := quoted(s)
		n += len(q)
		b = append(b, q...)
	}
	return string(append(b, ']'))
}

// A Refusal is the error the interceptors and [Authorizer.Authorize]
// return for a call they turn away. It carries the gRPC status the client
// gets (its GRPCStatus method, which grpc-go reads) and the cause for the
// operator (Unwrap, so that [errors.Is] finds the sentinel and
// [errors.As] a [CheckError]).
//
// Its Error text is the status alone, the fixed message of the class of
// failure: an interceptor further out that wraps it with %w cannot send the
// cause to the client. The cause is in Err, and in the log line of the
// interceptors.
type Refusal struct {
	// Code is the status code: Unauthenticated, PermissionDenied or
	// Unavailable, or Canceled or DeadlineExceeded when the caller gave up
	// while a key refresh was in flight.
	Code codes.Code
	// Message is the fixed text the client gets, naming the class of
	// failure ("expired token", "token lacks a required scope").
	Message string
	// Challenge is the RFC 6750 WWW-Authenticate value sent with the
	// refusal, empty for none (Unavailable, a cancelled call).
	Challenge string
	// Err is the cause, for logs: it wraps the sentinel of the class.
	Err error
}

// Error returns the status as status.Error's text would: code and fixed
// message, never the cause.
func (r *Refusal) Error() string {
	return fmt.Sprintf("rpc error: code = %s desc = %s", r.Code, r.Message)
}

// Unwrap returns the cause.
func (r *Refusal) Unwrap() error { return r.Err }

// GRPCStatus returns the status the client gets; grpc-go and
// [status.FromError] read it.
func (r *Refusal) GRPCStatus() *status.Status { return status.New(r.Code, r.Message) }
