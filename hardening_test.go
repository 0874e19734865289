package grpcjwt_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// The tests in this file each kill a break of a check that the rest of the
// suite let survive (issue "Hardening", points 12 to 17); each says which.
// They reuse the fixtures of dos_test.go, interceptor_test.go and
// tap_test.go; their own helpers carry an "hd" prefix.

// hdJWKS is a JWK Set endpoint whose document the test replaces, counting
// its requests: grpcjwttest.Issuer cannot publish new key material under a
// kid it already published.
type hdJWKS struct {
	*httptest.Server
	doc  atomic.Pointer[[]byte]
	hits atomic.Int64
}

// hdNewJWKS serves a JWK Set of keys until the test ends.
func hdNewJWKS(t *testing.T, keys ...*grpcjwttest.Key) *hdJWKS {
	t.Helper()
	s := &hdJWKS{}
	s.publish(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.doc.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

// publish makes the endpoint serve the public keys of keys from its next
// request on.
func (s *hdJWKS) publish(keys ...*grpcjwttest.Key) {
	jwks := []any{}
	for _, k := range keys {
		jwks = append(jwks, k.Public())
	}
	b, err := json.Marshal(map[string]any{"keys": jwks})
	if err != nil {
		panic(err)
	}
	s.doc.Store(&b)
}

// hdClaims returns the claims of a valid access token from iss for
// dosAudience, issued now and expiring in an hour.
func hdClaims(iss string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": iss, "sub": "user-123", "aud": dosAudience,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// hdVerifyErr fails t unless v refuses tok with an error matching want.
func hdVerifyErr(t *testing.T, v *grpcjwt.Verifier, tok string, want error, what string) {
	t.Helper()
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, want) {
		t.Errorf("%s: Verify error %v, want %v", what, err, want)
	}
}

// TestHardeningKeyRepublishedUnderSameKid (point 12): when the issuer
// publishes new key material under a kid it already used, for the same
// algorithm, the refreshed keyset holds the new key only: its tokens
// verify, and the old key's tokens fail with ErrSignature, including one
// that the verified-token cache holds.
//
// Kills: sameKey ignoring the thumbprint, or install carrying a key's
// identity over by kid and algorithm alone (the keyset keeps the old key);
// install not marking the replaced key removed (the cache serves the old
// key's token).
func TestHardeningKeyRepublishedUnderSameKid(t *testing.T) {
	const iss = "https://republish.example"
	oldKey := grpcjwttest.NewKey("ES256")
	newKey := grpcjwttest.NewKey("ES256")
	newKey.ID = oldKey.ID // the same kid and algorithm, new key material
	srv := hdNewJWKS(t, oldKey)
	// One unknown-kid refresh per hour: the test triggers exactly one.
	ks, err := grpcjwt.NewRemoteKeyset(t.Context(), srv.URL, grpcjwt.WithHTTPClient(srv.Client()),
		grpcjwt.WithKeysetLogger(slog.New(slog.DiscardHandler)), grpcjwt.WithUnknownKeyRefreshInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	newVerifier := func(opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
		v, err := grpcjwt.NewVerifier(ks, append([]grpcjwt.VerifierOption{grpcjwt.WithIssuer(iss), grpcjwt.WithAudience(dosAudience)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cached := newVerifier() // the default token cache
	uncached := newVerifier(grpcjwt.WithTokenCache(0, 0, 0))
	oldTok := grpcjwttest.Sign(oldKey, nil, hdClaims(iss))
	newTok := grpcjwttest.Sign(newKey, nil, hdClaims(iss))

	// Before: the old key's token verifies, and a repeat is a cache hit
	// (the same claims, not a new verification); the new key's fails.
	c1, err := cached.Verify(t.Context(), oldTok)
	if err != nil {
		t.Fatalf("old key's token before the change: %v", err)
	}
	if c2, err := cached.Verify(t.Context(), oldTok); err != nil || c2 != c1 {
		t.Fatalf("old key's token again: %v; served from the cache: %v, want true", err, c2 == c1)
	}
	hdVerifyErr(t, uncached, newTok, grpcjwt.ErrSignature, "new key's token before the change")

	// The issuer republishes the kid with new material; a token naming an
	// unknown kid makes the keyset refresh, once, now.
	srv.publish(newKey)
	probe := grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), nil, hdClaims(iss))
	hdVerifyErr(t, uncached, probe, grpcjwt.ErrUnknownKey, "token of an unknown kid")
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS requests: %d, want 2 (construction and the unknown-kid refresh)", got)
	}

	// After: the cache must not answer for the old key's token, and the
	// keyset must not verify it either.
	hdVerifyErr(t, cached, oldTok, grpcjwt.ErrSignature, "cached token of the replaced key")
	hdVerifyErr(t, uncached, oldTok, grpcjwt.ErrSignature, "token of the replaced key")
	for name, v := range map[string]*grpcjwt.Verifier{"cached": cached, "uncached": uncached} {
		if _, err := v.Verify(t.Context(), newTok); err != nil {
			t.Errorf("%s: new key's token after the refresh: %v, want success", name, err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("JWKS requests: %d, want still 2", got)
	}
}

// TestHardeningECDSASignatureLength (point 13): an ECDSA signature must be
// exactly twice the curve's size (RFC 7518 §3.4). A valid signature with a
// zero byte inserted before s holds the same r and s once leading zeros are
// dropped, so only the length check refuses it: with ErrSignature, the
// error verifySignature's refusal gives, not ErrMalformed.
//
// Kills: dropping the len(sig) != 2*size check in verifySignature.
func TestHardeningECDSASignatureLength(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512"} {
		t.Run(alg, func(t *testing.T) {
			is := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm(alg))
			t.Cleanup(is.Close)
			v := dosStaticVerifier(t, is, grpcjwt.WithTokenCache(0, 0, 0))
			tok := is.Mint(is.Claims(dosAudience))
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatalf("the valid token: %v", err)
			}
			dot := strings.LastIndexByte(tok, '.')
			sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
			if err != nil {
				t.Fatal(err)
			}
			size := len(sig) / 2
			long := append(append(append([]byte(nil), sig[:size]...), 0), sig[size:]...)
			forged := tok[:dot+1] + dosB64(long)
			_, err = v.Verify(t.Context(), forged)
			if !errors.Is(err, grpcjwt.ErrSignature) || errors.Is(err, grpcjwt.ErrMalformed) {
				t.Errorf("signature of %d bytes (a zero byte before s, want %d): got %v, want ErrSignature", len(long), len(sig), err)
			}
		})
	}
}

// TestHardeningMaxLifetimeBoundary (point 14): WithMaxLifetime(d) accepts
// a token whose exp lies exactly d after its iat, and refuses one a second
// longer with ErrLifetime.
//
// Kills: "> maxLifetime" turned into ">=", or into "> maxLifetime+time.Second"
// (or any bound looser by a second or more).
func TestHardeningMaxLifetimeBoundary(t *testing.T) {
	const d = 10 * time.Minute
	is := dosIssuer(t)
	v := dosStaticVerifier(t, is, grpcjwt.WithMaxLifetime(d), grpcjwt.WithTokenCache(0, 0, 0))
	iat := time.Now().Unix()
	mint := func(lifetime time.Duration) string {
		c := is.Claims(dosAudience)
		c["iat"], c["exp"] = iat, iat+int64(lifetime/time.Second)
		return is.Mint(c)
	}
	for _, lifetime := range []time.Duration{d - time.Second, d} {
		if _, err := v.Verify(t.Context(), mint(lifetime)); err != nil {
			t.Errorf("lifetime %v under a bound of %v: %v, want success", lifetime, d, err)
		}
	}
	hdVerifyErr(t, v, mint(d+time.Second), grpcjwt.ErrLifetime, fmt.Sprintf("lifetime %v under a bound of %v", d+time.Second, d))
}

// Bounds of TestHardeningStreamEndsAtOwnLeeway on when a stream ends,
// relative to its token's exp plus the leeway of the issuer that verified
// it. The deadline is real time (context.WithDeadline in the interceptor),
// so the test measures real time. A stream can never end before the
// deadline: the server's context ends at or after it and the client learns
// of it later still; hdEarly only absorbs the rounding of exp to the
// millisecond and a wall-clock step. hdLate covers delivering the status to
// the client under load or -race. The leeways under test differ by
// hdLeeway, a second, more than either bound, so ending at another
// issuer's leeway, or at none, falls outside them.
const (
	hdLeeway = time.Second
	hdEarly  = 20 * time.Millisecond
	hdLate   = 500 * time.Millisecond
)

// TestHardeningStreamEndsAtOwnLeeway (point 15): a stream ends at its
// token's exp plus the leeway of the verifier that verified it, through a
// single verifier and through NewMultiIssuerVerifier, where each issuer's
// stream ends at its own issuer's leeway (0 and hdLeeway here). The
// streams run at once over real gRPC servers (bufconn) and share one wait
// of about 1.7 s.
//
// Kills: leewayFor returning the largest leeway of any issuer (the
// zero-leeway issuer's stream ends a second late) or zero (the others end a
// second early), or the multi-issuer verifier's own leeway; the stream
// deadline without the leeway.
func TestHardeningStreamEndsAtOwnLeeway(t *testing.T) {
	isSingle, isA, isB := itIssuer(t), itIssuer(t), itIssuer(t)
	single := itVerifier(t, isSingle, grpcjwt.WithLeeway(hdLeeway))
	multi, err := grpcjwt.NewMultiIssuerVerifier(
		itVerifier(t, isA, grpcjwt.WithLeeway(0)),
		itVerifier(t, isB, grpcjwt.WithLeeway(hdLeeway)))
	if err != nil {
		t.Fatal(err)
	}
	singleClient, _, _ := itProtect(t, single)
	multiClient, _, _ := itProtect(t, multi)

	// A fractional NumericDate, so that the tokens expire 700 ms from now
	// rather than at a whole second.
	expMilli := time.Now().Add(700 * time.Millisecond).UnixMilli()
	exp := time.UnixMilli(expMilli)
	mint := func(is *grpcjwttest.Issuer) string {
		return itMint(is, func(m map[string]any) { m["exp"] = float64(expMilli) / 1000 }, itAudience)
	}
	cases := []struct {
		name   string
		c      testpb.TestServiceClient
		tok    string
		leeway time.Duration
	}{
		{"single verifier, leeway 1s", singleClient, mint(isSingle), hdLeeway},
		{"several issuers, issuer of leeway 0", multiClient, mint(isA), 0},
		{"several issuers, issuer of leeway 1s", multiClient, mint(isB), hdLeeway},
	}
	// Run at once, in goroutines rather than with t.Parallel, whose limit
	// could start one after the tokens expired (as TestStreamExpiry does).
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, tc := range cases {
		wg.Go(func() {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(itBearer(t.Context(), tc.tok), 5*time.Second)
				defer cancel()
				// The handler sends every 20 ms until its context ends.
				st, err := tc.c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for {
					if _, err = st.Recv(); err != nil {
						break
					}
					n++
				}
				end := time.Now()
				deadline := exp.Add(tc.leeway)
				if code, msg := itStatus(err); code != codes.Unauthenticated || msg != "token expired during the stream" {
					t.Fatalf("stream ended with %v %q after %d messages, want Unauthenticated %q", code, msg, n, "token expired during the stream")
				}
				if n == 0 {
					t.Error("the stream ended before its first message")
				}
				t.Logf("ended %v after exp + leeway (%v), %d messages", end.Sub(deadline), tc.leeway, n)
				if early := deadline.Sub(end); early > hdEarly {
					t.Errorf("stream ended %v before exp + leeway (%v)", early, tc.leeway)
				}
				if late := end.Sub(deadline); late > hdLate {
					t.Errorf("stream ended %v after exp + leeway (%v), more than %v", late, tc.leeway, hdLate)
				}
			})
		})
	}
}

// TestHardeningMultiIssuerSizeCapFirst (point 16a): through
// NewMultiIssuerVerifier, an oversized token is refused at the size cap
// before anything of it is read to find its issuer: no more allocations than
// with one verifier and within the DoS tests' bounds (dosRejectAllocs,
// dosRejectBytes).
//
// Kills: removing the size check of routedVerifyToken (route then decodes
// and copies the payload; the issuer's verifier refuses the token only
// afterwards).
func TestHardeningMultiIssuerSizeCapFirst(t *testing.T) {
	isA, isB := dosIssuer(t), dosIssuer(t)
	single := dosStaticVerifier(t, isA)
	multi, err := grpcjwt.NewMultiIssuerVerifier(dosStaticVerifier(t, isA), dosStaticVerifier(t, isB))
	if err != nil {
		t.Fatal(err)
	}
	toks := dosTokens()
	// Well formed and naming a trusted issuer: routing would decode it.
	c := isA.Claims(dosAudience)
	c["pad"] = strings.Repeat("A", 64<<10)
	toks["64 KiB token of a trusted issuer"] = isA.Mint(c)
	bound := dosRejectAllocs + dosRaceAllocs()
	for name, tok := range toks {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			if c, err := multi.Verify(ctx, tok); !errors.Is(err, grpcjwt.ErrMalformed) {
				t.Fatalf("Verify(%d bytes) = %v, %v; want ErrMalformed", len(tok), c, err)
			}
			one := dosMinAllocs(func() { single.Verify(ctx, tok) })
			several := dosMinAllocs(func() { multi.Verify(ctx, tok) })
			bytes := dosBytesPerOp(100, func() { multi.Verify(ctx, tok) })
			// The race detector's own allocation is not in every count:
			// its allowance, as in the DoS tests.
			if several > one+dosRaceAllocs() || several > bound {
				t.Errorf("rejecting a %d-byte token took %v allocations with several issuers, %v with one; want no more (race allowance %v) and at most %v (dosRejectAllocs)",
					len(tok), several, one, dosRaceAllocs(), bound)
			}
			if bytes > dosRejectBytes {
				t.Errorf("rejecting a %d-byte token with several issuers allocated %d bytes, want at most %d: was it decoded?",
					len(tok), bytes, dosRejectBytes)
			}
		})
	}
}

