package grpcjwt

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// interceptorOptions holds the settings of the interceptors and AuthFunc.
type interceptorOptions struct {
	policy       *Policy
	watcher      *PolicyWatcher
	dryRun       *Policy
	onDecision   func(context.Context, Decision)
	logger       *slog.Logger
	strictPublic bool
	streamExpiry bool
	check        func(ctx context.Context, method string, c *Claims) error
}

// An Option configures [UnaryServerInterceptor], [StreamServerInterceptor],
// [AuthFunc], [PreAuthHandle] and [NewAuthorizer].
type Option func(*interceptorOptions)

// WithPolicy sets the per-method rules. The default, like a nil policy,
// requires a valid token on every method.
func WithPolicy(p *Policy) Option {
	return func(o *interceptorOptions) { o.policy = p }
}

// WithLogger sets where the interceptors log refused calls. The default,
// like nil, is the [slog.Default] of the moment the interceptor is built;
// pass slog.New(slog.DiscardHandler) to silence it. [WithKeysetLogger] is
// the keyset's equivalent.
//
// Each refused call is logged with its full cause: the method, the rule,
// the code, and for a token whose signature verified, the check that
// failed with the token's value and the accepted ones ([CheckError]). A
// token whose signature did not verify never has its values logged. The
// client gets only the fixed message of the class of failure.
//
// So that a flood of bad tokens cannot flood the log, one refusal a minute
// is logged at Warn, with the count of refusals since the previous Warn
// line; every other refusal is logged at Debug. A misconfiguration (a
// wrong audience, an untrusted issuer) thus shows at the default level at
// once; enable Debug to see every call. A recovered panic is logged at
// Error, and a dry-run disagreement ([WithDryRunPolicy]) at Info.
func WithLogger(l *slog.Logger) Option {
	return func(o *interceptorOptions) { o.logger = l }
}

// WithStrictPublicTokens makes a public method reject a call whose token is
// present but invalid, as a protected method would. By default such a token
// is ignored and the call proceeds without claims.
func WithStrictPublicTokens() Option {
	return func(o *interceptorOptions) { o.strictPublic = true }
}

// WithStreamExpiry sets whether a stream ends when its token expires. When
// on, the stream's context is cancelled at "exp" plus the leeway of the
// verifier that verified the token, sending and receiving fail from then
// on, and the call ends with Unauthenticated "token expired during the
// stream". The default is on: a token's authority ends at its expiry, and a
// client with a fresh token can reopen the stream.
func WithStreamExpiry(enforce bool) Option {
	return func(o *interceptorOptions) { o.streamExpiry = enforce }
}

// WithClaimsCheck adds the application's own check, for what a [Rule]
// cannot say as data. check runs on every call that carries a valid token,
// after the method's rule has passed, with the method and the verified
// claims; it must be fast and safe for concurrent use. A nil error allows
// the call.
//
// An error refuses the call with PermissionDenied and the fixed message
// "permission denied", unless it is or wraps a gRPC status (status.Error,
// or a type with a GRPCStatus method), whose code and own message the
// client then gets: the text of an error wrapping the status stays in the
// log. The error itself is logged, wrapped in [ErrDenied]. On a public
// method a refused token is ignored like any invalid optional token.
//
// A check that needs the request message (a tenant named in the request
// must be the token's) belongs after the interceptor, where the message
// is: in the handler, or in a unary interceptor chained after grpcjwt's
// that reads [ClaimsFromContext] and the request.
func WithClaimsCheck(check func(ctx context.Context, method string, c *Claims) error) Option {
	return func(o *interceptorOptions) { o.check = check }
}

// Authorizer decides calls: it extracts the bearer token, verifies it with
// a [Verifier], applies the method's [Rule] and the application's check,
// and logs and reports each decision. It is the transport-neutral core
// that [UnaryServerInterceptor], [StreamServerInterceptor], [AuthFunc] and
// [PreAuthHandle] share; other transports use it directly (the connectjwt
// module does, for connect-go). It is safe for concurrent use.
type Authorizer struct {
	v   *Verifier
	o   interceptorOptions
	log *slog.Logger

	// The log's rate limit: the time of the last refusal logged at Warn
	// (nanoseconds since start, on the monotonic clock, so that a step of
	// the wall clock cannot silence Warn; 0 before the first) and the
	// refusals since.
	start    time.Time
	lastWarn atomic.Int64
	refused  atomic.Int64
}

