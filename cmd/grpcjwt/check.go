package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpcjwt/grpcjwt"
)

const checkUsage = `Usage: grpcjwt check -issuer URL | -jwks URL -iss ISSUER  -audience AUD  [flags]  TOKEN | @FILE | -

Verifies TOKEN as a server with the same verifier options would, and prints:
  VALID, or REFUSED: <class> with the check that failed, the token's value and
  the wanted one (or the library's cause), then the verified claims. The
  header and payload of a token whose signature did not verify are printed
  apart, under UNVERIFIED.
With -method (and -policy), also the rule that applies and the decision the
interceptor would make: ALLOW, or DENY with the gRPC code, the client's
message and the www-authenticate value. Without a token, -method shows the
decision for a call that carries none.

The token is the argument, @FILE, or - for stdin; surrounding white space and
a leading "Bearer " are ignored. Flags may follow the token.

Exit status: 0 when the token verifies and, with -method, the call is
allowed (with -method alone and no token: when the method is public); 1
when the token is refused or the call denied (so 1 for an invalid token on
a public method, which the call ignores); 2 for a usage or configuration
error (an invalid policy document, discovery or the JWK Set fetch failing).

Flags:
`

// checkFlags are the flags of the check command.
type checkFlags struct {
	issuer, jwks      string
	iss, audiences    listFlag
	scopeClaims, algs listFlag
	requiredClaims    listFlag
	leeway            time.Duration
	maxLifetime       time.Duration
	maxTokenSize      int
	strictType        bool
	acceptIDTokens    bool
	ignoreCnf         bool
	skipIssuer        bool
	skipAudience      bool
	at                string
	timeout           time.Duration
	policyFile        string
	method            string
	strictPublic      bool
	set               map[string]bool // the flags given
}

func (f *checkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.issuer, "issuer", "", "the issuer `URL`, exactly as the tokens' iss spells it; its keys are found by\n"+
		"OpenID Connect / RFC 8414 discovery (NewIssuerKeyset), and it becomes the trusted issuer")
	fs.StringVar(&f.jwks, "jwks", "", "the JWK Set `URL` (NewRemoteKeyset), instead of -issuer; give the trusted issuer with -iss")
	fs.Var(&f.iss, "iss", "a trusted `issuer` (WithIssuer): repeat the flag or separate with commas;\n"+
		"required with -jwks, and with -issuer it replaces the discovered one")
	fs.Var(&f.audiences, "audience", "an accepted `audience` (WithAudience), the API's identifier as the tokens' aud holds it:\n"+
		"repeat the flag or separate with commas")
	fs.Var(&f.scopeClaims, "scope-claims", "the `claims` that grant scopes, in order (WithScopeClaims): scope,scp for Okta and\n"+
		"Entra ID, scope,permissions for Auth0 RBAC (default scope)")
	fs.Var(&f.algs, "algorithms", "the accepted signing `algorithms` (WithAlgorithms), comma-separated (default all:\n"+
		"RS256/384/512, PS256/384/512, ES256/384/512, EdDSA, Ed25519)")
	fs.Var(&f.requiredClaims, "require-claims", "`claims` every token must carry besides exp (WithRequiredClaims), comma-separated")
	fs.DurationVar(&f.leeway, "leeway", 30*time.Second, "the clock skew tolerated for exp, nbf and iat (WithLeeway), at most 5m")
	fs.DurationVar(&f.maxLifetime, "max-lifetime", 0, "refuse tokens whose exp lies more than this after their iat (WithMaxLifetime);\n"+
		"0 sets no bound")
	fs.IntVar(&f.maxTokenSize, "max-token-size", 16<<10, "the largest token accepted, in `bytes` (WithMaxTokenSize)")
	fs.BoolVar(&f.strictType, "strict-type", false, "require the typ header at+jwt (WithStrictType)")
	fs.BoolVar(&f.acceptIDTokens, "accept-id-tokens", false, "accept tokens that show themselves to be ID tokens, as a server with\n"+
		"InsecureAcceptIDTokens does (Dex)")
	fs.BoolVar(&f.ignoreCnf, "ignore-unsupported-cnf", false, "accept tokens bound to a proof of possession the library cannot check\n"+
		"(DPoP), as a server with InsecureIgnoreUnsupportedConfirmation does")
	fs.BoolVar(&f.skipIssuer, "skip-issuer-check", false, "trust any issuer whose keys are in the keyset, as a server with\n"+
		"InsecureSkipIssuerCheck does")
	fs.BoolVar(&f.skipAudience, "skip-audience-check", false, "accept any audience, as a server with InsecureSkipAudienceCheck does")
	fs.StringVar(&f.at, "time", "", "verify at this `instant` (RFC 3339, e.g. 2025-06-01T12:00:00Z) instead of now (WithClock)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "bounds discovery, each JWK Set fetch and the verification")
	fs.StringVar(&f.policyFile, "policy", "", "a policy document (`FILE`, as ParsePolicy reads it); needs -method")
	fs.StringVar(&f.method, "method", "", "the gRPC `method` of the call, /pkg.Service/Method: prints the rule that applies and the\n"+
		"interceptor's decision (without -policy, the built-in default rule)")
	fs.BoolVar(&f.strictPublic, "strict-public-tokens", false, "refuse an invalid token on a public method, as a server with\n"+
		"WithStrictPublicTokens does")
}

