package grpcjwt_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// The tests in this file assert denial-of-service bounds as behaviour
// (what is rejected, how many allocations, how many JWKS requests, how many
// bytes read), never as time. Helpers carry a "dos" prefix so that they do
// not collide with other test files of package grpcjwt_test.

const (
	dosAudience = "api://dos"

	// dosRejectAllocs bounds the allocations of rejecting an oversized
	// token: those of the error value (fmt.Errorf with two ints) and nothing
	// that depends on the token's size. The race detector adds one.
	dosRejectAllocs = 4
	// dosDotsAllocs bounds the allocations of rejecting a token of dots
	// that fits the cap: the error value only.
	dosDotsAllocs = 2
	// dosRejectBytes bounds the bytes allocated per rejection of an
	// oversized token: far below the size of any copy of the token.
	dosRejectBytes = 1 << 10

	// dosHeaderLimit is the header list size both ends of the gRPC tests
	// allow, so that gRPC's own limit does not stop a 10 MB value first.
	dosHeaderLimit = 64 << 20
)

// dosTokens are oversized or degenerate tokens that Verify must reject with
// ErrMalformed before parsing them.
func dosTokens() map[string]string {
	return map[string]string{
		"10 MB of base64url":        strings.Repeat("A", 10<<20),
		"10 MB shaped like a JWS":   "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ." + strings.Repeat("A", 10<<20) + ".AAAA",
		"100,000 dots":              strings.Repeat(".", 100_000),
		"10 MB of dots":             strings.Repeat(".", 10<<20),
		"token one byte over limit": "eyJhbGciOiJFUzI1NiJ9.e30." + strings.Repeat("A", 16<<10-24),
	}
}

// dosRaceAllocs is the allocations the race detector adds to a rejection.
func dosRaceAllocs() float64 {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return 1
			}
		}
	}
	return 0
}

// dosIssuer starts an issuer, closed when the test ends.
func dosIssuer(tb testing.TB) *grpcjwttest.Issuer {
	tb.Helper()
	is := grpcjwttest.NewIssuer()
	tb.Cleanup(is.Close)
	return is
}