// refusalWarnEvery is the least time between two refusals logged at Warn.
const refusalWarnEvery = time.Minute

// NewAuthorizer returns an Authorizer for v with the interceptors'
// options. It panics if v is nil, as the interceptors do: a server
// without a verifier is a programming error, found at start-up.
func NewAuthorizer(v *Verifier, opts ...Option) *Authorizer {
	if v == nil {
		panic("grpcjwt: nil *Verifier")
	}
	a := &Authorizer{v: v, o: interceptorOptions{streamExpiry: true}, start: time.Now()}
	for _, opt := range opts {
		if opt != nil {
			opt(&a.o)
		}
	}
	a.log = a.o.logger
	if a.log == nil {
		a.log = slog.Default()
	}
	return a
}

// Call describes one call to [Authorizer.Authorize].
type Call struct {
	// Method is the full method name, "/pkg.Service/Method" (a gRPC
	// method, or a connect-go procedure).
	Method string
	// Authorization holds the values of the call's "authorization"
	// metadata or header, all of them: a call with two is refused.
	Authorization []string
	// TLS is the state of the call's TLS connection, nil without TLS. It
	// is read only for a certificate-bound token (RFC 8705), whose
	// certificate must be the client's.
	TLS *tls.ConnectionState
}

// Authorize decides call. It returns ctx carrying the verified claims
// ([ClaimsFromContext]) and the claims, or, for a public method called
// without a valid token, ctx itself and nil claims. A refused call gets a
// *[Refusal] error, which names the status code, the client's message and
// the WWW-Authenticate value to send. ctx bounds any wait for a key
// refresh.
func (a *Authorizer) Authorize(ctx context.Context, call Call) (context.Context, *Claims, error) {
	newCtx, c, r := a.authorize(ctx, call.Method, a.Policy().match(call.Method), call.Authorization,
		func() *tls.ConnectionState { return call.TLS })
	if r != nil {
		return ctx, nil, r
	}
	return newCtx, c, nil
}

// Policy returns the policy in force: the watcher's current one with
// [WithPolicyWatcher], else the one of [WithPolicy] (nil: every method
// requires a valid token).
func (a *Authorizer) Policy() *Policy {
	if a.o.watcher != nil {
		return a.o.watcher.Policy()
	}
	return a.o.policy
}

// StreamDeadline returns when a stream of method, authorized with claims
// c, must end: the token's "exp" plus the leeway of the verifier that
// verified it. ok is false when the stream is not bounded: no claims, a
// public method, or [WithStreamExpiry](false).
func (a *Authorizer) StreamDeadline(method string, c *Claims) (deadline time.Time, ok bool) {
	return a.streamDeadline(a.Policy().match(method), c)
}

// streamDeadline is StreamDeadline under the rule the stream was
// authorized with.
func (a *Authorizer) streamDeadline(rule *ruleEntry, c *Claims) (deadline time.Time, ok bool) {
	if c == nil || !a.o.streamExpiry || rule.Public {
		return time.Time{}, false
	}
	return c.Expiry.Add(a.v.leewayFor(c)), true
}

// StreamExpired logs that a stream of method outlived its token, as any
// other refusal is logged, and returns the refusal that ends it:
// Unauthenticated "token expired during the stream", with an RFC 6750
// challenge so the client knows to fetch a fresh token.
func (a *Authorizer) StreamExpired(ctx context.Context, method string) *Refusal {
	return a.streamExpired(ctx, method, a.Policy().match(method))
}

