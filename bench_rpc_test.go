package grpcjwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// The benchmarks of this file put the verifier's cost in context: a real
// RPC with and without the interceptors (DESIGN.md: "an RPC through the
// interceptor should cost barely more than the same RPC without it"), and
// the per-call cost as the keyset, the policy and the token grow, which
// must stay flat where it is a lookup. They assert nothing about time.

// brStreamLen is how many messages the server sends per stream1000 call.
const brStreamLen = 1000

// brPayload is the body of every request and response: a small message.
var brPayload = make([]byte, 32)

// brServer answers UnaryCall with a small payload and StreamingOutputCall
// with brStreamLen small messages, whatever the request asks.
type brServer struct {
	testpb.UnimplementedTestServiceServer
}

func (brServer) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: brPayload}}, nil
}

func (brServer) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	msg := &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: brPayload}}
	for range brStreamLen {
		if err := st.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// brAuth is one server configuration of BenchmarkRPC.
type brAuth struct {
	name string
	v    *Verifier // nil: no interceptor
}

// brIssuer returns an ES256 issuer, closed when b ends, and a static
// keyset of its key.
func brIssuer(b *testing.B) (*testkit.Issuer, *Keyset) {
	b.Helper()
	is := testkit.NewIssuer(testkit.WithAlgorithm("ES256"))
	b.Cleanup(is.Close)
	ks, err := NewStaticKeyset(is.JWKS(), WithKeysetLogger(vtDiscard))
	if err != nil {
		b.Fatal(err)
	}
	return is, ks
}

// brMint mints a token of is with bnClaims, told apart from the others by
// n, and as long as each of them.
func brMint(is *testkit.Issuer, n int64) string {
	c := bnClaims()
	c["iss"] = is.URL()
	c["jti"] = fmt.Sprintf("%036d", n) // as long as bnClaims' jti
	return is.Mint(c)
}

// brSetup returns a realistic ES256 access token (bnClaims, so the token
// matches BenchmarkVerify's in size) from a grpcjwttest issuer, and the
// three server configurations: no interceptor, the interceptors with the
// default token cache, and with the cache off.
func brSetup(b *testing.B) (string, []brAuth) {
	b.Helper()
	is, ks := brIssuer(b)
	claims := bnClaims()
	claims["iss"] = is.URL()
	tok := is.Mint(claims)
	cached, err := NewVerifier(ks, WithIssuer(is.URL()), WithAudience(bnAud))
	if err != nil {
		b.Fatal(err)
	}
	uncached, err := NewVerifier(ks, WithIssuer(is.URL()), WithAudience(bnAud), WithTokenCache(0, 0, 0))
	if err != nil {
		b.Fatal(err)
	}
	return tok, []brAuth{{"none", nil}, {"grpcjwt-cached", cached}, {"grpcjwt-uncached", uncached}}
}

// brNewServer returns a grpc.Server of brServer, behind grpcjwt's unary and
// stream interceptors when v is not nil.
func brNewServer(v *Verifier) *grpc.Server {
	var opts []grpc.ServerOption
	if v != nil {
		opts = append(opts, grpc.UnaryInterceptor(UnaryServerInterceptor(v)), grpc.StreamInterceptor(StreamServerInterceptor(v)))
	}
	srv := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(srv, brServer{})
	return srv
}

// brServe serves a brServer over transport ("bufconn", or "tcp" on
// 127.0.0.1) behind grpcjwt's unary and stream interceptors when v is not
// nil, and returns a client. Both stop when b's run ends.
func brServe(b *testing.B, transport string, v *Verifier) testpb.TestServiceClient {
	b.Helper()
	return brServeOn(b, transport, brNewServer(v))
}

// brServeOn serves srv over transport and returns a client; both stop when
// b's run ends.
func brServeOn(b *testing.B, transport string, srv *grpc.Server) testpb.TestServiceClient {
	b.Helper()
	switch transport {
	case "bufconn":
		return testpb.NewTestServiceClient(testkit.Serve(b, srv))
	case "tcp":
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.Serve(lis)
		}()
		cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			srv.Stop()
			b.Fatal(err)
		}
		b.Cleanup(func() {
			cc.Close()
			srv.Stop()
			<-served
		})
		return testpb.NewTestServiceClient(cc)
	}
	srv.Stop()
	b.Fatalf("unknown transport %q", transport)
	return nil
}

