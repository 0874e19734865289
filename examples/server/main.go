// Command server runs the example OrderService behind grpcjwt, verifying
// access tokens from a real identity provider (Logto, Auth0, Keycloak or any
// OpenID Connect / OAuth 2.0 issuer that publishes a JWK Set).
//
//	go run ./examples/server -issuer https://tenant.logto.app/oidc -audience https://api.example.com
//
// Every flag has an environment fallback (GRPCJWT_LISTEN, GRPCJWT_ISSUER,
// GRPCJWT_JWKS_URL, GRPCJWT_AUDIENCE, GRPCJWT_RULES, GRPCJWT_SCOPE_CLAIMS);
// a flag given on the command line wins. See README.md for the rules syntax
// and provider setups.
//
// The server registers the health and reflection services, which need no
// token, prints "listening on ADDR" on stdout once it accepts calls, logs to
// stderr, and stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
)

const (
	// orderService is the rule-key prefix of the example service's methods.
	orderService = "/grpcjwt.examples.orders.v1.OrderService/"

	// defaultRules makes ServerInfo public and CreateOrder need the scope
	// write:orders; every other method falls to the built-in default of
	// grpcjwt.Policy, which requires a valid token.
	defaultRules = orderService + "ServerInfo=public;" + orderService + "CreateOrder=scope:write:orders"

	defaultListen      = "127.0.0.1:50051"
	defaultScopeClaims = "scope"

	// discoveryTimeout bounds the OpenID discovery request, body included.
	discoveryTimeout = 10 * time.Second
	// maxDiscoveryBytes caps the discovery document; real ones are a few KiB.
	maxDiscoveryBytes = 512 << 10
	// shutdownTimeout bounds the graceful stop; calls still open after it
	// (a long Chat stream, say) are cut off.
	shutdownTimeout = 10 * time.Second
)

// exemptServices are served without any token: the selector skips
// grpcjwt's interceptors for them, so that load balancers, Kubernetes
// probes and grpcurl's reflection work unauthenticated.
var exemptServices = []string{
	healthpb.Health_ServiceDesc.ServiceName,
	reflectionv1.ServerReflection_ServiceDesc.ServiceName,
	reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// config is the validated configuration of one run.
type config struct {
	listen      string
	issuer      string
	jwksURL     string // empty: discover it from the issuer
	audiences   []string
	rules       map[string]grpcjwt.Rule
	scopeClaims []string
}

// run serves until ctx is done, then stops gracefully and returns nil. It
// returns an error, without serving, when the configuration is invalid or
// the issuer's keys cannot be loaded. Once the listener is bound it writes
// "listening on ADDR" to stdout; logs go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	policy, err := grpcjwt.NewPolicy(cfg.rules)
	if err != nil {
		return fmt.Errorf("-rules: %w", err)
	}

	jwksURL := cfg.jwksURL
	if jwksURL == "" {
		jwksURL, err = discoverJWKS(ctx, &http.Client{Timeout: discoveryTimeout}, cfg.issuer)
		if err != nil {
			return err
		}
		log.Info("discovered JWKS URL", "issuer", cfg.issuer, "jwks_uri", jwksURL)
	}
	if !strings.HasPrefix(jwksURL, "https://") {
		log.Warn("JWKS URL is not https; use https outside local testing", "jwks_url", jwksURL)
	}

	// ctx bounds only the first fetch; later refreshes run until Close.
	keys, err := grpcjwt.NewRemoteKeyset(ctx, jwksURL, grpcjwt.WithKeysetLogger(log))
	if err != nil {
		return err
	}
	defer keys.Close()

	verifier, err := grpcjwt.NewVerifier(keys,
		grpcjwt.WithIssuer(cfg.issuer),
		grpcjwt.WithAudience(cfg.audiences...),
		grpcjwt.WithScopeClaims(cfg.scopeClaims...),
	)
	if err != nil {
		return err
	}

	authOpts := []grpcjwt.Option{grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(log)}
	needsAuth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !slices.Contains(exemptServices, c.Service)
	})
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(selector.UnaryServerInterceptor(grpcjwt.UnaryServerInterceptor(verifier, authOpts...), needsAuth)),
		grpc.ChainStreamInterceptor(selector.StreamServerInterceptor(grpcjwt.StreamServerInterceptor(verifier, authOpts...), needsAuth)),
	)

	orders := orderpb.NewServer()
	orders.CreatedBy = caller
	orderpb.RegisterOrderServiceServer(srv, orders)
	healthSrv := health.NewServer()
	healthSrv.SetServingStatus(orderpb.OrderService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, healthSrv)
	reflection.Register(srv)

	// A rule naming a method that does not exist would silently leave the
	// real method on the default rule: refuse to start instead.
	if err := policy.CheckServer(srv); err != nil {
		return fmt.Errorf("-rules: %w", err)
	}

	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on %s\n", lis.Addr())
	log.Info("serving", "addr", lis.Addr().String(), "issuer", cfg.issuer, "audiences", cfg.audiences)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down")
	healthSrv.Shutdown() // probes see NOT_SERVING while calls drain
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(shutdownTimeout):
		log.Warn("graceful stop timed out; closing remaining calls")
		srv.Stop()
		<-stopped
	}
	if err := <-served; err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// caller is the OrderService's CreatedBy hook: the token's subject, or its
