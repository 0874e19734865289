// Package bench compares grpcjwt's token verification with other Go JWT
// libraries, each set up as it is in production and each made to perform the
// same checks (see TestEachImplementationRejects).
package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	golangjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

const (
	issuer   = "https://auth.example.test/realms/production"
	audience = "https://api.example.test"
	// leeway is the clock skew every implementation that lets you choose
	// one gets (grpcjwt's default). go-oidc has fixed ones: none on exp,
	// 5 minutes on nbf.
	leeway = 30 * time.Second
)

// algs are the benchmarked algorithms; every library supports all of them.
var algs = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}

// allowedAlgs is the allow-list every implementation is configured with.
// RS512 is deliberately left out (see the "alg-not-allowed" case).
var allowedAlgs = algs

// ---------------------------------------------------------------------------
// Fixtures: keys, JWKS, tokens. Built with the standard library only, so that
// no compared library produces the input it is measured on.

type accessClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      []string `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	AuthTime int64    `json:"auth_time"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Azp      string   `json:"azp"`
	Acr      string   `json:"acr"`
	Scope    string   `json:"scope"`
	Tenant   string   `json:"tenant"`
	Roles    []string `json:"roles"`
}

func goodClaims(now time.Time) accessClaims {
	return accessClaims{
		Iss:      issuer,
		Sub:      "b6f1c2de-4a7e-4f0b-9c1d-2e8a5f3b7c90",
		Aud:      []string{audience, "https://billing.example.test"},
		Exp:      now.Add(time.Hour).Unix(),
		Iat:      now.Add(-time.Minute).Unix(),
		Nbf:      now.Add(-time.Minute).Unix(),
		AuthTime: now.Add(-10 * time.Minute).Unix(),
		Jti:      "0f5c8a7e-3d21-4b9a-8e6f-71c2d4a9b035",
		ClientID: "orders-web-frontend",
		Azp:      "orders-web-frontend",
		Acr:      "1",
		Scope:    "openid profile email orders:read orders:write invoices:read customers:read offline_access",
		Tenant:   "acme-corp-eu-west-1",
		Roles:    []string{"orders-admin", "billing-viewer"},
	}
}

type fixture struct {
	alg     string
	kid     string
	pub     crypto.PublicKey
	priv    crypto.Signer
	decoy   crypto.Signer // another key of the same kind, in the JWKS under its own kid
	jwks    []byte
	url     string
	fetches atomic.Int64 // JWKS requests served

	tokens map[string]string // by case name; "good" verifies

	// The good token split, for the floor.
	signingInput []byte
	sig          []byte
}

// Bad cases: each token is the good one with exactly one thing changed and is
// properly signed (except "tampered"), so when the good token verifies, a
// rejection of one of these can only come from the changed thing.
var badCases = []string{
	"tampered",          // payload changed after signing
	"wrong-key-for-kid", // signed by another key of the JWKS, header names the good key's kid
	"wrong-issuer",
	"wrong-audience",
	"expired", // exp 10 minutes ago
	"not-yet-valid",
	"alg-not-allowed", // RS512 with the right key and kid (RSA fixtures only)
}

// claimsOnly are the cases the floor (signature only) cannot reject.
var claimsOnly = map[string]bool{
	"wrong-issuer": true, "wrong-audience": true, "expired": true, "not-yet-valid": true, "alg-not-allowed": true,
}

type keyPair struct{ priv, decoy, third crypto.Signer }

var keyCache sync.Map // alg -> keyPair; fresh per process, reused across -count

func keysFor(alg string) keyPair {
	if kp, ok := keyCache.Load(alg); ok {
		return kp.(keyPair)
	}
	gen := func() crypto.Signer { return grpcjwttest.NewKey(alg).Signer }
	kp := keyPair{gen(), gen(), gen()}
	actual, _ := keyCache.LoadOrStore(alg, kp)
	return actual.(keyPair)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randKid() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func jwkJSON(alg, kid string, pub crypto.PublicKey) map[string]string {
	m := map[string]string{"use": "sig", "alg": alg, "kid": kid}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			panic(err)
		}
		pt := e.Bytes()[1:] // uncompressed: 0x04 || X || Y
		m["kty"], m["crv"] = "EC", k.Curve.Params().Name
		m["x"], m["y"] = b64(pt[:len(pt)/2]), b64(pt[len(pt)/2:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(k)
	}
	return m
}

// signJWS signs input as JWS does for alg, with grpcjwttest's signer.
func signJWS(alg string, key crypto.Signer, input []byte) []byte {
	return grpcjwttest.SignBytes(&grpcjwttest.Key{Algorithm: alg, Signer: key}, input)
}

func mint(alg, kid string, key crypto.Signer, c accessClaims) string {
	hdr, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "at+jwt"})
	pay, _ := json.Marshal(c)
	input := b64(hdr) + "." + b64(pay)
	return input + "." + b64(signJWS(alg, key, []byte(input)))
}