// streamExpired is StreamExpired under the rule the stream was authorized
// with.
func (a *Authorizer) streamExpired(ctx context.Context, method string, rule *ruleEntry) *Refusal {
	r := &Refusal{Code: codes.Unauthenticated, Message: "token expired during the stream",
		Challenge: expiredChallenge, Err: fmt.Errorf("%w: during the stream", ErrExpired)}
	a.logRefusal(ctx, method, rule, r)
	return r
}

// expiredChallenge is the WWW-Authenticate value of an expired token.
const expiredChallenge = `Bearer error="invalid_token", error_description="expired token"`

// authorize is Authorize for a rule already matched; peerTLS gives the
// connection's TLS state when a certificate-bound token needs it.
func (a *Authorizer) authorize(ctx context.Context, fullMethod string, rule *ruleEntry, authz []string,
	peerTLS func() *tls.ConnectionState) (_ context.Context, _ *Claims, refusal *Refusal) {
	defer func() {
		if r := recover(); r != nil {
			// A bug inside the library must never let a call through.
			a.log.LogAttrs(ctx, slog.LevelError, "grpcjwt: panic while authorizing; call rejected",
				slog.String("method", fullMethod), slog.Any("panic", r))
			refusal = &Refusal{Code: codes.Unauthenticated, Message: "token verification failed",
				Challenge: `Bearer error="invalid_token"`, Err: fmt.Errorf("grpcjwt: panic while authorizing: %v", r)}
		}
	}()
	// The token, if any, is verified once; the enforced rule and, in a
	// dry run, the candidate rule are then judged on the same outcome.
	var c *Claims
	var hit bool
	raw, terr := bearerFromMD(authz, a.v.o.maxTokenBytes)
	if terr == nil {
		c, hit, terr = a.v.verifyTokenHit(ctx, raw)
	}
	var check appCheck
	deny := a.judge(ctx, fullMethod, rule, c, terr, peerTLS, &check)
	if a.o.dryRun != nil {
		a.dryRunCheck(ctx, fullMethod, c, terr, deny != nil, peerTLS, &check)
	}
	d := Decision{Method: fullMethod, Rule: rule.key, Public: rule.Public, Claims: c, CacheHit: hit}
	if deny != nil {
		if rule.Public && !a.o.strictPublic {
			// An invalid optional token on a public method is ignored.
			if a.log.Enabled(ctx, slog.LevelDebug) {
				a.log.LogAttrs(ctx, slog.LevelDebug, "grpcjwt: invalid optional token ignored on a public method",
					slog.String("method", fullMethod), slog.String("rule", rule.key), slog.String("error", deny.Error()))
			}
			d.Allowed, d.Claims, d.Err = true, nil, deny
			a.report(ctx, &d)
			return ctx, nil, nil
		}
		r := toRefusal(ctx, deny, rule)
		a.logRefusal(ctx, fullMethod, rule, r)
		d.Code, d.Reason, d.Err, d.Claims = r.Code, reasonOf(deny), deny, nil
		a.report(ctx, &d)
		return ctx, nil, r
	}
	d.Allowed = true
	a.report(ctx, &d)
	if c == nil {
		return ctx, nil, nil
	}
	return ContextWithClaims(ctx, c), c, nil
}

// judge decides a call under one rule, given the verification outcome: nil
// to allow, else the cause of the denial. A public rule allows a call
// without a token, and one whose token fails unless strict; the caller
// decides what an ignored token means.
func (a *Authorizer) judge(ctx context.Context, method string, rule *ruleEntry, c *Claims, terr error,
	peerTLS func() *tls.ConnectionState, check *appCheck) error {
	if terr != nil {
		if rule.Public && errors.Is(terr, ErrMissingToken) {
			return nil
		}
		return terr
	}
	if err := checkBinding(peerTLS, rule, c); err != nil {
		return err
	}
	if err := a.checkRule(rule, c); err != nil {
		return err
	}
	if a.o.check != nil {
		if !check.done {
			check.done, check.err = true, a.o.check(ctx, method, c)
		}
		if check.err != nil {
			return &checkDenial{err: check.err}
		}
	}
	return nil
}

