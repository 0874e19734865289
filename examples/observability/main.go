// Command observability shows how to watch grpcjwt in production: the
// interceptors' decisions and the keyset's JWKS fetches become
// OpenTelemetry metrics, exported in the Prometheus format on /metrics, and
// every denied call becomes one JSON audit line.
//
//	cd examples/observability && go run .
//
// The metrics follow what Envoy's jwt_authn filter exposes (allowed,
// denied, jwt_cache_hit, jwt_cache_miss, jwks_fetch_success,
// jwks_fetch_failed), prefixed grpcjwt_. The audit log follows the ON_DENY
// condition of grpc-go's authz audit loggers: one line per denial, naming
// the method, the rule, the reason, the status code and the client's
// address, and never the token or any claim read before verification.
//
// The program runs an embedded token issuer, the server, a client and the
// /metrics endpoint in one process on 127.0.0.1, makes a handful of allowed
// and denied calls (one of them during a JWKS outage), scrapes its own
// /metrics, prints the grpcjwt_* lines and the audit log, and exits 0.
//
// This example is a module of its own, so that the grpcjwt module never
// depends on OpenTelemetry or Prometheus.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

const (
	ordersAPI  = "https://orders.example.test"  // the audience the order methods require
	billingAPI = "https://billing.example.test" // another API the verifier accepts
	service    = "/grpcjwt.examples.orders.v1.OrderService/"

	// meterName is the instrumentation scope of the metrics.
	meterName = "github.com/grpcjwt/grpcjwt/examples/observability"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
}

// run starts the issuer, the metrics endpoint and the server, makes the
// calls, then prints the grpcjwt_* lines of a scrape of /metrics and the
// audit log. It fails if a call gets another status than expected.
func run(ctx context.Context, out io.Writer) error {
	issuer := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("ES256"))
	defer issuer.Close()

	// 1. Metrics: the OpenTelemetry SDK with the Prometheus exporter as its
	//    reader, registered in a registry of our own that promhttp serves.
	//    Application code only sees the otel metric API; swapping the
	//    reader for OTLP changes nothing below.
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(registry),
		// Prometheus-style names: dots become underscores, counters get
		// _total and the unit suffix is added (_seconds).
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		// Keep the demo's lines short; in production the otel_scope_*
		// labels do no harm.
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer provider.Shutdown(context.Background())
	metrics, err := newAuthMetrics(ctx, provider.Meter(meterName))
	if err != nil {
		return err
	}
	metricsURL, stopMetrics, err := serveMetrics(registry)
	if err != nil {
		return err
	}
	defer stopMetrics()

	// 2. Audit log: JSON lines, one per denied call.
	var auditBuf lockedBuffer
	audit := slog.New(slog.NewJSONHandler(&auditBuf, nil))

	// 3. The protected server, its decisions and fetches wired to both.
	addr, stop, err := serve(ctx, issuer, metrics, audit)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "issuer   %s\nserver   %s\nmetrics  %s\n\n", issuer.URL(), addr, metricsURL)

	// 4. The calls.
	if err := callAll(ctx, addr, issuer, out); err != nil {
		return err
	}

	// 5. What a Prometheus server would scrape, and what the auditor reads.
	lines, err := scrape(ctx, metricsURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n# scrape of %s (grpcjwt_* lines)\n", metricsURL)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	fmt.Fprintln(out, "\n# audit log (one JSON line per denied call)")
	out.Write(auditBuf.Bytes())
	return nil
}

// serve starts a gRPC server protected by grpcjwt, with its decision hook
// and its keyset's fetch hook feeding m and the audit log, and returns its
// address.
func serve(ctx context.Context, issuer *grpcjwttest.Issuer, m *authMetrics, audit *slog.Logger) (string, func(), error) {
	keys, err := grpcjwt.NewRemoteKeyset(ctx, issuer.JWKSURL(),
		// Every fetch, the first one included, reaches the metrics.
		grpcjwt.WithFetchHook(m.fetched),
		// Demo only: lets the token signed by a freshly rotated key refetch
		// the JWKS at once after the failed attempt. Keep the default (30s)
		// in production; it bounds what forged kids cost the issuer.
		grpcjwt.WithUnknownKeyRefreshInterval(0),
		// The keyset logs the cause of a failed fetch, which the metrics do
		// not carry. Keep it in production; the demo prints no logs but the
		// audit log.
		grpcjwt.WithKeysetLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return "", nil, err
	}
	verifier, err := grpcjwt.NewVerifier(keys,
		grpcjwt.WithIssuer(issuer.URL()),
		grpcjwt.WithAudience(ordersAPI, billingAPI),
	)
	if err != nil {
		keys.Close()
		return "", nil, err
	}
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		service + "ServerInfo":  {Public: true},
		service + "GetOrder":    {Audiences: []string{ordersAPI}},
		service + "CreateOrder": {Audiences: []string{ordersAPI}, Scopes: []string{"write:orders"}},
		// WatchOrders has no rule: the built-in default, a valid token.
	})
	if err != nil {
		keys.Close()
		return "", nil, err
	}
	// One hook per interceptor option set: it must be fast and must not
	// block, which counter increments and a buffered log write are not.
	hook := grpcjwt.WithDecisionHook(func(ctx context.Context, d grpcjwt.Decision) {
		m.decided(ctx, d)
		auditDenial(ctx, audit, d)
	})
	opts := []grpcjwt.Option{grpcjwt.WithPolicy(policy), hook}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(verifier, opts...)),
		grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(verifier, opts...)),
	)
	orderpb.RegisterOrderServiceServer(srv, orderpb.NewServer())
	if err := policy.CheckServer(srv); err != nil {
		keys.Close()
		return "", nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		keys.Close()
		return "", nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	stop := func() {
		srv.GracefulStop()
		<-done
		keys.Close()
	}
	return lis.Addr().String(), stop, nil
}

