package connectjwt_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/connectjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// The benchmarks of this file measure a whole connect RPC with and
// without the Interceptor, as BenchmarkRPC of the root module does for
// grpc-go ("an RPC through the interceptor should cost barely more than
// the same RPC without it"). They assert nothing about time.

const (
	bcIssuer   = "https://auth.example.com/oidc"
	bcAudience = "https://api.example.com/orders"
)

// bcPayload is the body of every request and response: a small message.
var bcPayload = make([]byte, 32)

// bcClaims are a realistic access token's claims (those of the root
// module's benchmarks): about 900 bytes once signed with ES256.
func bcClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":                             bcIssuer,
		"sub":                             "usr_8f3c2a9d4e1b7f60",
		"aud":                             []string{bcAudience, "https://api.example.com/billing"},
		"exp":                             now.Add(24 * time.Hour).Unix(),
		"iat":                             now.Unix(),
		"nbf":                             now.Unix(),
		"jti":                             "9b2f6c1e-4d7a-4e8b-a3c5-0f1e2d3c4b5a",
		"client_id":                       "cli_4b7e9a2c1d8f3e6a",
		"scope":                           "openid profile email offline_access orders:read orders:write billing:read inventory:read",
		"org_id":                          "org_7d1e4f2a9c3b",
		"tenant":                          "acme-eu",
		"roles":                           []string{"order-admin", "billing-viewer", "support"},
		"email":                           "jane.doe@customer.example.com",
		"https://example.com/claims/plan": "enterprise",
	}
}

// bcSetup returns an ES256 token of bcClaims and a verifier of its key
// (a static keyset, the default token cache).
func bcSetup(b *testing.B) (string, *grpcjwt.Verifier) {
	b.Helper()
	k := grpcjwttest.NewKey("ES256")
	ks, err := grpcjwt.NewStaticKeyset(fmt.Appendf(nil, `{"keys":[%s]}`, bcJSON(b, k)), grpcjwt.WithKeysetLogger(ctDiscard))
	if err != nil {
		b.Fatal(err)
	}
	v, err := grpcjwt.NewVerifier(ks, grpcjwt.WithIssuer(bcIssuer), grpcjwt.WithAudience(bcAudience))
	if err != nil {
		b.Fatal(err)
	}
	return grpcjwttest.Sign(k, nil, bcClaims()), v
}

func bcJSON(b *testing.B, k *grpcjwttest.Key) []byte {
	pub := k.Public()
	j, err := pub.MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	return j
}

// bcUnary answers UnaryCall with a small payload.
func bcUnary(context.Context, *connect.Request[testpb.SimpleRequest]) (*connect.Response[testpb.SimpleResponse], error) {
	return connect.NewResponse(&testpb.SimpleResponse{Payload: &testpb.Payload{Body: bcPayload}}), nil
}

// bcServe serves UnaryCall, behind auth if not nil, over an in-memory
// listener (bufconn) with unencrypted HTTP/2, and returns a function that
// makes one call in protocol with the bearer token tok. Everything stops
// when b's run ends.
func bcServe(b *testing.B, protocol string, auth *connectjwt.Interceptor, tok string) func(context.Context) error {
	b.Helper()
	var opts []connect.HandlerOption
	if auth != nil {
		opts = append(opts, connect.WithInterceptors(auth))
	}
	mux := http.NewServeMux()
	mux.Handle(ctUnary, connect.NewUnaryHandler(ctUnary, bcUnary, opts...))
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	lis := bufconn.Listen(1 << 20)
	srv := &http.Server{Handler: mux, Protocols: &h2c}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	tr := &http.Transport{Protocols: &h2c, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return lis.DialContext(ctx) }}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-served
	})
	client := connect.NewClient[testpb.SimpleRequest, testpb.SimpleResponse](&http.Client{Transport: tr}, "http://bufnet"+ctUnary, ctProtocolOption(protocol))
	msg := &testpb.SimpleRequest{ResponseSize: int32(len(bcPayload)), Payload: &testpb.Payload{Body: bcPayload}}
	return func(ctx context.Context) error {
		req := connect.NewRequest(msg)
		req.Header().Set("Authorization", "Bearer "+tok)
		_, err := client.CallUnary(ctx, req)
		return err
	}
}