// newFixture builds keys, the JWKS (two decoy keys of the same kind first,
// the signing key last, as during a rotation), an httptest server for it, and
// the tokens.
func newFixture(tb testing.TB, alg string) *fixture {
	tb.Helper()
	kp := keysFor(alg)
	f := &fixture{alg: alg, kid: randKid(), priv: kp.priv, pub: kp.priv.Public(), decoy: kp.decoy}
	decoyKid := randKid()
	jwks, err := json.Marshal(map[string]any{"keys": []any{
		jwkJSON(alg, decoyKid, kp.decoy.Public()),
		jwkJSON(alg, randKid(), kp.third.Public()),
		jwkJSON(alg, f.kid, f.pub),
	}})
	if err != nil {
		tb.Fatal(err)
	}
	f.jwks = jwks
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(f.jwks)
	}))
	tb.Cleanup(srv.Close)
	f.url = srv.URL + "/.well-known/jwks.json"

	now := time.Now()
	good := goodClaims(now)
	f.tokens = map[string]string{"good": mint(alg, f.kid, f.priv, good)}

	// tampered: another subject, the original signature.
	parts := strings.Split(f.tokens["good"], ".")
	evil := good
	evil.Sub = "00000000-0000-0000-0000-000000000000"
	pay, _ := json.Marshal(evil)
	f.tokens["tampered"] = parts[0] + "." + b64(pay) + "." + parts[2]

	f.tokens["wrong-key-for-kid"] = mint(alg, f.kid, kp.decoy, good)
	c := good
	c.Iss = "https://evil.example.test/realms/production"
	f.tokens["wrong-issuer"] = mint(alg, f.kid, f.priv, c)
	c = good
	c.Aud = []string{"https://other-api.example.test", "https://billing.example.test"}
	f.tokens["wrong-audience"] = mint(alg, f.kid, f.priv, c)
	c = good
	c.Exp, c.Iat, c.Nbf = now.Add(-10*time.Minute).Unix(), now.Add(-70*time.Minute).Unix(), now.Add(-70*time.Minute).Unix()
	f.tokens["expired"] = mint(alg, f.kid, f.priv, c)
	c = good
	c.Nbf = now.Add(time.Hour).Unix()
	c.Exp = now.Add(2 * time.Hour).Unix()
	f.tokens["not-yet-valid"] = mint(alg, f.kid, f.priv, c)
	if _, ok := f.priv.(*rsa.PrivateKey); ok {
		f.tokens["alg-not-allowed"] = mint("RS512", f.kid, f.priv, good)
	}

	i := strings.LastIndexByte(f.tokens["good"], '.')
	f.signingInput = []byte(f.tokens["good"][:i])
	f.sig, _ = base64.RawURLEncoding.DecodeString(f.tokens["good"][i+1:])
	return f
}

// ---------------------------------------------------------------------------
// The floor: the standard library's signature check alone.