// authMetrics holds the instruments fed by the decision and fetch hooks.
type authMetrics struct {
	allowed       metric.Int64Counter
	denied        metric.Int64Counter
	cacheHit      metric.Int64Counter
	cacheMiss     metric.Int64Counter
	fetchSuccess  metric.Int64Counter
	fetchFailed   metric.Int64Counter
	fetchDuration metric.Float64Histogram

	// Read by the observable gauges' callbacks at collection time.
	keys       atomic.Int64
	staleSince atomic.Int64 // UnixNano of the last good fetch while fetches fail; 0 when fresh
}

// newAuthMetrics creates the instruments on meter. In Prometheus their
// names become grpcjwt_allowed_total, ..., grpcjwt_jwks_fetch_duration_seconds,
// grpcjwt_jwks_keys and grpcjwt_jwks_staleness_seconds.
func newAuthMetrics(ctx context.Context, meter metric.Meter) (*authMetrics, error) {
	m := &authMetrics{}
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{call}"))
		errs = append(errs, err)
		return c
	}
	m.allowed = counter("grpcjwt.allowed", "Calls the grpcjwt interceptors let through.")
	m.denied = counter("grpcjwt.denied", "Calls the grpcjwt interceptors rejected, by reason and rule.")
	m.cacheHit = counter("grpcjwt.jwt_cache_hit", "Allowed calls whose token was found in the verified-token cache.")
	m.cacheMiss = counter("grpcjwt.jwt_cache_miss", "Allowed calls whose token was verified in full.")
	fetches := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{fetch}"))
		errs = append(errs, err)
		return c
	}
	m.fetchSuccess = fetches("grpcjwt.jwks_fetch_success", "JWK Set fetches that installed a key set.")
	m.fetchFailed = fetches("grpcjwt.jwks_fetch_failed", "JWK Set fetches that failed; the keys held were kept.")
	var err error
	m.fetchDuration, err = meter.Float64Histogram("grpcjwt.jwks_fetch_duration",
		metric.WithDescription("Duration of JWK Set fetches, by result."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.025, 0.1, 0.5, 2.5, 10))
	errs = append(errs, err)
	_, err = meter.Int64ObservableGauge("grpcjwt.jwks_keys",
		metric.WithDescription("Usable keys held after the last JWK Set fetch."),
		metric.WithUnit("{key}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(m.keys.Load())
			return nil
		}))
	errs = append(errs, err)
	_, err = meter.Float64ObservableGauge("grpcjwt.jwks_staleness",
		metric.WithDescription("Time since the last successful JWK Set fetch while fetches fail; 0 while the last fetch succeeded."),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			var s float64
			if since := m.staleSince.Load(); since != 0 {
				s = time.Since(time.Unix(0, since)).Seconds()
			}
			o.Observe(s)
			return nil
		}))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The attribute-free counters start at 0, so that a dashboard sees
	// "no cache hits" or "no failed fetch" rather than no series.
	for _, c := range []metric.Int64Counter{m.cacheHit, m.cacheMiss, m.fetchSuccess, m.fetchFailed} {
		c.Add(ctx, 0)
	}
	return m, nil
}