// sentinels are the library's exported sentinel errors: an error of
// Verify wraps exactly one of them, which names its class.
var sentinels = []error{
	grpcjwt.ErrMissingToken, grpcjwt.ErrInvalidRequest, grpcjwt.ErrMalformed, grpcjwt.ErrAlgorithm,
	grpcjwt.ErrUnknownKey, grpcjwt.ErrKeysUnavailable, grpcjwt.ErrSignature, grpcjwt.ErrExpired,
	grpcjwt.ErrNotYetValid, grpcjwt.ErrIssuer, grpcjwt.ErrAudience, grpcjwt.ErrTokenType,
	grpcjwt.ErrMissingClaim, grpcjwt.ErrLifetime, grpcjwt.ErrCertificateBinding,
	grpcjwt.ErrInsufficientScope, grpcjwt.ErrClaimRequirement, grpcjwt.ErrDenied,
	grpcjwt.ErrUnsupportedConfirmation, grpcjwt.ErrKeysetClosed,
}

// sentinelOf returns the sentinel err wraps, or nil.
func sentinelOf(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// wantsHelp reports whether args ask for the flags' help, which then goes
// to stdout.
func wantsHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == "-h" || a == "-help" || a == "--help" || a == "--h"
	})
}

func runCheck(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f checkFlags
	fs := flag.NewFlagSet("grpcjwt check", flag.ContinueOnError)
	f.register(fs)
	fs.SetOutput(stderr)
	if wantsHelp(args) {
		fs.SetOutput(stdout)
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), checkUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage // the flag package printed the error and the usage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "grpcjwt check: "+format+"\n(run grpcjwt check -h for the flags)\n", a...)
		return exitUsage
	}

	// Everything that needs no network is checked first.
	switch {
	case len(pos) > 1:
		return usageErr("one token only; got %d arguments", len(pos))
	case f.issuer != "" && f.jwks != "":
		return usageErr("give -issuer (discovery) or -jwks (a JWK Set URL), not both")
	case f.issuer == "" && f.jwks == "":
		return usageErr("give -issuer URL (the issuer, found by discovery) or -jwks URL with -iss ISSUER")
	case f.jwks != "" && len(f.iss) == 0 && !f.skipIssuer:
		return usageErr("-jwks needs -iss ISSUER, the issuer the tokens' iss names (or -skip-issuer-check)")
	case len(f.audiences) == 0 && !f.skipAudience:
		return usageErr("give -audience, the API's identifier as the tokens' aud holds it (or -skip-audience-check)")
	case f.policyFile != "" && f.method == "":
		return usageErr("-policy needs -method /pkg.Service/Method: the call to decide")
	case f.strictPublic && f.method == "":
		return usageErr("-strict-public-tokens needs -method /pkg.Service/Method: it changes the decision of a call")
	case len(pos) == 0 && f.method == "":
		return usageErr("give the token: TOKEN, @FILE, or - for stdin")
	}
	// One instant for the whole run, so that the verdict and the decision
	// are taken at the same time; whole seconds, as exp, nbf and iat are.
	at := time.Now().Truncate(time.Second)
	if f.at != "" {
		if at, err = time.Parse(time.RFC3339Nano, f.at); err != nil {
			return usageErr("-time %q is not an RFC 3339 instant (2025-06-01T12:00:00Z)", f.at)
		}
	}
	now := func() time.Time { return at }
	method := f.method
	if method != "" {
		if method, err = normalizeMethod(method); err != nil {
			return usageErr("%v", err)
		}
	}
	var tok string
	if len(pos) == 1 {
		if tok, err = readToken(pos[0], stdin); err != nil {
			return usageErr("%v", err)
		}
	}
	var policy *grpcjwt.Policy
	if f.policyFile != "" {
		doc, err := os.ReadFile(f.policyFile)
		if err != nil {
			fmt.Fprintf(stderr, "grpcjwt check: %v\n", err)
			return exitUsage
		}
		if policy, err = grpcjwt.ParsePolicy(doc); err != nil {
			fmt.Fprintf(stderr, "grpcjwt check: the policy %s is invalid:\n%v\n", f.policyFile, err)
			return exitUsage
		}
	}

	// The keyset: discovery, then the first JWK Set fetch.
	setupCtx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var keyCount atomic.Int64
	keyCount.Store(-1)
	keysetLog := &heldWriter{w: stderr}
	kopts := []grpcjwt.KeysetOption{
		grpcjwt.WithFetchTimeout(f.timeout),
		grpcjwt.WithKeysetLogger(stderrLogger(keysetLog)),
		grpcjwt.WithFetchHook(func(e grpcjwt.FetchEvent) { keyCount.Store(int64(e.Keys)) }),
		// A run makes one or two verifications: each token naming an
		// unknown kid asks the issuer again, as a server's first call
		// would, rather than meet the rate limit of the first one.
		grpcjwt.WithUnknownKeyRefreshInterval(0),
	}
	var ks *grpcjwt.Keyset
	var keysFrom string
	if f.issuer != "" {
		md, err := grpcjwt.Discover(setupCtx, f.issuer, kopts...)
		if err == nil {
			ks, err = grpcjwt.NewIssuerKeyset(setupCtx, f.issuer, kopts...)
		}
		if err != nil {
			keysetLog.Discard()
			fmt.Fprintf(stderr, "grpcjwt check: configuration error: %v\n", err)
			if setupCtx.Err() == nil && isJWKSet(setupCtx, f.issuer, f.timeout) {
				fmt.Fprintf(stderr, "hint: %s serves a JWK Set: use -jwks %s -iss ISSUER (the issuer the tokens' iss names)\n", f.issuer, f.issuer)
			}
			return exitUsage
		}
		keysFrom = fmt.Sprintf("%s (jwks_uri of %s's discovery document)", md.JWKSURI, f.issuer)
	} else {
		ks, err = grpcjwt.NewRemoteKeyset(setupCtx, f.jwks, kopts...)
		if err != nil {
			keysetLog.Discard()
			fmt.Fprintf(stderr, "grpcjwt check: configuration error: %v\n", err)
			if setupCtx.Err() == nil {
				if md, derr := grpcjwt.Discover(setupCtx, f.jwks, grpcjwt.WithFetchTimeout(f.timeout)); derr == nil {
					fmt.Fprintf(stderr, "hint: %s is an issuer (its discovery document names the jwks_uri %s): use -issuer %s, or -jwks %s -iss %s\n",
						f.jwks, md.JWKSURI, f.jwks, md.JWKSURI, f.jwks)
				}
			}
			return exitUsage
		}
		keysFrom = f.jwks
	}
	defer ks.Close()
	keysetLog.Release()

	vopts := []grpcjwt.VerifierOption{grpcjwt.WithClock(now), grpcjwt.WithTokenCache(0, 0, 0)}
	if len(f.iss) > 0 {
		vopts = append(vopts, grpcjwt.WithIssuer(f.iss...))
	}
	if len(f.audiences) > 0 {
		vopts = append(vopts, grpcjwt.WithAudience(f.audiences...))
	}
	if len(f.scopeClaims) > 0 {
		vopts = append(vopts, grpcjwt.WithScopeClaims(f.scopeClaims...))
	}
	if len(f.algs) > 0 {
		vopts = append(vopts, grpcjwt.WithAlgorithms(f.algs...))
	}
	if len(f.requiredClaims) > 0 {
		vopts = append(vopts, grpcjwt.WithRequiredClaims(f.requiredClaims...))
	}
	// Options left at their default are not passed, so that the library's
	// defaults apply, whatever they become.
	if f.set["leeway"] {
		vopts = append(vopts, grpcjwt.WithLeeway(f.leeway))
	}
	if f.set["max-lifetime"] {
		vopts = append(vopts, grpcjwt.WithMaxLifetime(f.maxLifetime))
	}
	if f.set["max-token-size"] {
		vopts = append(vopts, grpcjwt.WithMaxTokenSize(f.maxTokenSize))
	}
	for _, opt := range []struct {
		on  bool
		opt grpcjwt.VerifierOption
	}{
		{f.strictType, grpcjwt.WithStrictType()},
		{f.acceptIDTokens, grpcjwt.InsecureAcceptIDTokens()},
		{f.ignoreCnf, grpcjwt.InsecureIgnoreUnsupportedConfirmation()},
		{f.skipIssuer, grpcjwt.InsecureSkipIssuerCheck()},
		{f.skipAudience, grpcjwt.InsecureSkipAudienceCheck()},
	} {
		if opt.on {
			vopts = append(vopts, opt.opt)
		}
	}
	v, err := grpcjwt.NewVerifier(ks, vopts...)
	if err != nil {
		fmt.Fprintf(stderr, "grpcjwt check: configuration error: %v\n", err)
		return exitUsage
	}

	vctx, vcancel := context.WithTimeout(ctx, f.timeout)
	defer vcancel()
	c := &checker{out: stdout, f: &f, now: now(), tok: tok}
	ok := true
	if tok == "" {
		fmt.Fprintln(stdout, "NO TOKEN (the call carries no authorization metadata)")
	} else {
		c.claims, c.err = v.Verify(vctx, tok)
		ok = c.err == nil
		c.printVerdict()
	}
	if method != "" {
		if !c.decide(vctx, v, policy, method) {
			ok = false
		}
	}
	if tok != "" {
		c.printClaims()
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "verifier:")
	fmt.Fprintf(stdout, "  keys:      %s", keysFrom)
	if n := keyCount.Load(); n >= 0 {
		fmt.Fprintf(stdout, ", %d usable key%s", n, plural(n))
	}
	fmt.Fprintln(stdout)
	switch {
	case f.skipIssuer:
		fmt.Fprintln(stdout, "  issuers:   any (-skip-issuer-check)")
	case len(f.iss) > 0:
		fmt.Fprintf(stdout, "  issuers:   %s\n", quotedList(f.iss))
	default:
		fmt.Fprintf(stdout, "  issuers:   %s (discovered)\n", quotedList([]string{f.issuer}))
	}
	if len(v.Audiences()) == 0 {
		// -skip-audience-check beside -audience still checks those.
		fmt.Fprintln(stdout, "  audiences: any (-skip-audience-check)")
	} else {
		fmt.Fprintf(stdout, "  audiences: %s\n", quotedList(v.Audiences()))
	}
	clock := "now"
	if f.at != "" {
		clock = "-time"
	}
	leeway := "30s (default)"
	if f.set["leeway"] {
		leeway = f.leeway.String()
	}
	fmt.Fprintf(stdout, "  clock:     %s (%s), leeway %s\n", stamp(c.now), clock, leeway)
	if ok {
		return exitOK
	}
	return exitRefused
}

