package grpcjwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/grpcjwt/grpcjwt/grpcjwttest"
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

// brSetup returns a realistic ES256 access token (bnClaims, so the token
// matches BenchmarkVerify's in size) from a grpcjwttest issuer, and the
// three server configurations: no interceptor, the interceptors with the
// default token cache, and with the cache off.
func brSetup(b *testing.B) (string, []brAuth) {
	b.Helper()
	is := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("ES256"))
	b.Cleanup(is.Close)
	ks, err := NewStaticKeyset(is.JWKS(), WithKeysetLogger(vtDiscard))
	if err != nil {
		b.Fatal(err)
	}
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

// brServe serves a brServer over transport ("bufconn", or "tcp" on
// 127.0.0.1) behind grpcjwt's unary and stream interceptors when v is not
// nil, and returns a client. Both stop when b's run ends.
func brServe(b *testing.B, transport string, v *Verifier) testpb.TestServiceClient {
	b.Helper()
	var opts []grpc.ServerOption
	if v != nil {
		opts = append(opts, grpc.UnaryInterceptor(UnaryServerInterceptor(v)), grpc.StreamInterceptor(StreamServerInterceptor(v)))
	}
	srv := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(srv, brServer{})
	switch transport {
	case "bufconn":
		return testpb.NewTestServiceClient(grpcjwttest.Serve(b, srv))
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
func brCheckCache(b *testing.B, v *Verifier, tok string) {
	b.Helper()
	if v == nil {
		return
	}
	if v.cache != nil && v.cache.get(tok) == nil {
		b.Fatal("the token is not in the verifier's cache after a first call")
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
							ctx := grpcjwttest.WithBearer(b.Context(), tok)
							brWarm(ctx, b, op) // connects, fills the cache
							brCheckCache(b, a.v, tok)
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
			ctx := grpcjwttest.WithBearer(b.Context(), tok)
			brWarm(ctx, b, op)
			brCheckCache(b, a.v, tok)
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
func brVerifyLoop(b *testing.B, v *Verifier, tok string) {
	b.Helper()
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	brCheckCache(b, v, tok)
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
	keys []*grpcjwttest.Key
}

const brMaxKeys = 1000

func brKeyset(b *testing.B, n int) (*Keyset, *grpcjwttest.Key) {
	b.Helper()
	brKeys.once.Do(func() {
		for range brMaxKeys {
			brKeys.keys = append(brKeys.keys, grpcjwttest.NewKey("ES256"))
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
			tok := grpcjwttest.Sign(k, nil, bnClaims())
			for _, c := range brCaches {
				b.Run(c.name, func(b *testing.B) { brVerifyLoop(b, bnVerifier(b, ks, c.cache), tok) })
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
				brCheckCache(b, v, tok)
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
func brSizedToken(b *testing.B, k *grpcjwttest.Key, size int) string {
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
		return grpcjwttest.Sign(k, nil, claims)
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
	k := grpcjwttest.NewKey("ES256")
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
				b.Run(c.name, func(b *testing.B) { brVerifyLoop(b, bnVerifier(b, ks, c.cache), tok) })
			}
		})
	}
}