// dosStaticVerifier returns a verifier over is's current keys, for is's
// issuer and dosAudience.
func dosStaticVerifier(tb testing.TB, is *grpcjwttest.Issuer, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	tb.Helper()
	ks, err := grpcjwt.NewStaticKeyset(is.JWKS())
	if err != nil {
		tb.Fatalf("NewStaticKeyset: %v", err)
	}
	opts = append([]grpcjwt.VerifierOption{grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(dosAudience)}, opts...)
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// dosRemoteKeyset returns a remote keyset of is, closed when the test ends.
func dosRemoteKeyset(tb testing.TB, is *grpcjwttest.Issuer, client *http.Client, opts ...grpcjwt.KeysetOption) *grpcjwt.Keyset {
	tb.Helper()
	if client == nil {
		client = is.HTTPClient()
	}
	opts = append([]grpcjwt.KeysetOption{
		grpcjwt.WithHTTPClient(client),
		grpcjwt.WithKeysetLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	ks, err := grpcjwt.NewRemoteKeyset(context.Background(), is.JWKSURL(), opts...)
	if err != nil {
		tb.Fatalf("NewRemoteKeyset: %v", err)
	}
	tb.Cleanup(func() { ks.Close() })
	return ks
}

func dosVerifier(tb testing.TB, is *grpcjwttest.Issuer, ks *grpcjwt.Keyset, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	tb.Helper()
	opts = append([]grpcjwt.VerifierOption{grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(dosAudience)}, opts...)
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// dosMint signs a fresh valid token (a new jti each time, so that the
// verifier's cache never answers for it) with key k of is.
func dosMint(is *grpcjwttest.Issuer, k *grpcjwttest.Key) string {
	c := is.Claims(dosAudience)
	c["jti"] = fmt.Sprintf("dos-%d", dosJTI.Add(1))
	return is.MintWith(k, nil, c)
}

var dosJTI atomic.Int64

// dosBytesPerOp measures the bytes allocated per call of f over runs runs.
func dosBytesPerOp(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestDoSVerifyRejectsOversizedUnparsed: a 10 MB token and a token of
// 100,000 dots fail Verify with ErrMalformed at the size cap, with a constant
// number of allocations and no copy of the token: nothing of it is parsed.
func TestDoSVerifyRejectsOversizedUnparsed(t *testing.T) {
	is := dosIssuer(t)
	v := dosStaticVerifier(t, is)
	ctx := context.Background()
	for name, tok := range dosTokens() {
		t.Run(name, func(t *testing.T) {
			c, err := v.Verify(ctx, tok)
			if !errors.Is(err, grpcjwt.ErrMalformed) || c != nil {
				t.Fatalf("Verify(%d bytes) = %v, %v; want ErrMalformed", len(tok), c, err)
			}
			allocs := dosMinAllocs(func() { v.Verify(ctx, tok) })
			bytes := dosBytesPerOp(100, func() { v.Verify(ctx, tok) })
			t.Logf("%d-byte token: %v allocations, %d bytes allocated per rejection", len(tok), allocs, bytes)
			if allocs > dosRejectAllocs+dosRaceAllocs() {
				t.Errorf("rejecting a %d-byte token took %v allocations, want at most %v: is it parsed before the size check?",
					len(tok), allocs, dosRejectAllocs+dosRaceAllocs())
			}
			if bytes > dosRejectBytes {
				t.Errorf("rejecting a %d-byte token allocated %d bytes per call, want at most %d: is it copied or decoded?",
					len(tok), bytes, dosRejectBytes)
			}
		})
	}
}

// TestDoSVerifyDotsUnderCap: a token of dots that fits the size cap is
// refused as not compact JWS without being decoded: the allocations stay
// the error's, whatever the number of dots.
func TestDoSVerifyDotsUnderCap(t *testing.T) {
	is := dosIssuer(t)
	v := dosStaticVerifier(t, is)
	ctx := context.Background()
	for _, n := range []int{3, 100, 16 << 10} {
		tok := strings.Repeat(".", n)
		if _, err := v.Verify(ctx, tok); !errors.Is(err, grpcjwt.ErrMalformed) {
			t.Fatalf("Verify(%d dots) = %v; want ErrMalformed", n, err)
		}
		allocs := dosMinAllocs(func() { v.Verify(ctx, tok) })
		bytes := dosBytesPerOp(100, func() { v.Verify(ctx, tok) })
		t.Logf("%d dots: %v allocations, %d bytes per rejection", n, allocs, bytes)
		if allocs > dosDotsAllocs+dosRaceAllocs() || bytes > dosRejectBytes {
			t.Errorf("%d dots: %v allocations and %d bytes per rejection, want at most %v and %d",
				n, allocs, bytes, dosDotsAllocs+dosRaceAllocs(), dosRejectBytes)
		}
	}
}

// dosServer counts the handler invocations of a TestService.
type dosServer struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (s *dosServer) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	return &testpb.SimpleResponse{}, nil
}

func (s *dosServer) FullDuplexCall(st testpb.TestService_FullDuplexCallServer) error {
	s.calls.Add(1)
	for {
		if _, err := st.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// dosCodec counts the request messages the server decodes.
type dosCodec struct {
	encoding.CodecV2
	decoded atomic.Int64
}

func (c *dosCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c.decoded.Add(1)
	return c.CodecV2.Unmarshal(data, v)
}

// dosStats counts the RPCs the server starts and the request messages it
// reads off the wire.
type dosStats struct {
	begun, payloads atomic.Int64
}

func (s *dosStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (s *dosStats) HandleRPC(_ context.Context, st stats.RPCStats) {
	switch st.(type) {
	case *stats.Begin:
		s.begun.Add(1)
	case *stats.InPayload:
		s.payloads.Add(1)
	}
}
func (s *dosStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (s *dosStats) HandleConn(context.Context, stats.ConnStats)                       {}

// dosServe serves a TestService protected by grpcjwt (the tap handle too
// when withTap) with header list limits of dosHeaderLimit at both ends.
func dosServe(t *testing.T, v *grpcjwt.Verifier, withTap bool) (testpb.TestServiceClient, *dosServer, *dosCodec, *dosStats) {
	t.Helper()
	codec := &dosCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
	st := &dosStats{}
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(grpcjwt.UnaryServerInterceptor(v)),
		grpc.StreamInterceptor(grpcjwt.StreamServerInterceptor(v)),
		grpc.MaxHeaderListSize(dosHeaderLimit),
		grpc.ForceServerCodecV2(codec),
		grpc.StatsHandler(st),
	}
	if withTap {
		opts = append(opts, grpc.InTapHandle(grpcjwt.PreAuthHandle(v)))
	}
	srv := grpc.NewServer(opts...)
	impl := &dosServer{}
	testpb.RegisterTestServiceServer(srv, impl)
	cc := grpcjwttest.Serve(t, srv, grpc.WithMaxHeaderListSize(dosHeaderLimit))
	return testpb.NewTestServiceClient(cc), impl, codec, st
}

func dosStatus(err error) (codes.Code, string) {
	s := status.Convert(err)
	return s.Code(), s.Message()
}

// TestDoSInterceptorOversizedAuthorization: a 10 MB authorization value
// reaches the unary interceptor (both ends allow a header list that large,
// so gRPC's own limit does not refuse it first) and is rejected as a
// malformed token, with the RFC 6750 challenge, and no handler runs; so is
// one of 100,000 dots, on a unary call and on a stream.
func TestDoSInterceptorOversizedAuthorization(t *testing.T) {
	is := dosIssuer(t)
	v := dosStaticVerifier(t, is)
	c, impl, _, _ := dosServe(t, v, false)
	huge := "Bearer " + strings.Repeat("A", 10<<20)
	dots := "Bearer " + strings.Repeat(".", 100_000)
	for name, auth := range map[string]string{"10 MB": huge, "100,000 dots": dots} {
		t.Run(name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", auth)
			var trailer metadata.MD
			_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
			code, msg := dosStatus(err)
			if code != codes.Unauthenticated || msg != "malformed token" {
				t.Errorf("unary: %v %q; want Unauthenticated %q", code, msg, "malformed token")
			}
			want := `Bearer error="invalid_token", error_description="malformed token"`
			if got := trailer.Get("www-authenticate"); len(got) != 1 || got[0] != want {
				t.Errorf("unary: www-authenticate %q, want %q", got, want)
			}

			if len(auth) > 1<<20 {
				// The stream interceptor applies the same cap; the 100,000
				// dots check it, and a second 10 MB header would only double
				// the run time (HPACK over bufconn is slow under -race).
				return
			}
			st, err := c.FullDuplexCall(ctx)
			if err == nil {
				st.Send(&testpb.StreamingOutputCallRequest{})
				_, err = st.Recv()
			}
			if code, msg := dosStatus(err); code != codes.Unauthenticated || msg != "malformed token" {
				t.Errorf("stream: %v %q; want Unauthenticated %q", code, msg, "malformed token")
			}
		})
	}
	if n := impl.calls.Load(); n != 0 {
		t.Errorf("%d handler(s) ran", n)
	}
}

// TestDoSPreAuthHandleRejectsBeforeRead: with PreAuthHandle installed, a
// call carrying a 10 MB authorization value (or 100,000 dots) and a 1 MB
// request is turned away before gRPC starts the RPC: no request message is
// read or decoded and no handler runs. Without the handle such a call (the
// control uses the dots only, the cheaper value) is rejected too, but only
// after its message was read and decoded.
func TestDoSPreAuthHandleRejectsBeforeRead(t *testing.T) {
	is := dosIssuer(t)
	v := dosStaticVerifier(t, is)
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 1<<20)}}
	auths := map[string]string{
		"10 MB":        "Bearer " + strings.Repeat("A", 10<<20),
		"100,000 dots": "Bearer " + strings.Repeat(".", 100_000),
	}
	for _, withTap := range []bool{true, false} {
		c, impl, codec, st := dosServe(t, v, withTap)
		if !withTap {
			delete(auths, "10 MB")
		}
		for name, auth := range auths {
			ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", auth)
			_, err := c.UnaryCall(ctx, req)
			if code, msg := dosStatus(err); code != codes.Unauthenticated || msg != "malformed token" {
				t.Errorf("tap %v, %s: %v %q; want Unauthenticated %q", withTap, name, code, msg, "malformed token")
			}
		}
		if n := impl.calls.Load(); n != 0 {
			t.Errorf("tap %v: %d handler(s) ran", withTap, n)
		}
		calls := int64(len(auths))
		if withTap {
			if b, p, d := st.begun.Load(), st.payloads.Load(), codec.decoded.Load(); b != 0 || p != 0 || d != 0 {
				t.Errorf("with PreAuthHandle: %d RPCs begun, %d request messages read, %d decoded; want none", b, p, d)
			}
		} else if b, p, d := st.begun.Load(), st.payloads.Load(), codec.decoded.Load(); b != calls || p != calls || d != calls {
			// The control: without the handle gRPC reads and decodes the
			// unary request before any interceptor runs.
			t.Errorf("without PreAuthHandle: %d RPCs begun, %d request messages read, %d decoded; want %d of each", b, p, d, calls)
		}
	}
}

// TestDoSUnknownKidFlood: 1,000 tokens naming random kids cost the issuer at
// most one on-demand JWKS request and one follow-up per unknown-key refresh
// interval, and none of them waits for the rate limit: with an interval of
// an hour a waiting call would never return (each call is bounded by a
// context of 10 s, whose end the test reports).
func TestDoSUnknownKidFlood(t *testing.T) {
	is := dosIssuer(t)
	ks := dosRemoteKeyset(t, is, nil, grpcjwt.WithUnknownKeyRefreshInterval(time.Hour))
	v := dosVerifier(t, is, ks)
	start := is.JWKSHits() // the first fetch, at construction
	alien := grpcjwttest.NewKey("ES256")
	flood := func(n int) {
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = grpcjwttest.Sign(alien, map[string]any{"kid": fmt.Sprintf("random-%d-%d", i, time.Now().UnixNano())}, is.Claims(dosAudience))
		}
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 50 {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := v.Verify(ctx, tokens[i])
					cancel()
					if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
						t.Errorf("token %d waited until its context ended: a rate-limited lookup blocked", i)
						return // one is enough: do not wait 10 s per token
					} else if !errors.Is(err, grpcjwt.ErrUnknownKey) {
						t.Errorf("token %d: %v, want ErrUnknownKey", i, err)
					}
				}
			})
		}
		wg.Wait()
	}
	flood(1000)
	first := is.JWKSHits() - start
	flood(1000)
	total := is.JWKSHits() - start
	t.Logf("JWKS requests: %d during the first flood of 1,000 unknown kids, %d in all after a second flood of 1,000", first, total)
	if first < 1 || total > 2 {
		t.Errorf("JWKS requests for 2,000 unknown kids in one interval: %d (%d in the first flood); want 1 or 2", total, first)
	}
	// The held key still verifies.
	if _, err := v.Verify(context.Background(), dosMint(is, is.SigningKey())); err != nil {
		t.Errorf("after the flood, a token of the held key: %v", err)
	}
}