// isJWKSet reports whether u serves a JWK Set, by loading it as a keyset.
func isJWKSet(ctx context.Context, u string, timeout time.Duration) bool {
	ks, err := grpcjwt.NewRemoteKeyset(ctx, u, grpcjwt.WithFetchTimeout(timeout), grpcjwt.WithKeysetLogger(discard))
	if err != nil {
		return false
	}
	ks.Close()
	return true
}

// normalizeMethod turns "pkg.Service/Method" and grpcurl's
// "pkg.Service.Method" into "/pkg.Service/Method".
func normalizeMethod(m string) (string, error) {
	full := m
	if !strings.HasPrefix(full, "/") {
		full = "/" + full
	}
	if strings.Count(full, "/") == 1 {
		if i := strings.LastIndexByte(full, '.'); i > 1 {
			full = full[:i] + "/" + full[i+1:]
		}
	}
	svc, name, ok := strings.Cut(full[1:], "/")
	if !ok || svc == "" || name == "" || strings.ContainsAny(name, "/*") || strings.ContainsAny(full, " \t") {
		return "", fmt.Errorf("-method %q is not a gRPC method, /pkg.Service/Method", m)
	}
	return full, nil
}

// checker prints the outcome of one check.
type checker struct {
	out    io.Writer
	f      *checkFlags
	now    time.Time
	tok    string
	claims *grpcjwt.Claims // the verified claims, nil when refused
	err    error           // Verify's error
}

