package grpcjwt

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

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
}

// An Option configures [UnaryServerInterceptor], [StreamServerInterceptor]
// and [AuthFunc].
type Option func(*interceptorOptions)

// WithPolicy sets the per-method rules. The default, like a nil policy,
// requires a valid token on every method.
func WithPolicy(p *Policy) Option {
	return func(o *interceptorOptions) { o.policy = p }
}

// WithLogger sets where the interceptors log each rejected call with its
// full cause (the client only gets a fixed message naming the class of
// failure). Rejections are logged at Info, a recovered panic at Error. The
// default logs nothing.
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
// on, the stream's context is cancelled at "exp" plus the verifier's leeway,
// sending and receiving fail from then on, and the call ends with
// Unauthenticated "token expired during the stream". The default is on: a
// token's authority ends at its expiry, and a client with a fresh token can
// reopen the stream.
func WithStreamExpiry(enforce bool) Option {
	return func(o *interceptorOptions) { o.streamExpiry = enforce }
}

// authorizer is the shared core of the interceptors and AuthFunc.
type authorizer struct {
	v *Verifier
	o interceptorOptions
}

func newAuthorizer(v *Verifier, opts []Option) *authorizer {
	if v == nil {
		panic("grpcjwt: nil *Verifier")
	}
	a := &authorizer{v: v, o: interceptorOptions{streamExpiry: true}}
	for _, opt := range opts {
		if opt != nil {
			opt(&a.o)
		}
	}
	return a
}

// authorize verifies the call's token against the rule for fullMethod and
// returns ctx carrying the claims (or ctx itself for a public call without
// a valid token). The error is a gRPC status error; trailer, if non-empty,
// is the WWW-Authenticate value to send.
func (a *authorizer) authorize(ctx context.Context, fullMethod string, rule *ruleEntry) (_ context.Context, _ *Claims, trailer string, err error) {
	defer func() {
		if r := recover(); r != nil {
			// A bug inside the library must never let a call through.
			if a.o.logger != nil {
				a.o.logger.LogAttrs(ctx, slog.LevelError, "grpcjwt: panic while authorizing; call rejected",
					slog.String("method", fullMethod), slog.Any("panic", r))
			}
			trailer = `Bearer error="invalid_token"`
			err = status.Error(codes.Unauthenticated, "token verification failed")
		}
	}()
	// The token, if any, is verified once; the enforced rule and, in a
	// dry run, the candidate rule are then judged on the same outcome.
	var c *Claims
	var hit bool
	raw, terr := bearerToken(ctx, a.v.o.maxTokenBytes)
	if terr == nil {
		c, hit, terr = a.v.verifyTokenHit(ctx, raw)
	}
	deny := a.judge(ctx, rule, c, terr)
	if a.o.dryRun != nil {
		a.dryRunCheck(ctx, fullMethod, c, terr, deny != nil)
	}
	d := Decision{Method: fullMethod, Rule: rule.key, Public: rule.Public, Claims: c, CacheHit: hit}
	if deny != nil {
		if rule.Public && !a.o.strictPublic {
			// An invalid optional token on a public method is ignored.
			if a.o.logger != nil {
				a.log(ctx, fullMethod, rule, fmt.Errorf("invalid optional token ignored: %w", deny))
			}
			d.Allowed, d.Claims, d.Err = true, nil, deny
			a.report(ctx, &d)
			return ctx, nil, "", nil
		}
		a.log(ctx, fullMethod, rule, deny)
		trailer, err = toStatus(ctx, deny, rule)
		d.Code, d.Reason, d.Err, d.Claims = status.Code(err), reasonOf(deny), deny, nil
		a.report(ctx, &d)
		return ctx, nil, trailer, err
	}
	d.Allowed = true
	a.report(ctx, &d)
	if c == nil {
		return ctx, nil, "", nil
	}
	return ContextWithClaims(ctx, c), c, "", nil
}

// judge decides a call under one rule, given the verification outcome: nil
// to allow, else the cause of the denial. A public rule allows a call
// without a token, and one whose token fails unless strict; the caller
// decides what an ignored token means.
func (a *authorizer) judge(ctx context.Context, rule *ruleEntry, c *Claims, terr error) error {
	if terr != nil {
		if rule.Public && errors.Is(terr, ErrMissingToken) {
			return nil
		}
		return terr
	}
	if err := checkBinding(ctx, rule, c); err != nil {
		return err
	}
	return a.checkRule(rule, c)
}

// checkBinding holds a certificate-bound token (RFC 8705 §3) to the client
// certificate of the call's mutual-TLS connection, and a rule that demands
// binding to a bound token.
func checkBinding(ctx context.Context, rule *ruleEntry, c *Claims) error {
	if c.CertificateThumbprint == "" {
		if rule.CertificateBound {
			return fmt.Errorf("%w: the method requires a certificate-bound token", ErrCertificateBinding)
		}
		return nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return fmt.Errorf("%w: no peer information", ErrCertificateBinding)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the call came without a TLS client certificate", ErrCertificateBinding)
	}
	sum := sha256.Sum256(info.State.PeerCertificates[0].Raw)
	if b64.EncodeToString(sum[:]) != c.CertificateThumbprint {
		return fmt.Errorf("%w: the client certificate's thumbprint differs", ErrCertificateBinding)
	}
	return nil
}

// errRuleAudience is ErrAudience raised by a method rule rather than by the
// verifier.
var errRuleAudience = fmt.Errorf("%w for this method", ErrAudience)