// dosCountingTransport records, per response, how many body bytes the
// keyset read.
type dosCountingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	read []*atomic.Int64
}

func (c *dosCountingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	n := new(atomic.Int64)
	c.mu.Lock()
	c.read = append(c.read, n)
	c.mu.Unlock()
	resp.Body = &dosCountingBody{ReadCloser: resp.Body, n: n}
	return resp, nil
}

func (c *dosCountingTransport) maxRead() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := int64(0)
	for _, n := range c.read {
		m = max(m, n.Load())
	}
	return m
}

type dosCountingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *dosCountingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestDoSJWKSBodyCap: a JWK Set response larger than WithMaxBodySize is
// refused after reading at most the cap plus one byte, and the keys already
// held stay: a (fresh, uncached) token of the held key still verifies, while
// a key published only in the oversized document is not learned.
func TestDoSJWKSBodyCap(t *testing.T) {
	is := dosIssuer(t)
	const limit = 4096
	tr := &dosCountingTransport{base: is.HTTPClient().Transport}
	ks := dosRemoteKeyset(t, is, &http.Client{Transport: tr},
		grpcjwt.WithMaxBodySize(limit), grpcjwt.WithUnknownKeyRefreshInterval(0))
	v := dosVerifier(t, is, ks)
	held := is.SigningKey()
	ctx := context.Background()
	if _, err := v.Verify(ctx, dosMint(is, held)); err != nil {
		t.Fatalf("token of the held key: %v", err)
	}

	// A 4 MiB body (grpcjwttest.FailHuge), fetched on an unknown kid.
	is.SetFailure(grpcjwttest.FailHuge)
	hits := is.JWKSHits()
	unknown := grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), nil, is.Claims(dosAudience))
	if _, err := v.Verify(ctx, unknown); !errors.Is(err, grpcjwt.ErrUnknownKey) {
		t.Errorf("unknown kid while the JWKS is 4 MiB: %v, want ErrUnknownKey", err)
	}
	if is.JWKSHits() == hits {
		t.Errorf("the unknown kid fetched nothing: the test proves nothing")
	}
	if _, err := v.Verify(ctx, dosMint(is, held)); err != nil {
		t.Errorf("after a 4 MiB JWKS response, a token of the held key: %v", err)
	}

	// A real JWK Set that grew past the cap: many published keys, and a new
	// signing key among them.
	is.SetFailure(grpcjwttest.FailNone)
	for len(is.JWKS()) <= limit {
		is.AddKey("ES256")
	}
	newKey := is.Rotate()
	t.Logf("JWK Set of %d keys, %d bytes, over a cap of %d", len(is.Keys()), len(is.JWKS()), limit)
	hits = is.JWKSHits()
	if _, err := v.Verify(ctx, dosMint(is, newKey)); !errors.Is(err, grpcjwt.ErrUnknownKey) {
		t.Errorf("a key published only in an oversized JWK Set: %v, want ErrUnknownKey", err)
	}
	if is.JWKSHits() == hits {
		t.Errorf("the new kid fetched nothing: the test proves nothing")
	}
	if _, err := v.Verify(ctx, dosMint(is, held)); err != nil {
		t.Errorf("after an oversized JWK Set, a token of the held key: %v", err)
	}
	if m := tr.maxRead(); m > limit+1 {
		t.Errorf("the keyset read %d bytes of one response, more than the cap of %d plus one", m, limit)
	}

	// The control: a keyset with the default cap takes the same document.
	v2 := dosVerifier(t, is, dosRemoteKeyset(t, is, nil))
	if _, err := v2.Verify(ctx, dosMint(is, newKey)); err != nil {
		t.Errorf("with the default cap, a token of the new key: %v", err)
	}
}