func (c *checker) printf(format string, a ...any) { fmt.Fprintf(c.out, format, a...) }

// printVerdict prints VALID or REFUSED with the cause.
func (c *checker) printVerdict() {
	if c.err == nil {
		cl := c.claims
		c.printf("VALID\n")
		c.printf("  issuer:    %q\n", cl.Issuer)
		if cl.Subject != "" {
			c.printf("  subject:   %q\n", cl.Subject)
		}
		if cl.ClientID != "" {
			c.printf("  client_id: %q\n", cl.ClientID)
		}
		c.printf("  audience:  %s\n", quotedList(cl.Audience))
		c.printf("  scopes:    %s (from %s)\n", quotedList(cl.Scopes), strings.Join(c.scopeClaims(), ", "))
		c.printf("  expires:   %s (%s)\n", stamp(cl.Expiry), relative(cl.Expiry.Sub(c.now)))
		if !cl.IssuedAt.IsZero() {
			c.printf("  issued:    %s (%s)\n", stamp(cl.IssuedAt), relative(cl.IssuedAt.Sub(c.now)))
		}
		if !cl.NotBefore.IsZero() {
			c.printf("  not before: %s (%s)\n", stamp(cl.NotBefore), relative(cl.NotBefore.Sub(c.now)))
		}
		if cl.CertificateThumbprint != "" {
			c.printf("  bound to:  the client certificate of SHA-256 thumbprint %s (cnf x5t#S256)\n", cl.CertificateThumbprint)
		}
		c.scopeHint()
		return
	}
	printRefusal(c.out, "REFUSED: ", c.err, sentinelOf(c.err))
	c.printf("%s", printable(c.hint()))
}