// appCheck holds the outcome of the application's check (WithClaimsCheck)
// for one call, which runs it at most once: the enforced rule and the
// dry-run rule are judged on the same outcome.
type appCheck struct {
	done bool
	err  error
}

// checkDenial is an error of the application's check (WithClaimsCheck).
type checkDenial struct{ err error }

func (d *checkDenial) Error() string   { return ErrDenied.Error() + ": " + d.err.Error() }
func (d *checkDenial) Unwrap() []error { return []error{ErrDenied, d.err} }

// grpcPeerTLS returns the TLS state of a gRPC call's connection, or nil.
func grpcPeerTLS(ctx context.Context) func() *tls.ConnectionState {
	return func() *tls.ConnectionState {
		if p, ok := peer.FromContext(ctx); ok {
			if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				return &info.State
			}
		}
		return nil
	}
}

// checkBinding holds a certificate-bound token (RFC 8705 §3) to the client
// certificate of the call's mutual-TLS connection, and a rule that demands
// binding to a bound token.
func checkBinding(peerTLS func() *tls.ConnectionState, rule *ruleEntry, c *Claims) error {
	if c.CertificateThumbprint == "" {
		if rule.CertificateBound {
			return fmt.Errorf("%w: the method requires a certificate-bound token", ErrCertificateBinding)
		}
		return nil
	}
	state := peerTLS()
	if state == nil || len(state.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the call came without a TLS client certificate", ErrCertificateBinding)
	}
	sum := sha256.Sum256(state.PeerCertificates[0].Raw)
	if b64.EncodeToString(sum[:]) != c.CertificateThumbprint {
		return fmt.Errorf("%w: the client certificate's thumbprint differs", ErrCertificateBinding)
	}
	return nil
}

// errRuleAudience and errRuleIssuer are ErrAudience and ErrIssuer raised
// by a method rule rather than by the verifier.
var (
	errRuleAudience = fmt.Errorf("%w for this method", ErrAudience)
	errRuleIssuer   = fmt.Errorf("%w for this method", ErrIssuer)
)

// checkRule applies the verifier's audience check, then the rule's
// audiences, issuers, scopes and claims.
func (a *Authorizer) checkRule(rule *ruleEntry, c *Claims) error {
	if err := a.v.checkAudience(c, a.v.o.audiences); err != nil {
		return err
	}
	if len(rule.Audiences) > 0 && !slices.ContainsFunc(rule.Audiences, c.HasAudience) {
		return audienceError(errRuleAudience, c, rule.Audiences)
	}
	if len(rule.Issuers) > 0 && !slices.Contains(rule.Issuers, c.Issuer) {
		return &CheckError{Err: errRuleIssuer, Check: "iss", Got: quoted(c.Issuer), Want: "one of " + quotedList(rule.Issuers)}
	}
	for _, s := range rule.Scopes {
		if !c.HasScope(s) {
			return &CheckError{Err: ErrInsufficientScope, Check: "scope", Got: quotedList(c.Scopes),
				Want: fmt.Sprintf("all of %s, lacking %s", quotedList(rule.Scopes), quoted(s))}
		}
	}
	if len(rule.AnyScopes) > 0 && !slices.ContainsFunc(rule.AnyScopes, c.HasScope) {
		return &CheckError{Err: ErrInsufficientScope, Check: "scope", Got: quotedList(c.Scopes), Want: "one of " + quotedList(rule.AnyScopes)}
	}
	if len(rule.claims) > 0 {
		return checkClaimRules(rule.claims, c)
	}
	return nil
}

// errNotBearer is ErrInvalidRequest for credentials of another scheme
// ("Basic ..."). RFC 6750 §3.1 treats them like no credentials at all: the
// challenge then carries no error code.
var errNotBearer = fmt.Errorf("%w: scheme is not Bearer", ErrInvalidRequest)

// authorizationMD returns the values of a gRPC call's "authorization"
// metadata. ValueFromIncomingContext copies one key's values, not the
// whole metadata as FromIncomingContext does.
func authorizationMD(ctx context.Context) []string {
	return metadata.ValueFromIncomingContext(ctx, "authorization")
}