// dosB64 is unpadded base64url.
func dosB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// dosSignRaw signs a header and a payload given as raw JSON with key k.
func dosSignRaw(k *grpcjwttest.Key, header, payload []byte) string {
	input := dosB64(header) + "." + dosB64(payload)
	return input + "." + dosB64(grpcjwttest.SignBytes(k, []byte(input)))
}

// TestDoSDeepJSON: signed tokens whose claims or header are deeply nested or
// very wide never panic. Over the default 16 KiB cap they are refused
// unparsed; under a cap of 1 MiB they are parsed, and each is either
// accepted or refused as malformed (nesting as real tokens have it must be
// accepted), with allocations bounded by a small multiple of the token's
// size.
func TestDoSDeepJSON(t *testing.T) {
	is := dosIssuer(t)
	k := is.SigningKey()
	now := time.Now().Unix()
	base := fmt.Sprintf(`"iss":%q,"sub":"deep","aud":%q,"iat":%d,"exp":%d`, is.URL(), dosAudience, now, now+3600)
	hdr := fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":"at+jwt"}`, k.Algorithm, k.ID)
	claims := func(extra string) []byte { return []byte("{" + base + "," + extra + "}") }
	wideHeader := func(n int) []byte {
		var b strings.Builder
		fmt.Fprintf(&b, `{"alg":%q,"kid":%q,"typ":"at+jwt"`, k.Algorithm, k.ID)
		for i := range n {
			fmt.Fprintf(&b, `,"h%d":%d`, i, i)
		}
		b.WriteString("}")
		return []byte(b.String())
	}
	wideClaims := func(n int) []byte {
		var b strings.Builder
		b.WriteString("{" + base)
		for i := range n {
			fmt.Fprintf(&b, `,"c%d":%d`, i, i)
		}
		b.WriteString("}")
		return []byte(b.String())
	}
	cases := []struct {
		name            string
		header, payload []byte
		mustAccept      bool // nesting as real tokens have it
	}{
		{"claim nested 3 deep (Keycloak realm_access)", []byte(hdr), claims(`"realm_access":{"roles":["a","b"]},"resource_access":{"api":{"roles":["r"]}}`), true},
		{"claim of 16 nested arrays and objects", []byte(hdr), claims(`"deep":` + strings.Repeat(`[{"a":`, 8) + "1" + strings.Repeat("}]", 8)), true},
		{"claim of 100,000 nested arrays", []byte(hdr), claims(`"deep":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)), false},
		{"claim of 100,000 unclosed arrays", []byte(hdr), claims(`"deep":` + strings.Repeat("[", 100_000)), false},
		{"claim of 100,000 nested objects", []byte(hdr), claims(`"deep":` + strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000)), false},
		{"claim of 5,000 nested arrays", []byte(hdr), claims(`"deep":` + strings.Repeat("[", 5_000) + strings.Repeat("]", 5_000)), false},
		{"aud of 100,000 nested arrays", []byte(hdr), []byte(`{"iss":"` + is.URL() + `","aud":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + fmt.Sprintf(`,"exp":%d}`, now+3600)), false},
		{"header of 10,000 members", wideHeader(10_000), claims(`"x":1`), false},
		{"header nested 100,000 deep", []byte(fmt.Sprintf(`{"alg":%q,"kid":%q,"x":%s%s}`, k.Algorithm, k.ID, strings.Repeat("[", 100_000), strings.Repeat("]", 100_000))), claims(`"x":1`), false},
		{"claims of 10,000 members", []byte(hdr), wideClaims(10_000), false},
	}
	// dosAmplification bounds the bytes Verify allocates for a token as a
	// multiple of its size: parsing must stay linear, whatever the nesting.
	const dosAmplification = 32
	small := dosStaticVerifier(t, is)
	// No token cache: every Verify parses, so that its allocations count.
	big := dosStaticVerifier(t, is, grpcjwt.WithMaxTokenSize(1<<20), grpcjwt.WithTokenCache(0, 0, 0))
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := dosSignRaw(k, tc.header, tc.payload)
			if len(tok) > 1<<20 {
				t.Fatalf("token of %d bytes does not fit the 1 MiB cap", len(tok))
			}
			verify := func(v *grpcjwt.Verifier) (c *grpcjwt.Claims, err error) {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("Verify panicked: %v", r)
						err = errors.New("panic")
					}
				}()
				return v.Verify(ctx, tok)
			}
			_, err := verify(small)
			if len(tok) > 16<<10 {
				if !errors.Is(err, grpcjwt.ErrMalformed) {
					t.Errorf("%d bytes over the default cap: %v, want ErrMalformed", len(tok), err)
				}
			} else if err != nil && !errors.Is(err, grpcjwt.ErrMalformed) {
				t.Errorf("default cap: %v; want success or ErrMalformed", err)
			}
			c, err := verify(big)
			switch {
			case tc.mustAccept && err != nil:
				t.Errorf("%v; want accepted", err)
			case err == nil:
				if c.Subject != "deep" && !strings.HasPrefix(tc.name, "aud") {
					t.Errorf("accepted with subject %q", c.Subject)
				}
			case !errors.Is(err, grpcjwt.ErrMalformed):
				t.Errorf("1 MiB cap: %v; want success or ErrMalformed", err)
			}
			bytes := dosBytesPerOp(3, func() { big.Verify(ctx, tok) })
			t.Logf("%d-byte token: err=%v; %d bytes allocated per Verify (%.1fx the token)", len(tok), err, bytes, float64(bytes)/float64(len(tok)))
			if bytes > dosAmplification*uint64(len(tok)) {
				t.Errorf("Verify of a %d-byte token allocated %d bytes, more than %dx its size", len(tok), bytes, dosAmplification)
			}
		})
	}
}