// printRefusal prints a refusal's class, and the check that failed with
// the token's value and the wanted one, or else the library's cause.
func printRefusal(w io.Writer, prefix string, err, reason error) {
	if reason == nil {
		reason = sentinelOf(err)
	}
	class := "unclassified"
	if reason != nil {
		class = className(reason)
	}
	fmt.Fprintf(w, "%s%s\n", prefix, class)
	var ce *grpcjwt.CheckError
	if errors.As(err, &ce) {
		fmt.Fprintf(w, "  check: %s\n", printable(ce.Check))
		fmt.Fprintf(w, "  token: %s\n", printable(ce.Got))
		fmt.Fprintf(w, "  want:  %s\n", printable(ce.Want))
		return
	}
	fmt.Fprintf(w, "  cause: %s\n", printable(err.Error()))
}

// scopeClaims returns the claims scopes are read from.
func (c *checker) scopeClaims() []string {
	if len(c.f.scopeClaims) > 0 {
		return c.f.scopeClaims
	}
	return []string{"scope"}
}

// scopeHint names the claims of a verified token that look like scopes
// but are not read as scopes.
func (c *checker) scopeHint() {
	if c.claims == nil {
		return
	}
	var unread []string
	for _, name := range []string{"scope", "scp", "permissions", "roles"} {
		var v any
		if !slices.Contains(c.scopeClaims(), name) && c.claims.DecodeClaim(name, &v) == nil {
			unread = append(unread, name)
		}
	}
	if len(unread) > 0 {
		c.printf("  hint: the token also carries %s, not read as scopes: add %s to -scope-claims if the server's\n"+
			"        WithScopeClaims names %s\n", strings.Join(unread, ", "), strings.Join(unread, ","), pronoun(len(unread)))
	}
}