// brOp returns one operation of kind: a unary call, or a server stream of
// brStreamLen messages read to its end.
func brOp(b *testing.B, kind string, c testpb.TestServiceClient) func(context.Context) error {
	req := &testpb.SimpleRequest{ResponseSize: int32(len(brPayload)), Payload: &testpb.Payload{Body: brPayload}}
	sreq := &testpb.StreamingOutputCallRequest{}
	switch kind {
	case "unary":
		return func(ctx context.Context) error {
			_, err := c.UnaryCall(ctx, req)
			return err
		}
	case "stream1000":
		return func(ctx context.Context) error {
			st, err := c.StreamingOutputCall(ctx, sreq)
			if err != nil {
				return err
			}
			for n := 0; ; n++ {
				_, err := st.Recv()
				if errors.Is(err, io.EOF) {
					if n != brStreamLen {
						return fmt.Errorf("stream ended after %d messages, want %d", n, brStreamLen)
					}
					return nil
				}
				if err != nil {
					return err
				}
			}
		}
	}
	b.Fatalf("unknown kind %q", kind)
	return nil
}

// brWarm runs op for brWarmup before the measurement, so that it starts on
// a connection and a heap that have settled (the first call dials, and
// grpc-go sizes its HTTP/2 windows from the first exchanges) and the cache
// holds the token. Differences between configurations are small next to
// an RPC's cost; a start-up transient must not show up as one of them.
func brWarm(ctx context.Context, b *testing.B, op func(context.Context) error) {
	b.Helper()
	for start := time.Now(); time.Since(start) < brWarmup; {
		if err := op(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

const brWarmup = 50 * time.Millisecond

// brCheckCache fails b unless v's cache holds tok (v caches) or v has no
// cache, so that "cached" and "uncached" mean what they say.
func brCheckCache(b *testing.B, v *Verifier, tok string, cached bool) {
	b.Helper()
	if v == nil {
		return
	}
	inCache := v.cache != nil && v.cache.get(tok) != nil
	switch {
	case cached && !inCache:
		b.Fatal("a cached configuration: the token is not in the verifier's cache after a first call")
	case !cached && inCache:
		b.Fatal("an uncached configuration: the token is in a cache")
	}
}

// BenchmarkRPC measures a whole RPC through a real grpc.Server, over an
// in-memory bufconn and over loopback TCP, for a unary call and for a
// server stream of 1,000 small messages read to its end: without any
// interceptor (none), behind grpcjwt's interceptors with the default token
// cache and the same token every call (grpcjwt-cached), and with the cache
// off (grpcjwt-uncached). Every call sends the same bearer token, with or
// without the interceptors, so the difference is grpcjwt's alone.
func BenchmarkRPC(b *testing.B) {
	tok, auths := brSetup(b)
	for _, transport := range []string{"bufconn", "tcp"} {
		b.Run("transport="+transport, func(b *testing.B) {
			for _, kind := range []string{"unary", "stream1000"} {
				b.Run("kind="+kind, func(b *testing.B) {
					for _, a := range auths {
						b.Run("auth="+a.name, func(b *testing.B) {
							op := brOp(b, kind, brServe(b, transport, a.v))
							ctx := testkit.WithBearer(b.Context(), tok)
							brWarm(ctx, b, op) // connects, fills the cache
							brCheckCache(b, a.v, tok, a.name == "grpcjwt-cached")
							b.ReportAllocs()
							for b.Loop() {
								if err := op(ctx); err != nil {
									b.Fatal(err)
								}
							}
							b.ReportMetric(float64(len(tok)), "token-bytes")
						})
					}
				})
			}
		})
	}
}

// BenchmarkRPCParallel runs unary calls over one bufconn connection from
// GOMAXPROCS goroutines, without interceptor and behind grpcjwt's with a
// cached token; run it with -cpu 1,2,... to see how the throughput scales.
func BenchmarkRPCParallel(b *testing.B) {
	tok, auths := brSetup(b)
	for _, a := range auths[:2] { // none, grpcjwt-cached
		b.Run("transport=bufconn/kind=unary/auth="+a.name, func(b *testing.B) {
			op := brOp(b, "unary", brServe(b, "bufconn", a.v))
			ctx := testkit.WithBearer(b.Context(), tok)
			brWarm(ctx, b, op)
			brCheckCache(b, a.v, tok, a.name == "grpcjwt-cached")
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// brVerifyLoop verifies tok with v once (filling the cache), checks that
// the cache holds it when v caches, and then measures Verify of it.
func brVerifyLoop(b *testing.B, v *Verifier, tok string, cached bool) {
	b.Helper()
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	brCheckCache(b, v, tok, cached)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tok)), "token-bytes")
}

// brCaches are the two verifier settings of the scaling benchmarks: the
// default cache with the same token every op (every op a hit), and none.
var brCaches = []struct {
	name  string
	cache bool
}{{"verify=cached", true}, {"verify=uncached", false}}

// brKeys holds the ES256 keys of BenchmarkVerifyKeys, generated once per
// process on first use and shared by every run.
var brKeys struct {
	once sync.Once
	keys []*testkit.Key
}

const brMaxKeys = 1000

func brKeyset(b *testing.B, n int) (*Keyset, *testkit.Key) {
	b.Helper()
	brKeys.once.Do(func() {
		for range brMaxKeys {
			brKeys.keys = append(brKeys.keys, testkit.NewKey("ES256"))
		}
	})
	pubs := make([]any, n)
	for i, k := range brKeys.keys[:n] {
		pubs[i] = k.Public()
	}
	ks, err := NewStaticKeyset(vtJSON(map[string]any{"keys": pubs}), WithMaxKeys(brMaxKeys), WithKeysetLogger(vtDiscard))
	if err != nil {
		b.Fatal(err)
	}
	return ks, brKeys.keys[n-1]
}

// BenchmarkVerifyKeys verifies a token whose kid names the last of N ES256
// keys of a static keyset: the key is found by kid, so neither the cached
// nor the uncached cost may grow with N.
func BenchmarkVerifyKeys(b *testing.B) {
	for _, n := range []int{1, 100, brMaxKeys} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ks, k := brKeyset(b, n)
			tok := testkit.Sign(k, nil, bnClaims())
			for _, c := range brCaches {
				b.Run(c.name, func(b *testing.B) { brVerifyLoop(b, bnVerifier(b, ks, c.cache), tok, c.cache) })
			}
		})
	}
}

// brPolicy returns a policy of n exact rules, one of them for TestService's
// UnaryCall requiring a scope the bnClaims token grants, ten methods per
// service, plus brServiceRules service rules "/bench.v1.Wild<i>/*".
func brPolicy(b *testing.B, n int) *Policy {
	b.Helper()
	rules := make(map[string]Rule, n+brServiceRules)
	rules[testpb.TestService_UnaryCall_FullMethodName] = Rule{Scopes: []string{"orders:read"}}
	for i := 1; i < n; i++ {
		rules[fmt.Sprintf("/bench.v1.Service%05d/Method%d", i/10, i%10)] = Rule{Scopes: []string{"orders:read"}}
	}
	for i := range brServiceRules {
		rules[fmt.Sprintf("/bench.v1.Wild%d/*", i)] = Rule{Scopes: []string{"orders:read"}}
	}
	p, err := NewPolicy(rules)
	if err != nil {
		b.Fatal(err)
	}
	if len(p.exact) != n || len(p.service) != brServiceRules {
		b.Fatalf("policy has %d exact and %d service rules, want %d and %d", len(p.exact), len(p.service), n, brServiceRules)
	}
	return p
}

const brServiceRules = 10

// brSinkRule keeps the compiler from dropping the matches measured.
var brSinkRule *ruleEntry

// BenchmarkPolicyMatch measures Policy.match with 10 and 10,000 exact
// rules, on a method that an exact rule names (op=exact), one that only a
// service rule covers (op=service) and one that no rule names (op=absent),
// and the unary interceptor's whole path (op=interceptor-cached: token
// from the metadata, cache hit, rule match, scope check, claims in the
// context) on the exact method. None of them may grow with the rules.
func BenchmarkPolicyMatch(b *testing.B) {
	tok, _, ks := bnSetup(b, "ES256")
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			p := brPolicy(b, n)
			for _, m := range []struct{ op, method, wantKey string }{
				{"exact", testpb.TestService_UnaryCall_FullMethodName, testpb.TestService_UnaryCall_FullMethodName},
				{"service", "/bench.v1.Wild3/Method", "/bench.v1.Wild3/*"},
				{"absent", "/bench.v1.Missing/Method", defaultRule.key},
			} {
				b.Run("op="+m.op, func(b *testing.B) {
					if got := p.match(m.method).key; got != m.wantKey {
						b.Fatalf("match(%q) = rule %q, want %q", m.method, got, m.wantKey)
					}
					b.ReportAllocs()
					for b.Loop() {
						brSinkRule = p.match(m.method)
					}
				})
			}
			b.Run("op=interceptor-cached", func(b *testing.B) {
				v := bnVerifier(b, ks, true)
				icpt := UnaryServerInterceptor(v, WithPolicy(p))
				ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
				info := &grpc.UnaryServerInfo{FullMethod: testpb.TestService_UnaryCall_FullMethodName}
				handler := func(ctx context.Context, req any) (any, error) {
					if _, ok := ClaimsFromContext(ctx); !ok {
						return nil, errors.New("no claims in the handler's context")
					}
					return req, nil
				}
				req := &testpb.SimpleRequest{}
				if _, err := icpt(ctx, req, info, handler); err != nil {
					b.Fatal(err)
				}
				brCheckCache(b, v, tok, true)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := icpt(ctx, req, info, handler); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// brSizedToken signs, with k, a token of at most size bytes and as close to
// it as base64 allows (size or size-1): a few short claims and a custom
// "pad" claim filled to length.
func brSizedToken(b *testing.B, k *testkit.Key, size int) string {
	b.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss":       bnIssuer,
		"sub":       "usr_8f3c2a9d4e1b7f60",
		"aud":       bnAud,
		"client_id": "cli_4b7e9a2c1d8f3e6a",
		"scope":     "orders:read",
		"iat":       now.Unix(),
		"exp":       now.Add(24 * time.Hour).Unix(),
		"pad":       "",
	}
	sign := func(pad int) string {
		claims["pad"] = strings.Repeat("x", pad)
		return testkit.Sign(k, nil, claims)
	}
	base := len(sign(0))
	if base > size {
		b.Fatalf("a token without padding is %d bytes, more than %d", base, size)
	}
	// Each padding byte adds 4/3 of a character; walk down from just above.
	pad := (size-base)*3/4 + 2
	tok := sign(pad)
	for len(tok) > size {
		pad--
		tok = sign(pad)
	}
	return tok
}

// BenchmarkVerifyTokenSize verifies ES256 tokens of about 500 bytes, 2 KiB
// and 8 KiB (at most 8,192 bytes, the default largest cacheable token, so
// that the cached case does hit the cache).
func BenchmarkVerifyTokenSize(b *testing.B) {
	k := testkit.NewKey("ES256")
	ks, err := NewStaticKeyset(vtJSON(map[string]any{"keys": []any{k.Public()}}), WithKeysetLogger(vtDiscard))
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []struct {
		name  string
		bytes int
	}{{"500B", 500}, {"2KiB", 2 << 10}, {"8KiB", 8 << 10}} {
		b.Run("size="+s.name, func(b *testing.B) {
			tok := brSizedToken(b, k, s.bytes)
			for _, c := range brCaches {
				b.Run(c.name, func(b *testing.B) { brVerifyLoop(b, bnVerifier(b, ks, c.cache), tok, c.cache) })
			}
		})
	}
}

// BenchmarkVerifyClaimCount verifies ES256 tokens of 8 to 64 claims
// without a cache: what each claim costs, above all in allocations, since
// the checks for repeated and case-variant names look at every pair.
// Keycloak's and Entra ID's access tokens carry 20 to 30 claims.
func BenchmarkVerifyClaimCount(b *testing.B) {
	k := testkit.NewKey("ES256")
	ks, err := NewStaticKeyset(vtJSON(map[string]any{"keys": []any{k.Public()}}), WithKeysetLogger(vtDiscard))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for _, n := range []int{8, 16, 17, 24, 32, 64} {
		b.Run(fmt.Sprintf("claims=%d", n), func(b *testing.B) {
			claims := map[string]any{
				"iss": bnIssuer, "sub": "usr_8f3c2a9d4e1b7f60", "aud": bnAud, "scope": "orders:read",
				"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
			}
			for i := len(claims); i < n; i++ {
				claims[fmt.Sprintf("ext_claim_%02d", i)] = "value"
			}
			if len(claims) != n {
				b.Fatalf("%d claims, want %d", len(claims), n)
			}
			brVerifyLoop(b, bnVerifier(b, ks, false), testkit.Sign(k, nil, claims), false)
		})
	}
}

// BenchmarkVerifyMissCacheSize verifies ES256 tokens that all miss the
// cache, a different one each time, without a cache and with a full cache
// of 1,000 and of 10,000 entries (the default): what a miss costs beyond
// the verification itself as the cache grows. It calls verifyTokenHit
// (Verify without its audience check, as the interceptors do) to check
// that no call hit.
func BenchmarkVerifyMissCacheSize(b *testing.B) {
	is, ks := brIssuer(b)
	// More distinct tokens than the largest cache holds, so that each has
	// left the cache before it comes round again.
	toks := make([]string, 1<<14)
	for i := range toks {
		toks[i] = brMint(is, int64(i+1))
	}
	for _, entries := range []int{0, 1000, 10_000} {
		b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) {
			opt := WithTokenCache(entries, 8<<10, 10*time.Minute)
			if entries == 0 {
				opt = WithTokenCache(0, 0, 0)
			}
			v, err := NewVerifier(ks, WithIssuer(is.URL()), WithAudience(bnAud), opt)
			if err != nil {
				b.Fatal(err)
			}
			if entries > 0 {
				brFillCache(b, v, brMint(is, 0))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_, hit, err := v.verifyTokenHit(b.Context(), toks[i%len(toks)])
				if err != nil || hit {
					b.Fatalf("token %d: hit %v, error %v", i, hit, err)
				}
				i++
			}
		})
	}
}

// brWorkServer is brServer whose UnaryCall first runs work: the handler of
// the in-situ baselines of BenchmarkRPCMiss.
type brWorkServer struct {
	brServer
	work func(context.Context) error
}

func (s brWorkServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if err := s.work(ctx); err != nil {
		return nil, err
	}
	return s.brServer.UnaryCall(ctx, req)
}

// brServeHandler serves, over transport, a brWorkServer running work in its
// handler and no interceptor.
func brServeHandler(b *testing.B, transport string, work func(context.Context) error) testpb.TestServiceClient {
	b.Helper()
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, brWorkServer{work: work})
	return brServeOn(b, transport, srv)
}