// decided is the metrics half of the decision hook.
func (m *authMetrics) decided(ctx context.Context, d grpcjwt.Decision) {
	if !d.Allowed {
		// Claims are nil on a denial: nothing read from a token that failed
		// becomes a label.
		m.denied.Add(ctx, 1, metric.WithAttributes(
			attrReason.String(reasonName(d.Reason)),
			attrRule.String(d.Rule),
			attrCode.String(d.Code.String()),
		))
		return
	}
	// Claims are set only for a call that carried a valid token, and were
	// verified: issuer is one of the configured trusted issuers, client_id
	// one of the issuer's registered clients.
	var iss, client string
	if d.Claims != nil {
		iss, client = d.Claims.Issuer, d.Claims.ClientID
	}
	m.allowed.Add(ctx, 1, metric.WithAttributes(
		attrRule.String(d.Rule),
		attrIssuer.String(iss),
		attrClientID.String(client),
	))
	if d.Claims == nil {
		return // no token, or an invalid optional token ignored on a public method
	}
	// Decision.CacheHit says whether the verifier's verified-token cache
	// (WithTokenCache) answered. A denied call's Claims are nil, so only
	// allowed calls with a valid token are counted here; Envoy counts every
	// cache lookup.
	if d.CacheHit {
		m.cacheHit.Add(ctx, 1)
	} else {
		m.cacheMiss.Add(ctx, 1)
	}
}

// fetched is the keyset's fetch hook.
func (m *authMetrics) fetched(e grpcjwt.FetchEvent) {
	ctx := context.Background() // the hook has no request context
	result := "success"
	if e.Err != nil {
		result = "failed"
		m.fetchFailed.Add(ctx, 1)
		if e.Staleness > 0 {
			// Staleness is measured from the last good fetch, so the gauge
			// keeps growing between the retries of an outage.
			m.staleSince.Store(time.Now().Add(-e.Staleness).UnixNano())
		}
	} else {
		m.fetchSuccess.Add(ctx, 1)
		m.staleSince.Store(0)
	}
	m.keys.Store(int64(e.Keys))
	m.fetchDuration.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrResult.String(result)))
}

// The metrics' attributes. Their cardinality: reason is one of the fixed
// names below, rule one of the policy's keys, code one of the few codes a
// denial gets, result success or failed; issuer and client_id come from
// verified claims only (see the README).
var (
	attrReason   = attribute.Key("reason")
	attrRule     = attribute.Key("rule")
	attrCode     = attribute.Key("code")
	attrIssuer   = attribute.Key("issuer")
	attrClientID = attribute.Key("client_id")
	attrResult   = attribute.Key("result")
)

// reasonNames gives each sentinel of a denial its short label value.
var reasonNames = []struct {
	err  error
	name string
}{
	{grpcjwt.ErrMissingToken, "missing_token"},
	{grpcjwt.ErrInvalidRequest, "invalid_request"},
	{grpcjwt.ErrInsufficientScope, "insufficient_scope"},
	{grpcjwt.ErrKeysUnavailable, "keys_unavailable"},
	{grpcjwt.ErrKeysetClosed, "keyset_closed"},
	{grpcjwt.ErrAudience, "audience"},
	{grpcjwt.ErrExpired, "expired"},
	{grpcjwt.ErrNotYetValid, "not_yet_valid"},
	{grpcjwt.ErrIssuer, "issuer"},
	{grpcjwt.ErrSignature, "signature"},
	{grpcjwt.ErrUnknownKey, "unknown_key"},
	{grpcjwt.ErrAlgorithm, "algorithm"},
	{grpcjwt.ErrTokenType, "token_type"},
	{grpcjwt.ErrMissingClaim, "missing_claim"},
	{grpcjwt.ErrLifetime, "lifetime"},
	{grpcjwt.ErrMalformed, "malformed"},
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "deadline_exceeded"},
}

// reasonName returns the label value of a Decision.Reason: a fixed set,
// whatever the error's text, so that the label's cardinality stays bounded.
func reasonName(reason error) string {
	for _, r := range reasonNames {
		if errors.Is(reason, r.err) {
			return r.name
		}
	}
	return "other"
}

// auditDenial is the audit half of the decision hook, in the manner of the
// ON_DENY condition of grpc-go's authz audit loggers: one line per denied
// call. It logs what the server decided and who asked (the peer address),
// never the token and never Decision.Err, whose detail is for operators'
// debug logs rather than an audit trail.
func auditDenial(ctx context.Context, l *slog.Logger, d grpcjwt.Decision) {
	if d.Allowed {
		return
	}
	addr := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	l.LogAttrs(ctx, slog.LevelInfo, "grpcjwt audit",
		slog.Bool("authorized", false),
		slog.String("method", d.Method),
		slog.String("rule", d.Rule),
		slog.String("reason", reasonName(d.Reason)),
		slog.String("code", d.Code.String()),
		slog.String("peer", addr),
	)
}

// serveMetrics serves registry on http://127.0.0.1:<port>/metrics.
func serveMetrics(registry *prometheus.Registry) (string, func(), error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}
	return "http://" + lis.Addr().String() + "/metrics", stop, nil
}