// TestHardeningMultiIssuerUnknownIssuer (point 16b): a token that names an
// issuer no verifier trusts, signed by a key neither issuer holds, gets
// ErrIssuer, every time, without a JWK Set request to either issuer. The
// 200 rounds each build a fresh NewMultiIssuerVerifier (a fresh routes
// map, so a fresh iteration order), with the verifiers in either order.
//
// Kills: any fallback that hands an unknown issuer's token to one of the
// verifiers (e.g. the first the routes map yields): that verifier's keyset
// then looks the unknown kid up and fetches its JWK Set.
func TestHardeningMultiIssuerUnknownIssuer(t *testing.T) {
	isA, isB := dosIssuer(t), dosIssuer(t)
	vA := dosVerifier(t, isA, dosRemoteKeyset(t, isA, nil))
	vB := dosVerifier(t, isB, dosRemoteKeyset(t, isB, nil))
	hitsA, hitsB := isA.JWKSHits(), isB.JWKSHits()
	stranger := grpcjwttest.NewKey("ES256")
	unknown := []string{"https://unknown.example", isA.URL() + "/", strings.ToUpper(isB.URL()), ""}
	for i := range 200 {
		vs := []*grpcjwt.Verifier{vA, vB}
		if i%2 == 1 {
			vs[0], vs[1] = vB, vA
		}
		m, err := grpcjwt.NewMultiIssuerVerifier(vs...)
		if err != nil {
			t.Fatal(err)
		}
		iss := unknown[i%len(unknown)]
		tok := grpcjwttest.Sign(stranger, nil, hdClaims(iss))
		if c, err := m.Verify(t.Context(), tok); !errors.Is(err, grpcjwt.ErrIssuer) {
			t.Fatalf("round %d, issuer %q: Verify = %v, %v; want ErrIssuer", i, iss, c, err)
		}
	}
	if a, b := isA.JWKSHits()-hitsA, isB.JWKSHits()-hitsB; a != 0 || b != 0 {
		t.Errorf("JWK Set requests for unknown issuers' tokens: %d to A, %d to B; want none", a, b)
	}
}