// dosBenchVerifier is a verifier for the benchmarks.
func dosBenchVerifier(b *testing.B) *grpcjwt.Verifier {
	is := dosIssuer(b)
	return dosStaticVerifier(b, is)
}

// BenchmarkRejectOversized: rejecting an oversized token costs the same
// whatever its size (compare the sub-benchmarks' ns/op, B/op, allocs/op).
func BenchmarkRejectOversized(b *testing.B) {
	v := dosBenchVerifier(b)
	ctx := context.Background()
	for _, size := range []int{17 << 10, 1 << 20, 10 << 20} {
		tok := strings.Repeat("A", size)
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// BenchmarkRejectDots: a token of dots costs the same over the cap whatever
// their number; under the cap the scan for the segments is bounded by it.
func BenchmarkRejectDots(b *testing.B) {
	v := dosBenchVerifier(b)
	ctx := context.Background()
	for _, n := range []int{16 << 10, 100_000, 1_000_000} {
		tok := strings.Repeat(".", n)
		b.Run(fmt.Sprintf("dots=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// dosMinAllocs is the least of three testing.AllocsPerRun(100, f): under
// the race detector a count now and then includes allocations of the
// runtime's own (one in twenty counts of a rejection was 6 where the rest
// were 4 or 5), which only ever add.
func dosMinAllocs(f func()) float64 {
	least := testing.AllocsPerRun(100, f)
	for range 2 {
		least = min(least, testing.AllocsPerRun(100, f))
	}
	return least
}