// hint adds what the command knows beyond the library's error: what the
// unverified header says, or which flag reproduces a server's option.
func (c *checker) hint() string {
	hdr, _, payload := splitToken(c.tok)
	switch {
	case errors.Is(c.err, grpcjwt.ErrUnknownKey):
		kid := "none"
		if hdr != nil && hdr.Kid != nil {
			kid = fmt.Sprintf("%q", *hdr.Kid)
		}
		return fmt.Sprintf("  hint: the token names the kid %s (unverified), which the JWK Set does not hold, even after a refetch:\n"+
			"        a token of another issuer or environment, or signed by a key the issuer has not published\n", kid) +
			c.issuerHint(payload)
	case errors.Is(c.err, grpcjwt.ErrSignature):
		return "  hint: the key the token names did not verify its signature: a token altered in transit or signed by\n" +
			"        another key under the same kid\n" + c.issuerHint(payload)
	case errors.Is(c.err, grpcjwt.ErrTokenType) && !c.f.acceptIDTokens:
		return "  hint: where the cause names an ID token, the client sent it in place of an access token; a server\n" +
			"        that accepts ID tokens (InsecureAcceptIDTokens, as for Dex) is reproduced with -accept-id-tokens\n"
	case errors.Is(c.err, grpcjwt.ErrUnsupportedConfirmation) && !c.f.ignoreCnf:
		return "  hint: if the server runs behind a gateway that checks the proof (InsecureIgnoreUnsupportedConfirmation),\n" +
			"        pass -ignore-unsupported-cnf\n"
	}
	return ""
}

// issuerHint says when the unverified payload names an issuer this
// verifier does not trust: the usual reason its keys are unknown.
func (c *checker) issuerHint(payload []byte) string {
	var p struct {
		Iss *string `json:"iss"`
	}
	if json.Unmarshal(payload, &p) != nil || p.Iss == nil || c.f.skipIssuer {
		return ""
	}
	trusted := c.f.iss
	if len(trusted) == 0 {
		trusted = []string{c.f.issuer}
	}
	if slices.Contains(trusted, *p.Iss) {
		return ""
	}
	return fmt.Sprintf("        its iss (unverified) is %q, not a trusted issuer %s: check the token's issuer first\n",
		*p.Iss, quotedList(trusted))
}

// decide prints the rule that applies to method and the interceptor's
// decision for the call, and reports whether it is allowed.
func (c *checker) decide(ctx context.Context, v *grpcjwt.Verifier, policy *grpcjwt.Policy, method string) bool {
	var d grpcjwt.Decision
	opts := []grpcjwt.Option{
		grpcjwt.WithPolicy(policy),
		grpcjwt.WithLogger(discard),
		grpcjwt.WithDecisionHook(func(_ context.Context, got grpcjwt.Decision) { d = got }),
	}
	if c.f.strictPublic {
		opts = append(opts, grpcjwt.WithStrictPublicTokens())
	}
	call := grpcjwt.Call{Method: method}
	if c.tok != "" {
		call.Authorization = []string{"Bearer " + c.tok}
	}
	_, claims, err := grpcjwt.NewAuthorizer(v, opts...).Authorize(ctx, call)

	key, rule := policy.Match(method)
	c.printf("\nmethod: %s\n", printable(method))
	switch {
	case c.f.policyFile == "":
		c.printf("rule:   %s, as there is no -policy\n", key)
	case key != grpcjwt.DefaultRuleKey && !strings.HasPrefix(key, "/"):
		c.printf("rule:   %s, as no rule of %s names the method\n", key, c.f.policyFile)
	default:
		c.printf("rule:   %q %s (from %s)\n", key, formatRule(rule), c.f.policyFile)
	}
	if err == nil {
		switch {
		case claims != nil:
			c.printf("ALLOW (the handler gets the verified claims)\n")
		case c.tok == "":
			c.printf("ALLOW (public method; no token)\n")
		default:
			c.printf("ALLOW (public method; the invalid token is ignored and the handler gets no claims)\n")
		}
		return true
	}
	var r *grpcjwt.Refusal
	if !errors.As(err, &r) {
		c.printf("DENY\n  cause: %s\n", printable(err.Error()))
		return false
	}
	c.printf("DENY: %s %q\n", r.Code, r.Message)
	challenge := r.Challenge
	if challenge == "" {
		challenge = "(none)"
	}
	c.printf("  www-authenticate: %s\n", printable(challenge))
	if c.err != nil && r.Err != nil && sentinelOf(r.Err) == sentinelOf(c.err) {
		c.printf("  reason: %s (the token's refusal above)\n", className(d.Reason))
	} else if r.Err != nil {
		printRefusal(c.out, "  reason: ", r.Err, d.Reason)
	}
	if c.claims != nil && c.claims.CertificateThumbprint != "" {
		c.printf("  note: the token is bound to a client certificate; this decision is for a call without one\n")
	}
	return false
}