// brFillCache fills v's cache to its bound with entries shaped like tok's
// (same length, same claims), so that every token put next evicts one, as
// in a server that has seen many tokens.
func brFillCache(b *testing.B, v *Verifier, tok string) {
	b.Helper()
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	e := v.cache.get(tok)
	if e == nil {
		b.Fatal("the token is not in the verifier's cache")
	}
	capacity := 0
	for i := range v.cache.n {
		capacity += v.cache.shards[i].max
	}
	// Each filler holds what a verified token's entry holds: the entry, one
	// object of the token's and the claims set's bytes, and a slice of
	// audiences and scopes.
	for i := 0; v.cache.len() < capacity; i++ {
		f := &cacheEntry{claims: e.claims, key: e.key, until: e.until}
		f.token = fmt.Sprintf("%s%016x%s", tok[:len(tok)-16], i, e.claims.payload)[:len(tok)]
		f.hash = v.cache.hash(f.token)
		strs := slices.Clone(append(slices.Clip(e.claims.Audience), e.claims.Scopes...))
		f.claims.Audience, f.claims.Scopes = strs[:len(e.claims.Audience)], strs[len(e.claims.Audience):]
		v.cache.put(f)
	}
}

// brMedian returns the median of x, which it sorts.
func brMedian(x []float64) float64 {
	slices.Sort(x)
	return x[len(x)/2]
}