func floorVerify(alg string, pub crypto.PublicKey, input, sig []byte) bool {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, input, sig)
	case *rsa.PublicKey:
		d := sha256.Sum256(input)
		if alg == "PS256" {
			return rsa.VerifyPSS(k, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
	case *ecdsa.PublicKey:
		var digest []byte
		if alg == "ES384" {
			d := sha512.Sum384(input)
			digest = d[:]
		} else {
			d := sha256.Sum256(input)
			digest = d[:]
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// ---------------------------------------------------------------------------
// The implementations. Each setup is the library's ordinary production
// set-up; the returned function verifies one token and makes its scope and
// client_id available to the caller, as an access-token check must.

type verifyFunc func(raw string) error

type impl struct {
	name  string
	setup func(tb testing.TB, f *fixture) verifyFunc
}

var impls = []impl{
	{"grpcjwt-uncached", func(tb testing.TB, f *fixture) verifyFunc { return setupGRPCJWT(tb, f, false) }},
	{"grpcjwt-cached", func(tb testing.TB, f *fixture) verifyFunc { return setupGRPCJWT(tb, f, true) }},
	{"gojose", setupGoJose},
	{"golangjwt-keyfunc", setupGolangJWT},
	{"jwx", setupJWX},
	{"gooidc", setupGoOIDC},
}

func bgContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx
}

// grpcjwt: remote keyset (fetched at start-up), verifier with the
// allow-list; uncached turns the verified-token cache off.
func setupGRPCJWT(tb testing.TB, f *fixture, cached bool) verifyFunc {
	ctx := bgContext(tb)
	ks, err := grpcjwt.NewRemoteKeyset(ctx, f.url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ks.Close() })
	opts := []grpcjwt.VerifierOption{
		grpcjwt.WithIssuer(issuer),
		grpcjwt.WithAudience(audience),
		grpcjwt.WithAlgorithms(allowedAlgs...),
		grpcjwt.WithLeeway(leeway),
	}
	if !cached {
		opts = append(opts, grpcjwt.WithTokenCache(0, 0, 0))
	}
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return func(raw string) error {
		c, err := v.Verify(ctx, raw)
		if err != nil {
			return err
		}
		if c.ClientID == "" || len(c.Scopes) == 0 {
			return errors.New("no client_id or scope")
		}
		return nil
	}
}

// go-jose plain: it has no remote key set, so the JWKS is fetched once (a
// real service would refresh it on a timer) into a jose.JSONWebKeySet.
func setupGoJose(tb testing.TB, f *fixture) verifyFunc {
	resp, err := http.Get(f.url)
	if err != nil {
		tb.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		tb.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		tb.Fatal(err)
	}
	allowed := make([]jose.SignatureAlgorithm, len(allowedAlgs))
	for i, a := range allowedAlgs {
		allowed[i] = jose.SignatureAlgorithm(a)
	}
	type claims struct {
		josejwt.Claims
		Scope    string `json:"scope"`
		ClientID string `json:"client_id"`
	}
	return func(raw string) error {
		tok, err := josejwt.ParseSigned(raw, allowed)
		if err != nil {
			return err
		}
		hdr := tok.Headers[0]
		keys := set.Key(hdr.KeyID)
		if len(keys) == 0 {
			return errors.New("unknown kid")
		}
		k := keys[0]
		if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			return errors.New("alg does not match the key")
		}
		var c claims
		if err := tok.Claims(k.Key, &c); err != nil {
			return err
		}
		if c.Expiry == nil {
			return errors.New("no exp")
		}
		return c.ValidateWithLeeway(josejwt.Expected{
			Issuer:      issuer,
			AnyAudience: josejwt.Audience{audience},
			Time:        time.Now(),
		}, leeway)
	}
}

// golang-jwt/jwt v5 with MicahParks/keyfunc v3 (jwkset HTTP storage, refresh
// goroutine), one reusable parser.
func setupGolangJWT(tb testing.TB, f *fixture) verifyFunc {
	kf, err := keyfunc.NewDefaultCtx(bgContext(tb), []string{f.url})
	if err != nil {
		tb.Fatal(err)
	}
	p := golangjwt.NewParser(
		golangjwt.WithValidMethods(allowedAlgs),
		golangjwt.WithIssuer(issuer),
		golangjwt.WithAudience(audience),
		golangjwt.WithExpirationRequired(),
		golangjwt.WithIssuedAt(),
		golangjwt.WithLeeway(leeway),
	)
	type claims struct {
		golangjwt.RegisteredClaims
		Scope    string `json:"scope"`
		ClientID string `json:"client_id"`
	}
	return func(raw string) error {
		_, err := p.ParseWithClaims(raw, &claims{}, kf.Keyfunc)
		return err
	}
}

// lestrrat-go/jwx v3: jwk.Cache (httprc) registered with the JWKS URL, a
// CachedSet as the key set; jwt.Parse verifies (kid and key alg must match)
// and validates (iat, exp, nbf by default). Private claims land in the token.
func setupJWX(tb testing.TB, f *fixture) verifyFunc {
	ctx := bgContext(tb)
	cache, err := jwk.NewCache(ctx, httprc.NewClient())
	if err != nil {
		tb.Fatal(err)
	}
	if err := cache.Register(ctx, f.url); err != nil {
		tb.Fatal(err)
	}
	set, err := cache.CachedSet(f.url)
	if err != nil {
		tb.Fatal(err)
	}
	opts := []jwxjwt.ParseOption{
		jwxjwt.WithKeySet(set),
		jwxjwt.WithIssuer(issuer),
		jwxjwt.WithAudience(audience),
		jwxjwt.WithRequiredClaim("exp"),
		jwxjwt.WithAcceptableSkew(leeway),
	}
	return func(raw string) error {
		_, err := jwxjwt.ParseString(raw, opts...)
		return err
	}
}