// client for a token without one.
func caller(ctx context.Context) string {
	c, ok := grpcjwt.ClaimsFromContext(ctx)
	if !ok {
		return ""
	}
	if c.Subject != "" {
		return c.Subject
	}
	return c.ClientID
}

// parseConfig reads the flags, falling back to the environment for flags
// not given, and validates the result.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", env("GRPCJWT_LISTEN", defaultListen), "`address` to listen on (env GRPCJWT_LISTEN)")
	issuer := fs.String("issuer", env("GRPCJWT_ISSUER", ""), "issuer identifier, exactly as in the tokens' \"iss\"; required (env GRPCJWT_ISSUER)")
	jwksURL := fs.String("jwks-url", env("GRPCJWT_JWKS_URL", ""), "JWK Set `URL`; empty: discovered from the issuer's /.well-known/openid-configuration (env GRPCJWT_JWKS_URL)")
	audience := fs.String("audience", env("GRPCJWT_AUDIENCE", ""), "comma-separated accepted `audiences` (\"aud\"); required (env GRPCJWT_AUDIENCE)")
	rules := fs.String("rules", env("GRPCJWT_RULES", defaultRules), "per-method `rules`, see README.md (env GRPCJWT_RULES)")
	scopeClaims := fs.String("scope-claims", env("GRPCJWT_SCOPE_CLAIMS", defaultScopeClaims), "comma-separated `claims` that grant scopes, e.g. scope,scp,permissions (env GRPCJWT_SCOPE_CLAIMS)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := &config{listen: *listen, issuer: *issuer, jwksURL: *jwksURL}
	if cfg.issuer == "" {
		return nil, errors.New("-issuer (or GRPCJWT_ISSUER) is required")
	}
	if cfg.jwksURL == "" && !isHTTPURL(cfg.issuer) {
		return nil, fmt.Errorf("-issuer %q is not an http(s) URL, so the JWKS URL cannot be discovered; set -jwks-url", cfg.issuer)
	}
	if cfg.jwksURL != "" && !isHTTPURL(cfg.jwksURL) {
		return nil, fmt.Errorf("-jwks-url %q is not an absolute http(s) URL", cfg.jwksURL)
	}
	if cfg.audiences = splitList(*audience); len(cfg.audiences) == 0 {
		return nil, errors.New("-audience (or GRPCJWT_AUDIENCE) is required")
	}
	if cfg.scopeClaims = splitList(*scopeClaims); len(cfg.scopeClaims) == 0 {
		return nil, errors.New("-scope-claims names no claim")
	}
	var err error
	if cfg.rules, err = parseRules(*rules); err != nil {
		return nil, fmt.Errorf("-rules: %w", err)
	}
	for key, r := range cfg.rules {
		for _, a := range r.Audiences {
			// The verifier checks "aud" against -audience first, so a rule
			// audience outside that list could never be satisfied.
			if !slices.Contains(cfg.audiences, a) {
				return nil, fmt.Errorf("-rules: rule %q: audience %q is not one of -audience", key, a)
			}
		}
	}
	return cfg, nil
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// parseRules parses the -rules syntax into grpcjwt rules:
//
//	rules = rule { ";" rule }          (a newline separates rules too)
//	rule  = key "=" req { "," req }
//	key   = "/pkg.Service/Method" | "/pkg.Service/*" | "*"
//	req   = "public" | "token" | "scope:" SCOPE | "aud:" AUDIENCE
//
// "public" needs no token; "token" needs a valid token and nothing more;
// a rule's scopes are all required, its audiences are alternatives. Spaces
// around items are ignored and empty rules are skipped. A key may appear
// once, and "public" and "token" stand alone. Keys are checked by
// grpcjwt.NewPolicy and, against the registered services, by
// Policy.CheckServer.
func parseRules(s string) (map[string]grpcjwt.Rule, error) {
	rules := map[string]grpcjwt.Rule{}
	for item := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, reqs, ok := strings.Cut(item, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("rule %q: want KEY=REQUIREMENTS", item)
		}
		if _, dup := rules[key]; dup {
			return nil, fmt.Errorf("rule %q: key given twice", key)
		}
		for _, svc := range exemptServices {
			if strings.HasPrefix(key, "/"+svc+"/") {
				return nil, fmt.Errorf("rule %q: %s is served without authentication; a rule for it has no effect", key, svc)
			}
		}
		r, err := parseRequirements(reqs)
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", key, err)
		}
		rules[key] = r
	}
	if len(rules) == 0 {
		return nil, errors.New(`no rule; use "*=token" to require a valid token on every method`)
	}
	return rules, nil
}