// bearerFromMD extracts the token from the "authorization" values:
// exactly one value, scheme "Bearer" in any case, surrounding space
// tolerated, at most maxBytes long (plus room for the scheme).
func bearerFromMD(vals []string, maxBytes int) (string, error) {
	switch {
	case len(vals) == 0:
		return "", ErrMissingToken
	case len(vals) > 1:
		return "", fmt.Errorf("%w: %d authorization values", ErrInvalidRequest, len(vals))
	}
	v := vals[0]
	if len(v) > maxBytes+64 {
		return "", fmt.Errorf("%w: authorization value of %d bytes exceeds the limit", ErrMalformed, len(v))
	}
	v = strings.TrimSpace(v)
	scheme, tok, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNotBearer
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrInvalidRequest)
	}
	return tok, nil
}

// toRefusal maps an error to the status and WWW-Authenticate value the
// client gets: a fixed message per class of failure, never the detail.
func toRefusal(ctx context.Context, err error, rule *ruleEntry) *Refusal {
	if ctxErr := ctx.Err(); ctxErr != nil {
		s := status.FromContextError(ctxErr)
		return &Refusal{Code: s.Code(), Message: s.Message(), Err: err}
	}
	r := &Refusal{Code: codes.Unauthenticated, Message: "invalid token", Err: err}
	errCode := "invalid_token"
	var denial *checkDenial
	switch {
	case errors.As(err, &denial):
		// The application's check decides its own status, if it gives one.
		// Its status's own message, not status.FromError's: that would
		// put the text of any error wrapping the status on the wire.
		r.Code, r.Message = codes.PermissionDenied, "permission denied"
		var gs interface{ GRPCStatus() *status.Status }
		if errors.As(denial.err, &gs) {
			if s := gs.GRPCStatus(); s != nil && s.Code() != codes.OK {
				r.Code, r.Message = s.Code(), s.Message()
			}
		}
		return r
	case errors.Is(err, ErrMissingToken):
		r.Message, r.Challenge = "missing bearer token", "Bearer"
		return r
	case errors.Is(err, errNotBearer):
		r.Message, r.Challenge = "authorization must be a single bearer token", "Bearer"
		return r
	case errors.Is(err, ErrInvalidRequest):
		errCode, r.Message = "invalid_request", "authorization must be a single bearer token"
	case errors.Is(err, ErrInsufficientScope):
		r.Code, r.Message = codes.PermissionDenied, "token lacks a required scope"
		r.Challenge = fmt.Sprintf(`Bearer error="insufficient_scope", error_description="%s", scope="%s"`, r.Message, rule.scopeHeader)
		return r
	case errors.Is(err, ErrClaimRequirement):
		r.Code, r.Message = codes.PermissionDenied, "token lacks a required claim value"
		r.Challenge = fmt.Sprintf(`Bearer error="insufficient_scope", error_description="%s"`, r.Message)
		return r
	case errors.Is(err, ErrKeysUnavailable), errors.Is(err, ErrKeysetClosed):
		r.Code, r.Message = codes.Unavailable, "token signing keys unavailable"
		return r
	case errors.Is(err, ErrCertificateBinding):
		r.Message = "token not bound to this client certificate"
	case errors.Is(err, ErrUnsupportedConfirmation):
		r.Message = "token bound to a proof of possession this server cannot check"
	case errors.Is(err, errRuleAudience):
		r.Message = "token audience not accepted for this method"
	case errors.Is(err, ErrAudience):
		r.Message = "token audience not accepted"
	case errors.Is(err, ErrExpired):
		r.Message = "expired token"
	case errors.Is(err, ErrNotYetValid):
		r.Message = "token not yet valid"
	case errors.Is(err, errRuleIssuer):
		r.Message = "token issuer not accepted for this method"
	case errors.Is(err, ErrIssuer):
		r.Message = "token issuer not trusted"
	case errors.Is(err, ErrSignature):
		r.Message = "invalid token signature"
	case errors.Is(err, ErrUnknownKey):
		r.Message = "token signed by an unknown key"
	case errors.Is(err, ErrAlgorithm):
		r.Message = "token signing algorithm not accepted"
	case errors.Is(err, ErrTokenType):
		r.Message = "token type not accepted"
	case errors.Is(err, ErrMissingClaim):
		r.Message = "token lacks a required claim"
	case errors.Is(err, ErrLifetime):
		r.Message = "token lifetime too long"
	case errors.Is(err, ErrMalformed):
		r.Message = "malformed token"
	}
	r.Challenge = fmt.Sprintf(`Bearer error="%s", error_description="%s"`, errCode, r.Message)
	return r
}