// checkRule applies the audience check, against the rule's audiences when
// it names some and the verifier's otherwise, then the rule's scopes.
func (a *authorizer) checkRule(rule *ruleEntry, c *Claims) error {
	if len(rule.Audiences) > 0 {
		if !slices.ContainsFunc(rule.Audiences, c.HasAudience) {
			return errRuleAudience
		}
	} else if err := a.v.checkAudience(c, a.v.o.audiences); err != nil {
		return err
	}
	for _, s := range rule.Scopes {
		if !c.HasScope(s) {
			return fmt.Errorf("%w: needs %q", ErrInsufficientScope, s)
		}
	}
	return nil
}

func (a *authorizer) log(ctx context.Context, method string, rule *ruleEntry, err error) {
	if a.o.logger == nil {
		return
	}
	a.o.logger.LogAttrs(ctx, slog.LevelInfo, "grpcjwt: call rejected",
		slog.String("method", method), slog.String("rule", rule.key), slog.String("error", err.Error()))
}

// errNotBearer is ErrInvalidRequest for credentials of another scheme
// ("Basic ..."). RFC 6750 §3.1 treats them like no credentials at all: the
// challenge then carries no error code.
var errNotBearer = fmt.Errorf("%w: scheme is not Bearer", ErrInvalidRequest)

// bearerToken extracts the token from the incoming "authorization"
// metadata: exactly one value, scheme "Bearer" in any case, surrounding
// space tolerated, at most maxBytes long.
func bearerToken(ctx context.Context, maxBytes int) (string, error) {
	// ValueFromIncomingContext copies one key's values, not the whole
	// metadata as FromIncomingContext does.
	return bearerFromMD(metadata.ValueFromIncomingContext(ctx, "authorization"), maxBytes)
}

// bearerFromMD is bearerToken on the metadata values themselves.
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

// toStatus maps an error to the gRPC status and WWW-Authenticate value the
// client gets: a fixed message per class of failure, never the detail.
func toStatus(ctx context.Context, err error, rule *ruleEntry) (string, error) {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return "", status.FromContextError(ctxErr).Err()
	}
	code, errCode, msg := codes.Unauthenticated, "invalid_token", "invalid token"
	switch {
	case errors.Is(err, ErrMissingToken):
		return "Bearer", status.Error(codes.Unauthenticated, "missing bearer token")
	case errors.Is(err, errNotBearer):
		return "Bearer", status.Error(codes.Unauthenticated, "authorization must be a single bearer token")
	case errors.Is(err, ErrInvalidRequest):
		errCode, msg = "invalid_request", "authorization must be a single bearer token"
	case errors.Is(err, ErrInsufficientScope):
		return fmt.Sprintf(`Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="%s"`, rule.scopeHeader),
			status.Error(codes.PermissionDenied, "token lacks a required scope")
	case errors.Is(err, ErrKeysUnavailable):
		return "", status.Error(codes.Unavailable, "token signing keys unavailable")
	case errors.Is(err, ErrKeysetClosed):
		return "", status.Error(codes.Unavailable, "token signing keys unavailable")
	case errors.Is(err, ErrCertificateBinding):
		msg = "token not bound to this client certificate"
	case errors.Is(err, errRuleAudience):
		msg = "token audience not accepted for this method"
	case errors.Is(err, ErrAudience):
		msg = "token audience not accepted"
	case errors.Is(err, ErrExpired):
		msg = "expired token"
	case errors.Is(err, ErrNotYetValid):
		msg = "token not yet valid"
	case errors.Is(err, ErrIssuer):
		msg = "token issuer not trusted"
	case errors.Is(err, ErrSignature):
		msg = "invalid token signature"
	case errors.Is(err, ErrUnknownKey):
		msg = "token signed by an unknown key"
	case errors.Is(err, ErrAlgorithm):
		msg = "token signing algorithm not accepted"
	case errors.Is(err, ErrTokenType):
		msg = "token type not accepted"
	case errors.Is(err, ErrMissingClaim):
		msg = "token lacks a required claim"
	case errors.Is(err, ErrLifetime):
		msg = "token lifetime too long"
	case errors.Is(err, ErrMalformed):
		msg = "malformed token"
	}
	return fmt.Sprintf(`Bearer error="%s", error_description="%s"`, errCode, msg), status.Error(code, msg)
}

// UnaryServerInterceptor returns an interceptor that authorizes each unary
// call: it extracts the bearer token, verifies it with v, applies the rule
// that [WithPolicy] sets for the method, and passes the claims to the
// handler in its context ([ClaimsFromContext]). A rejected call gets a
// status error (see the package documentation) and, as a trailer, an RFC
// 6750 "www-authenticate" value.
func UnaryServerInterceptor(v *Verifier, opts ...Option) grpc.UnaryServerInterceptor {
	a := newAuthorizer(v, opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		newCtx, _, trailer, err := a.authorize(ctx, info.FullMethod, a.policy().match(info.FullMethod))
		if err != nil {
			if trailer != "" {
				_ = grpc.SetTrailer(ctx, metadata.Pairs("www-authenticate", trailer))
			}
			return nil, err
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
	a := newAuthorizer(v, opts)
	return func(ctx context.Context) (context.Context, error) {
		method, ok := grpc.Method(ctx)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "cannot authorize a call without a method")
		}
		newCtx, _, trailer, err := a.authorize(ctx, method, a.policy().match(method))
		if err != nil && trailer != "" {
			// The context of a unary call and of a stream both carry the
			// server transport stream, so this works for either.
			_ = grpc.SetTrailer(ctx, metadata.Pairs("www-authenticate", trailer))
		}
		return newCtx, err
	}
}