// bcWarm runs call for 50 ms before the measurement, so that it starts on
// a connection and a heap that have settled and the cache holds the token.
func bcWarm(b *testing.B, call func(context.Context) error) {
	b.Helper()
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		if err := call(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// bcCheckCache fails b unless v's cache holds tok: it authorizes tok with
// a second Interceptor of v whose decision hook reports the cache hit.
func bcCheckCache(b *testing.B, v *grpcjwt.Verifier, tok string) {
	b.Helper()
	var hit, decided atomic.Bool
	probe := connectjwt.NewInterceptor(v, grpcjwt.WithLogger(ctDiscard), grpcjwt.WithDecisionHook(func(_ context.Context, d grpcjwt.Decision) {
		decided.Store(true)
		hit.Store(d.Allowed && d.CacheHit)
	}))
	req := connect.NewRequest(&testpb.SimpleRequest{})
	req.Header().Set("Authorization", "Bearer "+tok)
	next := func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) { return nil, nil }
	if _, err := probe.WrapUnary(next)(b.Context(), req); err != nil {
		b.Fatal(err)
	}
	if !decided.Load() || !hit.Load() {
		b.Fatal("the token is not in the verifier's cache after the warm-up")
	}
}

// bcAuths are the two server configurations: no Interceptor (none), and
// the Interceptor with the default cache holding the token
// (grpcjwt-cached). Every call sends the same bearer token in both, so the
// difference is grpcjwt's alone.
var bcAuths = []string{"none", "grpcjwt-cached"}

// BenchmarkConnectUnary measures a unary connect call over an in-memory
// HTTP/2 connection, in each protocol, without the Interceptor and
// through it with a cached token.
func BenchmarkConnectUnary(b *testing.B) {
	tok, v := bcSetup(b)
	for _, protocol := range ctProtocols {
		for _, a := range bcAuths {
			b.Run("protocol="+protocol+"/auth="+a, func(b *testing.B) {
				var auth *connectjwt.Interceptor
				if a != "none" {
					auth = connectjwt.NewInterceptor(v)
				}
				call := bcServe(b, protocol, auth, tok)
				bcWarm(b, call)
				if auth != nil {
					bcCheckCache(b, v, tok)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := call(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(tok)), "token-bytes")
			})
		}
	}
}

// bcRound is how many calls each configuration makes in turn in one round
// of BenchmarkConnectUnaryInterleaved.
const bcRound = 50

// BenchmarkConnectUnaryInterleaved measures the configurations of
// BenchmarkConnectUnary in rounds that interleave them, so that the
// machine's load falls on all alike: in each round, bcRound calls to a
// server without the Interceptor (none), bcRound through it with a cached
// token (cached), and bcRound to a second server without it (none2), in
// an order that rotates from round to round. It reports the median
// microseconds per call of none and cached over the rounds, the median of
// the rounds' ratios cached/none, and, as the control that shows the
// method's own bias and noise, the median of none2/none, which only noise
// or bias moves away from 1. One op is one round.
func BenchmarkConnectUnaryInterleaved(b *testing.B) {
	tok, v := bcSetup(b)
	for _, protocol := range ctProtocols {
		b.Run("protocol="+protocol, func(b *testing.B) {
			calls := []func(context.Context) error{ // none, cached, none2
				bcServe(b, protocol, nil, tok),
				bcServe(b, protocol, connectjwt.NewInterceptor(v), tok),
				bcServe(b, protocol, nil, tok),
			}
			for _, call := range calls {
				bcWarm(b, call)
			}
			bcCheckCache(b, v, tok)
			phase := func(call func(context.Context) error) float64 {
				start := time.Now()
				for range bcRound {
					if err := call(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
				return float64(time.Since(start)) / bcRound / float64(time.Microsecond)
			}
			var noneUS, cachedUS, ratios, controls []float64
			b.ReportAllocs()
			r := 0
			for b.Loop() {
				var us [3]float64
				for i := range 3 {
					j := (r + i) % 3
					us[j] = phase(calls[j])
				}
				r++
				noneUS, cachedUS = append(noneUS, us[0]), append(cachedUS, us[1])
				ratios, controls = append(ratios, us[1]/us[0]), append(controls, us[2]/us[0])
			}
			b.ReportMetric(bcMedian(noneUS), "none-µs")
			b.ReportMetric(bcMedian(cachedUS), "cached-µs")
			b.ReportMetric(bcMedian(ratios), "cached/none")
			b.ReportMetric(bcMedian(controls), "none2/none")
		})
	}
}

// bcMedian returns the median of x, which it sorts.
func bcMedian(x []float64) float64 {
	slices.Sort(x)
	return x[len(x)/2]
}

// BenchmarkConnectInterceptorCached measures the Interceptor's own work on
// a unary call whose token is in the cache (the Authorization header read,
// the cache hit, the rule, the claims put in the context), called directly
// around a handler that does nothing: what a cached call through it adds
// to the same RPC without it.
func BenchmarkConnectInterceptorCached(b *testing.B) {
	tok, v := bcSetup(b)
	auth := connectjwt.NewInterceptor(v)
	next := func(ctx context.Context, _ connect.AnyRequest) (connect.AnyResponse, error) {
		if _, ok := grpcjwt.ClaimsFromContext(ctx); !ok {
			return nil, errors.New("no claims in the handler's context")
		}
		return nil, nil
	}
	call := auth.WrapUnary(next)
	req := connect.NewRequest(&testpb.SimpleRequest{})
	req.Header().Set("Authorization", "Bearer "+tok)
	if _, err := call(b.Context(), req); err != nil {
		b.Fatal(err)
	}
	bcCheckCache(b, v, tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := call(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}
