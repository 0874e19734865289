package grpcjwt

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
)

// Decision describes one authorization decision of the interceptors, for
// metrics, tracing and audit logs; see [WithDecisionHook].
type Decision struct {
	// Method is the full gRPC method name.
	Method string
	// Rule is the key of the rule that applied ("/pkg.Service/Method",
	// "/pkg.Service/*", "*"), or "(built-in default: valid token required)".
	Rule string
	// Public reports whether that rule made the method public.
	Public bool
	// Allowed reports whether the call went through.
	Allowed bool
	// Code is the gRPC code of a denied call (Unauthenticated,
	// PermissionDenied, Unavailable, ...); OK when allowed.
	Code codes.Code
	// Reason is the sentinel error naming the class of a denial
	// (ErrMissingToken, ErrExpired, ErrAudience, ErrInsufficientScope, ...);
	// nil when allowed.
	Reason error
	// Err is the full cause for logs: a denial's detail, or the reason an
	// optional token on a public method was ignored. Nil otherwise.
	Err error
	// Claims are the verified claims of an allowed call, nil when the call
	// carried no valid token. Issuer, ClientID and Subject are here.
	Claims *Claims
	// CacheHit reports whether the token was found in the verified-token
	// cache.
	CacheHit bool
}

// WithDecisionHook calls hook after every authorization decision of the
// interceptors (not of [PreAuthHandle]), allowed or denied, on the call's
// goroutine: keep it fast and never block. Counting allowed and denied
// calls by Reason, Rule and CacheHit gives what Envoy's jwt_authn filter
// exposes as allowed, denied, jwt_cache_hit and jwt_cache_miss; see
// [WithFetchHook] for the keyset's side.
func WithDecisionHook(hook func(ctx context.Context, d Decision)) Option {
	return func(o *interceptorOptions) { o.onDecision = hook }
}

func (a *Authorizer) report(ctx context.Context, d *Decision) {
	if a.o.onDecision != nil {
		a.o.onDecision(ctx, *d)
	}
}

// reasons are the sentinels a denial is classified by, most specific first.
var reasons = []error{
	ErrDenied, ErrMissingToken, ErrInvalidRequest, ErrInsufficientScope, ErrClaimRequirement, ErrKeysUnavailable, ErrKeysetClosed,
	ErrCertificateBinding, ErrUnsupportedConfirmation, ErrAudience, ErrExpired, ErrNotYetValid, ErrIssuer, ErrSignature,
	ErrUnknownKey, ErrAlgorithm, ErrTokenType, ErrMissingClaim, ErrLifetime, ErrMalformed,
}

// reasonOf returns the sentinel that classifies err, or err itself when
// none does (a context error).
func reasonOf(err error) error {
	for _, r := range reasons {
		if errors.Is(err, r) {
			return r
		}
	}
	return err
}

// FetchEvent describes one fetch of a remote keyset's JWK Set; see
// [WithFetchHook].
type FetchEvent struct {
	// Err is nil for a fetch that installed a new key set.
	Err error
	// Duration is how long the fetch took.
	Duration time.Duration
	// Keys is the number of usable keys held after the fetch.
	Keys int
	// Staleness is the time since the last successful fetch (zero after a
	// success, and before the first one).
	Staleness time.Duration
}

// WithFetchHook calls hook after every fetch of the JWK Set, successful or
// not, from the fetching goroutine: keep it fast. It gives what Envoy's
// jwt_authn exposes as jwks_fetch_success and jwks_fetch_failed, with the
// fetch duration, the key count and how stale the held keys are.
func WithFetchHook(hook func(FetchEvent)) KeysetOption {
	return func(o *keysetOptions) error {
		o.onFetch = hook
		return nil
	}
}

// WithDryRunPolicy evaluates p beside the enforced policy on every call
// and logs, at Info on the interceptors' logger, each call that p would
// decide differently ("would deny" or "would allow"), without changing the
// outcome. Use it to roll out new rules: run the candidate in dry run,
// watch the log, then enforce it.
func WithDryRunPolicy(p *Policy) Option {
	return func(o *interceptorOptions) { o.dryRun = p }
}

// dryRunCheck logs where the dry-run policy disagrees with the enforced
// decision.
func (a *Authorizer) dryRunCheck(ctx context.Context, method string, c *Claims, terr error, denied bool,
	peerTLS func() *tls.ConnectionState, check *appCheck) {
	rule := a.o.dryRun.match(method)
	deny := a.judge(ctx, method, rule, c, terr, peerTLS, check)
	if deny != nil && rule.Public && !a.o.strictPublic {
		deny = nil
	}
	if (deny != nil) == denied {
		return
	}
	if deny != nil {
		a.log.LogAttrs(ctx, slog.LevelInfo, "grpcjwt: dry-run policy would deny",
			slog.String("method", method), slog.String("rule", rule.key), slog.String("error", deny.Error()))
		return
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "grpcjwt: dry-run policy would allow",
		slog.String("method", method), slog.String("rule", rule.key))
}