// logRefusal logs a refused call: at Warn at most once per
// refusalWarnEvery, with the number of refusals since the previous Warn
// line, and at Debug otherwise.
func (a *Authorizer) logRefusal(ctx context.Context, method string, rule *ruleEntry, r *Refusal) {
	a.refused.Add(1)
	level := slog.LevelDebug
	var count int64
	now, last := int64(time.Since(a.start))+1, a.lastWarn.Load()
	if (last == 0 || now-last >= int64(refusalWarnEvery)) && a.lastWarn.CompareAndSwap(last, now) {
		level = slog.LevelWarn
		count = a.refused.Swap(0)
	}
	if !a.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs, slog.String("method", method), slog.String("rule", rule.key),
		slog.String("code", r.Code.String()))
	if reason := reasonOf(r.Err); reason != nil {
		attrs = append(attrs, slog.String("reason", reason.Error()))
	}
	var ce *CheckError
	if errors.As(r.Err, &ce) {
		attrs = append(attrs, slog.String("check", ce.Check), slog.String("got", ce.Got), slog.String("want", ce.Want))
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("error", r.Err.Error()))
	}
	if level == slog.LevelWarn {
		attrs = append(attrs, slog.Int64("refused_since_last_warning", count))
	}
	a.log.LogAttrs(ctx, level, "grpcjwt: call refused", attrs...)
}

// UnaryServerInterceptor returns an interceptor that authorizes each unary
// call: it extracts the bearer token, verifies it with v, applies the rule
// that [WithPolicy] sets for the method, and passes the claims to the
// handler in its context ([ClaimsFromContext]). A rejected call gets a
// *[Refusal] error (see the package documentation for the codes) and, as
// a trailer, an RFC 6750 "www-authenticate" value.
func UnaryServerInterceptor(v *Verifier, opts ...Option) grpc.UnaryServerInterceptor {
	a := NewAuthorizer(v, opts...)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		newCtx, _, r := a.authorize(ctx, info.FullMethod, a.Policy().match(info.FullMethod), authorizationMD(ctx), grpcPeerTLS(ctx))
		if r != nil {
			if r.Challenge != "" {
				_ = grpc.SetTrailer(ctx, metadata.Pairs("www-authenticate", r.Challenge))
			}
			return nil, r
		}
		return handler(newCtx, req)
	}
}

// AuthFunc returns an [auth.AuthFunc] for go-grpc-middleware's auth
// interceptors, applying the same verification and rules as
// [UnaryServerInterceptor], including the "www-authenticate" trailer of a
// rejected call. It finds the method with [grpc.Method]. For streams the
// token's expiry is not enforced during the stream; prefer this package's
// interceptors unless the chain must go through the auth package.
func AuthFunc(v *Verifier, opts ...Option) auth.AuthFunc {
	a := NewAuthorizer(v, opts...)
	return func(ctx context.Context) (context.Context, error) {
		method, ok := grpc.Method(ctx)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "cannot authorize a call without a method")
		}
		newCtx, _, r := a.authorize(ctx, method, a.Policy().match(method), authorizationMD(ctx), grpcPeerTLS(ctx))
		if r != nil {
			if r.Challenge != "" {
				// The context of a unary call and of a stream both carry
				// the server transport stream, so this works for either.
				_ = grpc.SetTrailer(ctx, metadata.Pairs("www-authenticate", r.Challenge))
			}
			return nil, r
		}
		return newCtx, nil
	}
}