// brPhase runs op(i) for i in [0, n) from g goroutines, each taking the next
// i, and returns the wall time of the whole: with g large enough to keep
// every core busy, that is the CPU cost of n ops divided by the cores.
func brPhase(g, n int, op func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	errs := make(chan error, g)
	start := time.Now()
	for range g {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					errs <- nil
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var first error
	for range g {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return time.Since(start), first
}

// brMissPhase is how many ops each series runs in turn in one round of
// BenchmarkRPCMiss. Shorter phases make the figures of saturated TCP on 2
// cores swing: each phase starts on a connection idle since the last
// round, and with 64 ops its ramp is a large part of the phase.
const brMissPhase = 256

// BenchmarkRPCMiss measures what a cache miss adds to a unary RPC and puts
// it beside the cost of Verify. Each op is a round in which every series
// below runs brMissPhase ops in turn, so that the machine's load falls on
// all of them alike; a series' figure (µs per op) is the median over the
// rounds.
//
//   - none: no interceptor, the same bearer token in every call;
//   - none-fresh: no interceptor, a token never sent before (a fresh jti);
//     a new token costs the transport more than a repeated one, which
//     HPACK sends as an index;
//   - miss: grpcjwt's interceptors with the default cache, full, and a token
//     never seen before: a whole verification, the cache's insertion and
//     eviction, and the claims put in the context;
//   - in-handler: no interceptor, a token never sent before, which the
//     handler reads from the metadata and passes to Verify (cache off):
//     the same verification, paid inside an RPC;
//   - busy: no interceptor, the handler spins on the clock for as long as
//     the median Verify took before the run: any work of that length;
//   - verify: Verify (cache off) called directly, as in BenchmarkVerify.
//
// miss-added/verify, (miss - none-fresh) / verify, is the figure the
// performance goal bounds; miss-added/in-handler-added compares the miss
// with the same verification done by the handler; busy-added/verify shows
// what the RPC adds to any work of Verify's length.
//
// With load=saturated, 8 goroutines per core run each series, so that the
// cores never idle: the figures are CPU cost per op divided by the cores,
// which is what decides how many RPCs a core can protect. With
// load=sequential, one goroutine: the figures are latencies. On 2 or more
// cores, a long handler then lets the other core go idle and park, and
// waking it again costs every long handler the same (see busy).
func BenchmarkRPCMiss(b *testing.B) {
	is, ks := brIssuer(b)
	var minted atomic.Int64
	mint := func() string { return brMint(is, minted.Add(1)) }
	tok := mint()
	newVerifier := func(opts ...VerifierOption) *Verifier {
		v, err := NewVerifier(ks, append([]VerifierOption{WithIssuer(is.URL()), WithAudience(bnAud)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	uncached := newVerifier(WithTokenCache(0, 0, 0))
	verify := func(context.Context) error {
		_, err := uncached.Verify(context.Background(), tok)
		return err
	}

	// The handler of in-handler reads the bearer token itself and verifies
	// it, as a service without grpcjwt's interceptors would.
	verifyIncoming := func(ctx context.Context) error {
		v := metadata.ValueFromIncomingContext(ctx, "authorization")
		if len(v) != 1 || !strings.HasPrefix(v[0], "Bearer ") {
			return fmt.Errorf("authorization metadata %q", v)
		}
		_, err := uncached.Verify(ctx, v[0][len("Bearer "):])
		return err
	}

	samples := make([]float64, 200)
	for i := range samples {
		start := time.Now()
		if err := verify(nil); err != nil {
			b.Fatal(err)
		}
		samples[i] = float64(time.Since(start))
	}
	busyFor := time.Duration(brMedian(samples))
	busy := func(context.Context) error {
		for start := time.Now(); time.Since(start) < busyFor; {
		}
		return nil
	}

	for _, load := range []string{"saturated", "sequential"} {
		for _, transport := range []string{"bufconn", "tcp"} {
			b.Run("load="+load+"/transport="+transport+"/kind=unary", func(b *testing.B) {
				g := 1
				if load == "saturated" {
					g = 8 * runtime.GOMAXPROCS(0)
				}
				missV := newVerifier()
				brFillCache(b, missV, tok)
				none := brOp(b, "unary", brServeOn(b, transport, brNewServer(nil)))
				series := []struct {
					name  string
					fresh bool // a new token every call
					op    func(context.Context) error
				}{
					{"none", false, none},
					{"none-fresh", true, brOp(b, "unary", brServeOn(b, transport, brNewServer(nil)))},
					{"miss", true, brOp(b, "unary", brServeOn(b, transport, brNewServer(missV)))},
					{"in-handler", true, brOp(b, "unary", brServeHandler(b, transport, verifyIncoming))},
					{"busy", false, brOp(b, "unary", brServeHandler(b, transport, busy))},
					{"verify", false, verify},
				}
				bearer := testkit.WithBearer(b.Context(), tok)
				for _, s := range series {
					brWarm(bearer, b, s.op)
				}

				// Fresh tokens for every round, minted before the clock starts.
				fresh := make([][]string, b.N)
				freshCtx := make([][]context.Context, b.N)
				for r := range fresh {
					for range brMissPhase {
						t := mint()
						fresh[r] = append(fresh[r], t)
						freshCtx[r] = append(freshCtx[r], testkit.WithBearer(b.Context(), t))
					}
				}
				perOp := make(map[string][]float64, len(series))
				b.ReportAllocs()
				b.ResetTimer()
				for r := range b.N {
					for _, s := range series {
						d, err := brPhase(g, brMissPhase, func(i int) error {
							if !s.fresh {
								return s.op(bearer)
							}
							if s.name == "miss" && missV.cache.get(fresh[r][i]) != nil {
								return fmt.Errorf("token %d of round %d is in the cache before its first call", i, r)
							}
							if err := s.op(freshCtx[r][i]); err != nil {
								return err
							}
							// Concurrent misses may evict one another, so
							// only a sequential run can check this.
							if s.name == "miss" && g == 1 && missV.cache.get(fresh[r][i]) == nil {
								return fmt.Errorf("token %d of round %d did not enter the cache", i, r)
							}
							return nil
						})
						if err != nil {
							b.Fatalf("%s: %v", s.name, err)
						}
						perOp[s.name] = append(perOp[s.name], float64(d)/brMissPhase/float64(time.Microsecond))
					}
				}
				b.StopTimer()
				med := map[string]float64{}
				for name, x := range perOp {
					med[name] = brMedian(x)
					b.ReportMetric(med[name], name+"-µs")
				}
				b.ReportMetric((med["miss"]-med["none-fresh"])/med["verify"], "miss-added/verify")
				b.ReportMetric((med["miss"]-med["none-fresh"])/(med["in-handler"]-med["none-fresh"]), "miss-added/in-handler-added")
				b.ReportMetric((med["busy"]-med["none"])/med["verify"], "busy-added/verify")
			})
		}
	}
}