// coreos/go-oidc v3: RemoteKeySet and an IDTokenVerifier whose ClientID is
// the API's audience. go-oidc is written for ID tokens, and checks
// differently from the others:
//   - "aud" must contain ClientID (fine for an API audience), but there is
//     no leeway on "exp" and a fixed 5-minute leeway on "nbf"; "iat" is not
//     checked;
//   - "typ" is never looked at (none of the others checks it either; grpcjwt
//     accepts at+jwt, JWT or none by default);
//   - a token whose signature fails with every cached key of its kid makes
//     RemoteKeySet refetch the JWKS (not rate-limited), so each forged token
//     costs the issuer a request;
//   - the claims it parses are ID-token ones (no scope or client_id), so
//     reading them is a second json.Unmarshal through IDToken.Claims.
func setupGoOIDC(tb testing.TB, f *fixture) verifyFunc {
	ctx := bgContext(tb)
	ks := oidc.NewRemoteKeySet(ctx, f.url)
	v := oidc.NewVerifier(issuer, ks, &oidc.Config{ClientID: audience, SupportedSigningAlgs: allowedAlgs})
	type claims struct {
		Scope    string `json:"scope"`
		ClientID string `json:"client_id"`
	}
	return func(raw string) error {
		tok, err := v.Verify(ctx, raw)
		if err != nil {
			return err
		}
		var c claims
		return tok.Claims(&c)
	}
}

// ---------------------------------------------------------------------------

// TestEachImplementationRejects runs every benchmarked set-up (the same
// functions) against the good token and each bad one: a verifier that skips
// a check would be faster for a worthless reason.
func TestEachImplementationRejects(t *testing.T) {
	for _, alg := range algs {
		f := newFixture(t, alg)
		t.Run("alg="+alg+"/impl=floor", func(t *testing.T) {
			check := func(raw string) bool {
				i := strings.LastIndexByte(raw, '.')
				sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
				return err == nil && floorVerify(alg, f.pub, []byte(raw[:i]), sig)
			}
			if !check(f.tokens["good"]) {
				t.Fatal("floor rejects the good token")
			}
			for _, name := range badCases {
				raw, ok := f.tokens[name]
				if !ok || claimsOnly[name] {
					continue // the floor checks the signature only
				}
				if check(raw) {
					t.Errorf("floor accepts %s", name)
				}
			}
		})
		for _, im := range impls {
			t.Run("alg="+alg+"/impl="+im.name, func(t *testing.T) {
				verify := im.setup(t, f)
				if err := verify(f.tokens["good"]); err != nil {
					t.Fatalf("rejects the good token: %v", err)
				}
				for _, name := range badCases {
					raw, ok := f.tokens[name]
					if !ok {
						continue
					}
					if err := verify(raw); err == nil {
						t.Errorf("accepts the %s token", name)
					} else {
						t.Logf("%s: %v", name, err)
					}
				}
				// The good token still verifies (no state broken by the bad ones).
				if err := verify(f.tokens["good"]); err != nil {
					t.Fatalf("rejects the good token after the bad ones: %v", err)
				}
			})
		}
	}
}

// TestTokenSizes logs the token sizes the benchmarks use.
func TestTokenSizes(t *testing.T) {
	for _, alg := range algs {
		f := newFixture(t, alg)
		t.Logf("%s: token %d bytes, JWKS %d bytes", alg, len(f.tokens["good"]), len(f.jwks))
	}
}

var sinkBool bool

// cpuClock measures the CPU time (user + system, every thread of the
// process, so garbage collection included) spent by the timed loop. On a
// shared machine wall-clock ns/op also counts the time other processes held
// the CPU; cpu-ns/op does not (it still feels their effect on caches).
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) report(b *testing.B) {
	if b.N > 0 && c.start > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkVerify/alg=A/impl=I: one good token per algorithm, verified over
// and over. Set-up, the JWKS fetch and one warm-up verification happen before
// the timer starts (b.Loop starts it); a JWKS fetch during the timed loop
// fails the benchmark. Besides ns/op (wall clock) each reports cpu-ns/op, the
// process's CPU time per verification.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range algs {
		b.Run("alg="+alg, func(b *testing.B) {
			f := newFixture(b, alg)
			b.Run("impl=floor", func(b *testing.B) {
				if !floorVerify(alg, f.pub, f.signingInput, f.sig) {
					b.Fatal("floor rejects the good token")
				}
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					sinkBool = floorVerify(alg, f.pub, f.signingInput, f.sig)
				}
				cpu.report(b)
			})
			for _, im := range impls {
				b.Run("impl="+im.name, func(b *testing.B) {
					verify := im.setup(b, f)
					raw := f.tokens["good"]
					if err := verify(raw); err != nil {
						b.Fatal(err)
					}
					before := f.fetches.Load()
					b.ReportAllocs()
					cpu := startCPU()
					for b.Loop() {
						if err := verify(raw); err != nil {
							b.Fatal(err)
						}
					}
					cpu.report(b)
					if n := f.fetches.Load() - before; n != 0 {
						b.Fatalf("%d JWKS fetches during the timed loop", n)
					}
				})
			}
		})
	}
}