// printClaims prints the verified claims set, or, for a token whose
// signature was not shown to hold, its header and payload apart, marked
// UNVERIFIED.
func (c *checker) printClaims() {
	if c.claims != nil {
		if s, ok := indentJSON(c.claims.Raw(), ""); ok {
			c.printf("\nverified claims:\n%s\n", s)
		}
		return
	}
	hdr, hdrJSON, payload := splitToken(c.tok)
	var ce *grpcjwt.CheckError
	if errors.As(c.err, &ce) && payload != nil {
		// A CheckError refuses a token whose signature verified: its
		// payload is the claims set the issuer signed.
		if s, ok := indentJSON(payload, ""); ok {
			c.printf("\nclaims (the signature holds; refused by the check above):\n%s\n", s)
			return
		}
	}
	c.printf("\nUNVERIFIED (read from the token before any check; nothing below is trusted):\n")
	switch {
	case hdr != nil:
		var parts []string
		for _, m := range []struct {
			name string
			v    *string
		}{{"alg", hdr.Alg}, {"kid", hdr.Kid}, {"typ", hdr.Typ}} {
			if m.v != nil {
				parts = append(parts, fmt.Sprintf("%s %q", m.name, *m.v))
			}
		}
		if len(parts) == 0 {
			parts = []string{"no alg, kid or typ"}
		}
		c.printf("  header:  %s\n", strings.Join(parts, ", "))
	case hdrJSON != nil:
		c.printf("  header:  not a JSON object of string members\n")
	case !strings.Contains(c.tok, "."):
		c.printf("  not a JWT: no header or payload to show\n")
		return
	default:
		c.printf("  header:  not base64url\n")
	}
	if payload == nil {
		c.printf("  payload: not base64url\n")
		return
	}
	s, ok := indentJSON(payload, "    ")
	if !ok {
		c.printf("  payload: not JSON (%d bytes)\n", len(payload))
		return
	}
	c.printf("  payload:\n%s\n", s)
}

// jwsHeader holds the header members shown for an unverified token.
type jwsHeader struct {
	Alg *string `json:"alg"`
	Kid *string `json:"kid"`
	Typ *string `json:"typ"`
}

// splitToken decodes a token's header and payload for display, nil where
// a part is absent or not base64url. hdr is nil unless the header is a
// JSON object whose alg, kid and typ, where present, are strings.
func splitToken(tok string) (hdr *jwsHeader, hdrJSON, payload []byte) {
	parts := strings.Split(tok, ".")
	if len(parts) < 2 {
		return nil, nil, nil
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		if err != nil {
			return nil
		}
		return b
	}
	hdrJSON, payload = dec(parts[0]), dec(parts[1])
	var h jwsHeader
	if hdrJSON != nil && json.Unmarshal(hdrJSON, &h) == nil {
		hdr = &h
	}
	return hdr, hdrJSON, payload
}

// stamp formats an instant to the second, in UTC (exp, nbf and iat are
// whole seconds).
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// relative says how far d lies from the verifier's clock.
func relative(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d > 0:
		return "in " + d.String()
	case d < 0:
		return (-d).String() + " ago"
	}
	return "now"
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}
