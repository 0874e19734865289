// Command server runs the example OrderService behind grpcjwt, verifying
// access tokens from a real identity provider (Logto, Auth0, Keycloak or any
// OpenID Connect / OAuth 2.0 issuer that publishes a JWK Set).
//
//	go run ./examples/server -issuer https://tenant.logto.app/oidc -audience https://api.example.com
//
// Every flag has an environment fallback (GRPCJWT_LISTEN, GRPCJWT_ISSUER,
// GRPCJWT_JWKS_URL, GRPCJWT_AUDIENCE, GRPCJWT_POLICY,
// GRPCJWT_POLICY_INTERVAL, GRPCJWT_SCOPE_CLAIMS); a flag given on the
// command line wins.
//
// The per-method rules are a grpcjwt policy document (grpcjwt.ParsePolicy):
// the file named by -policy, reloaded when it changes, or else the embedded
// policy.json. See README.md for the document and provider setups.
//
// The server registers the health and reflection services, which the
// policy must leave public, prints "listening on ADDR" on stdout once it
// accepts calls, logs to stderr, and stops gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
)

// defaultPolicy is the policy without -policy: health and reflection
// public, ServerInfo public, CreateOrder needs the scope write:orders, and
// every other method a valid token.
//
//go:embed policy.json
var defaultPolicy []byte

const (
	defaultListen         = "127.0.0.1:50051"
	defaultScopeClaims    = "scope"
	defaultPolicyInterval = 10 * time.Second

	// shutdownTimeout bounds the graceful stop; calls still open after it
	// (a long Chat stream, say) are cut off.
	shutdownTimeout = 10 * time.Second
)

// openServices must be public under the policy, so that load balancers,
// Kubernetes probes and grpcurl's reflection work without a token. The
// policy document says so itself (see policy.json): run refuses one that
// does not.
var openServices = []string{
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
	listen         string
	issuer         string
	jwksURL        string // empty: discover it from the issuer
	audiences      []string
	policyFile     string // empty: the embedded policy.json
	policyInterval time.Duration
	scopeClaims    []string
}

// run serves until ctx is done, then stops gracefully and returns nil. It
// returns an error, without serving, when the configuration or the policy
// is invalid or the issuer's keys cannot be loaded. Once the listener is
// bound it writes "listening on ADDR" to stdout; logs go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	// The policy comes first: a bad document fails before any network call.
	var (
		policySource string                 // for error messages
		policyOpt    grpcjwt.Option         // how the interceptors get it
		current      func() *grpcjwt.Policy // the policy in force
		watcher      *grpcjwt.PolicyWatcher // nil for the embedded policy
	)
	if cfg.policyFile == "" {
		p, err := grpcjwt.ParsePolicy(defaultPolicy)
		if err != nil {
			return fmt.Errorf("embedded policy.json: %w", err)
		}
		policySource, policyOpt = "embedded policy.json", grpcjwt.WithPolicy(p)
		current = func() *grpcjwt.Policy { return p }
	} else {
		watcher, err = grpcjwt.WatchPolicyFile(cfg.policyFile, cfg.policyInterval, log)
		if err != nil {
			return fmt.Errorf("-policy %s: %w", cfg.policyFile, err)
		}
		defer watcher.Close()
		policySource, policyOpt = "-policy "+cfg.policyFile, grpcjwt.WithPolicyWatcher(watcher)
		current = watcher.Policy
	}

	// ctx bounds only discovery and the first fetch; later refreshes run
	// until Close.
	keysetOpts := []grpcjwt.KeysetOption{grpcjwt.WithKeysetLogger(log)}
	verifierOpts := []grpcjwt.VerifierOption{
		grpcjwt.WithAudience(cfg.audiences...),
		grpcjwt.WithScopeClaims(cfg.scopeClaims...),
	}
	var keys *grpcjwt.Keyset
	if cfg.jwksURL == "" {
		// The metadata's issuer must equal -issuer exactly, and the
		// verifier then trusts that issuer.
		keys, err = grpcjwt.NewIssuerKeyset(ctx, cfg.issuer, keysetOpts...)
		warnPlainHTTP(log, "issuer", cfg.issuer)
	} else {
		keys, err = grpcjwt.NewRemoteKeyset(ctx, cfg.jwksURL, keysetOpts...)
		verifierOpts = append(verifierOpts, grpcjwt.WithIssuer(cfg.issuer))
		warnPlainHTTP(log, "jwks_url", cfg.jwksURL)
	}
	if err != nil {
		return err
	}
	defer keys.Close()
	verifier, err := grpcjwt.NewVerifier(keys, verifierOpts...)
	if err != nil {
		return err
	}

	authOpts := []grpcjwt.Option{policyOpt, grpcjwt.WithLogger(log)}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(verifier, authOpts...)),
		grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(verifier, authOpts...)),
	)
	orders := orderpb.NewServer()
	orders.CreatedBy = caller
	orderpb.RegisterOrderServiceServer(srv, orders)
	healthSrv := health.NewServer()
	healthSrv.SetServingStatus(orderpb.OrderService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, healthSrv)
	reflection.Register(srv)

	check := func(p *grpcjwt.Policy) error { return checkPolicy(p, srv, cfg.audiences) }
	checked := current()
	if err := check(checked); err != nil {
		return fmt.Errorf("%s: %w", policySource, err)
	}
	if watcher != nil {
		auditCtx, stopAudit := context.WithCancel(ctx)
		audited := make(chan struct{})
		go func() {
			defer close(audited)
			auditReloads(auditCtx, watcher, checked, cfg.policyInterval, check, log.With("path", cfg.policyFile))
		}()
		defer func() { stopAudit(); <-audited }()
	}

	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on %s\n", lis.Addr())
	log.Info("serving", "addr", lis.Addr().String(), "issuer", cfg.issuer, "audiences", cfg.audiences, "policy", policySource)

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
	log.Info("stopped") // the deferred calls then close the watcher and the keyset
	return nil
}