// scrape GETs url as Prometheus would and returns the grpcjwt_* samples.
func scrape(ctx context.Context, url string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	var lines []string
	for l := range strings.Lines(string(body)) {
		if strings.HasPrefix(l, "grpcjwt_") {
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
	}
	return lines, nil
}

// step is one demonstration call.
type step struct {
	method string
	token  string // the kind of token, for the printout
	before func() // changes the world before the call, if set
	call   func() (string, error)
	want   codes.Code
}

// callAll makes the calls and prints one line per call. It returns an
// error if a call gets another status than its step expects.
func callAll(ctx context.Context, addr string, issuer *grpcjwttest.Issuer, out io.Writer) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := orderpb.NewOrderServiceClient(conn)

	writer := issuer.Mint(issuer.Claims(ordersAPI, "read:orders", "write:orders"))
	reader := issuer.Mint(issuer.Claims(ordersAPI, "read:orders"))
	expired := issuer.Claims(ordersAPI, "read:orders")
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	expiredTok := issuer.Mint(expired)
	billing := issuer.Mint(issuer.Claims(billingAPI, "read:orders"))
	var rotated string // signed by a key the server has not fetched yet

	bearer := func(tok string) context.Context {
		if tok == "" {
			return ctx
		}
		return grpcjwttest.WithBearer(ctx, tok)
	}
	var orderID string
	getOrder := func(tok *string) func() (string, error) {
		return func() (string, error) {
			o, err := client.GetOrder(bearer(*tok), &orderpb.GetOrderRequest{Id: orderID})
			return fmt.Sprintf("%s: %d x %s", o.GetId(), o.GetQuantity(), o.GetItem()), err
		}
	}
	none := ""
	steps := []step{
		{"ServerInfo", "none", nil, func() (string, error) {
			r, err := client.ServerInfo(ctx, &orderpb.ServerInfoRequest{})
			return "version " + r.GetVersion() + " (public rule)", err
		}, codes.OK},
		{"CreateOrder", "writer", nil, func() (string, error) {
			o, err := client.CreateOrder(bearer(writer), &orderpb.CreateOrderRequest{Item: "book", Quantity: 2})
			orderID = o.GetId()
			return "created " + o.GetId(), err
		}, codes.OK},
		{"GetOrder", "writer (again)", nil, getOrder(&writer), codes.OK},
		{"GetOrder", "reader", nil, getOrder(&reader), codes.OK},
		{"GetOrder", "none", nil, getOrder(&none), codes.Unauthenticated},
		{"GetOrder", "expired", nil, getOrder(&expiredTok), codes.Unauthenticated},
		{"GetOrder", "billing audience", nil, getOrder(&billing), codes.Unauthenticated},
		{"CreateOrder", "reader", nil, func() (string, error) {
			_, err := client.CreateOrder(bearer(reader), &orderpb.CreateOrderRequest{Item: "pen", Quantity: 1})
			return "", err
		}, codes.PermissionDenied},
		// The issuer rotates its key while its JWKS endpoint is down: the
		// server's refetch for the new kid fails.
		{"GetOrder", "new key, JWKS down", func() {
			issuer.SetFailure(grpcjwttest.Fail500)
			issuer.Rotate()
			rotated = issuer.Mint(issuer.Claims(ordersAPI, "read:orders"))
		}, getOrder(&rotated), codes.Unauthenticated},
		// The endpoint is back: the refetch succeeds and the token verifies.
		{"GetOrder", "new key, JWKS up", func() {
			issuer.SetFailure(grpcjwttest.FailNone)
		}, getOrder(&rotated), codes.OK},
		{"WatchOrders", "reader", nil, func() (string, error) {
			stream, err := client.WatchOrders(bearer(reader), &orderpb.WatchOrdersRequest{MaxEvents: 3})
			if err != nil {
				return "", err
			}
			n := 0
			for {
				if _, err := stream.Recv(); errors.Is(err, io.EOF) {
					return fmt.Sprintf("%d events", n), nil
				} else if err != nil {
					return "", err
				}
				n++
			}
		}, codes.OK},
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tTOKEN\tCODE\tMESSAGE")
	var mismatches []error
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		result, err := s.call()
		st := status.Convert(err)
		msg := st.Message()
		if err == nil {
			msg = result
		}
		mark := ""
		if st.Code() != s.want {
			mark = fmt.Sprintf("\t<- expected %s", s.want)
			mismatches = append(mismatches, fmt.Errorf("%s with %s token: got %s, want %s", s.method, s.token, st.Code(), s.want))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", s.method, s.token, st.Code(), msg, mark)
	}
	tw.Flush()
	return errors.Join(mismatches...)
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of the
// decision hook, which runs on each call's goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written.
func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