// parseRequirements parses the comma-separated right-hand side of a rule.
func parseRequirements(s string) (grpcjwt.Rule, error) {
	var r grpcjwt.Rule
	var bare string // "public" or "token", which stand alone
	n := 0
	for req := range strings.SplitSeq(s, ",") {
		req = strings.TrimSpace(req)
		n++
		switch {
		case req == "public" || req == "token":
			bare = req
			r.Public = req == "public"
		case strings.HasPrefix(req, "scope:"):
			v := strings.TrimPrefix(req, "scope:")
			if v == "" {
				return r, errors.New(`empty scope in "scope:"`)
			}
			r.Scopes = append(r.Scopes, v)
		case strings.HasPrefix(req, "aud:"):
			v := strings.TrimPrefix(req, "aud:")
			if v == "" {
				return r, errors.New(`empty audience in "aud:"`)
			}
			r.Audiences = append(r.Audiences, v)
		case req == "":
			return r, errors.New("empty requirement")
		default:
			return r, fmt.Errorf(`unknown requirement %q (want public, token, scope:NAME or aud:AUDIENCE)`, req)
		}
	}
	if bare != "" && n > 1 {
		return r, fmt.Errorf("%q cannot be combined with other requirements", bare)
	}
	return r, nil
}

// discoverJWKS reads the issuer's OpenID Provider Configuration (OpenID
// Connect Discovery 1.0 §4) and returns its jwks_uri. The document must name
// the configured issuer exactly (§4.3): otherwise a typo, a proxy or a
// hostile host could substitute another issuer's keys.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	// §4: a trailing "/" of the issuer is dropped before the well-known path
	// (Auth0's issuers end in "/").
	docURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery: GET %s: %s", docURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBytes+1))
	if err != nil {
		return "", fmt.Errorf("discovery: GET %s: %w", docURL, err)
	}
	if len(body) > maxDiscoveryBytes {
		return "", fmt.Errorf("discovery: GET %s: document larger than %d bytes", docURL, maxDiscoveryBytes)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery: GET %s: not a JSON document: %w", docURL, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("discovery: %s names issuer %q, not the configured %q (the match must be exact, trailing slash included)", docURL, doc.Issuer, issuer)
	}
	if !isHTTPURL(doc.JWKSURI) {
		return "", fmt.Errorf("discovery: %s has no absolute http(s) jwks_uri", docURL)
	}
	return doc.JWKSURI, nil
}