// checkPolicy refuses a policy that would start a broken server: a rule
// that names no registered service or method (Policy.CheckServer), a
// health or reflection method that needs a token, or a rule of a registered
// method that names an audience outside audiences (the verifier's). A
// rule's audiences narrow the verifier's (a token's "aud" must hold one of
// each list), so an audience outside -audience is not one the server was
// configured for: a mistake, refused like a typo.
func checkPolicy(p *grpcjwt.Policy, srv *grpc.Server, audiences []string) error {
	if err := p.CheckServer(srv); err != nil {
		return err
	}
	var errs []error
	reported := map[string]bool{} // rule keys with an audience reported
	info := srv.GetServiceInfo()
	for _, svc := range slices.Sorted(maps.Keys(info)) {
		open := slices.Contains(openServices, svc)
		for _, m := range info[svc].Methods {
			method := "/" + svc + "/" + m.Name
			key, rule := p.Match(method)
			if open && !rule.Public {
				errs = append(errs, fmt.Errorf("rule %q makes %s need a token, but health checks and reflection must work without one: "+
					`the policy needs "/%s/*": {"public": true} and no other rule for the service`, key, method, svc))
				break // one error per service
			}
			for _, a := range rule.Audiences {
				if !slices.Contains(audiences, a) && !reported[key] {
					reported[key] = true
					errs = append(errs, fmt.Errorf("rule %q (for %s): audience %q is not one of -audience %q; "+
						"a rule's audiences narrow -audience, they cannot widen it: add it to -audience or drop it from the rule",
						key, method, a, audiences))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// auditReloads applies check to every policy the watcher reloads after
// checked, the one run checked at start-up. The watcher installs each
// document that ParsePolicy accepts and cannot be told to refuse one, so a
// reload that fails the check is already in force: it is logged at Error,
// for the operator to fix the file. It returns when ctx is done.
func auditReloads(ctx context.Context, w *grpcjwt.PolicyWatcher, checked *grpcjwt.Policy, every time.Duration,
	check func(*grpcjwt.Policy) error, log *slog.Logger) {
	last := checked
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := w.Policy()
		if p == last {
			continue
		}
		last = p
		if err := check(p); err != nil {
			log.Error("reloaded policy is in force but fails the start-up checks; fix the file", "error", err.Error())
		}
	}
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

func warnPlainHTTP(log *slog.Logger, what, u string) {
	if !strings.HasPrefix(u, "https://") {
		log.Warn("not an https URL; use https outside local testing", what, u)
	}
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
	interval := defaultPolicyInterval
	if v := getenv("GRPCJWT_POLICY_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("GRPCJWT_POLICY_INTERVAL: %w", err)
		}
		interval = d
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", env("GRPCJWT_LISTEN", defaultListen), "`address` to listen on (env GRPCJWT_LISTEN)")
	issuer := fs.String("issuer", env("GRPCJWT_ISSUER", ""), "issuer identifier, exactly as in the tokens' \"iss\"; required (env GRPCJWT_ISSUER)")
	jwksURL := fs.String("jwks-url", env("GRPCJWT_JWKS_URL", ""), "JWK Set `URL`; empty: discovered from the issuer's metadata (env GRPCJWT_JWKS_URL)")
	audience := fs.String("audience", env("GRPCJWT_AUDIENCE", ""), "comma-separated accepted `audiences` (\"aud\"); required (env GRPCJWT_AUDIENCE)")
	policyFile := fs.String("policy", env("GRPCJWT_POLICY", ""), "policy document `file` (grpcjwt.ParsePolicy), reloaded on change; empty: the embedded policy.json (env GRPCJWT_POLICY)")
	fs.DurationVar(&interval, "policy-interval", interval, "how often to check the -policy file for changes, at least 1s (env GRPCJWT_POLICY_INTERVAL)")
	scopeClaims := fs.String("scope-claims", env("GRPCJWT_SCOPE_CLAIMS", defaultScopeClaims), "comma-separated `claims` that grant scopes, e.g. scope,scp,permissions (env GRPCJWT_SCOPE_CLAIMS)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cfg := &config{listen: *listen, issuer: *issuer, jwksURL: *jwksURL, policyFile: *policyFile, policyInterval: interval}
	if cfg.issuer == "" {
		return nil, errors.New("-issuer (or GRPCJWT_ISSUER) is required")
	}
	if cfg.jwksURL == "" && !isHTTPURL(cfg.issuer) {
		return nil, fmt.Errorf("-issuer %q is not an http(s) URL, so its metadata cannot be discovered; set -jwks-url", cfg.issuer)
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
	if cfg.policyFile != "" && cfg.policyInterval < time.Second {
		return nil, fmt.Errorf("-policy-interval %v is under one second", cfg.policyInterval)
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