// TestHardeningPreAuthEmptySegments (point 17): the tap handle alone
// refuses a bearer token whose first (header) segment is empty with
// Unauthenticated "malformed token", before any handler runs. An empty
// payload or signature segment passes the tap (it checks only the header
// segment, see the report); the interceptor behind it refuses the call.
//
// Kills: dropping !strings.HasPrefix(tok, ".") from compactShape.
func TestHardeningPreAuthEmptySegments(t *testing.T) {
	v, is := tapVerifier(t)
	tapOnly, tapImpl := tapServe(t, v, true, false)
	both, bothImpl := tapServe(t, v, true, true)
	call := func(c testpb.TestServiceClient, tok string) (codes.Code, string) {
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tok)
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		st := status.Convert(err)
		return st.Code(), st.Message()
	}
	// Every segment of a JWT is non-empty: the tap alone refuses an empty one
	// anywhere.
	for _, tok := range []string{".eyJi.c2ln", "..c2ln", ".eyJi.", "..", "eyJh..c2ln", "eyJh.eyJi."} {
		if code, msg := call(tapOnly, tok); code != codes.Unauthenticated || msg != "malformed token" {
			t.Errorf("tap alone, token %q: got %v %q, want Unauthenticated %q", tok, code, msg, "malformed token")
		}
	}
	if n := tapImpl.calls.Load(); n != 0 {
		t.Errorf("the handler behind the tap alone ran %d times, want 0", n)
	}
	real := strings.Split(is.Mint(is.Claims("api")), ".")
	for _, tok := range []string{".eyJi.c2ln", "eyJh..c2ln", "eyJh.eyJi.", "..",
		"." + real[1] + "." + real[2], real[0] + ".." + real[2], real[0] + "." + real[1] + "."} {
		if code, msg := call(both, tok); code != codes.Unauthenticated {
			t.Errorf("tap and interceptor, token %q: got %v %q, want Unauthenticated", tok, code, msg)
		}
	}
	if n := bothImpl.calls.Load(); n != 0 {
		t.Errorf("the handler behind the tap and interceptor ran %d times, want 0", n)
	}
}
