package grpcjwt

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// vtEpoch is "now" for the verifier tests; tokens are minted around it and
// the verifier reads it through WithClock.
var vtEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// vtAud is the audience the test verifiers accept.
const vtAud = "https://api.example.com/orders"

// vtDiscard silences the keysets' logs.
var vtDiscard = slog.New(slog.DiscardHandler)

// vtSentinels are the package's sentinel errors: every rejection must wrap
// exactly one of them.
var vtSentinels = []error{
	ErrMissingToken, ErrInvalidRequest, ErrMalformed, ErrAlgorithm, ErrUnknownKey, ErrKeysUnavailable,
	ErrSignature, ErrExpired, ErrNotYetValid, ErrIssuer, ErrAudience, ErrTokenType,
	ErrMissingClaim, ErrLifetime, ErrInsufficientScope, ErrKeysetClosed, ErrUnsupportedConfirmation,
	ErrClaimRequirement, ErrDenied, ErrCertificateBinding,
}

// vtSentinel returns the one sentinel err wraps (nil for nil), or an error
// naming the problem when it wraps none or several.
func vtSentinel(err error) (error, error) {
	if err == nil {
		return nil, nil
	}
	var found []error
	for _, s := range vtSentinels {
		if errors.Is(err, s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("error %q wraps %d sentinels, want exactly 1", err, len(found))
	}
	return found[0], nil
}

// vtClock is a settable clock.
type vtClock struct{ ns atomic.Int64 }

func newVTClock(t time.Time) *vtClock {
	c := &vtClock{}
	c.Set(t)
	return c
}

func (c *vtClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *vtClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *vtClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func vtB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func vtJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// vtAssemble builds a compact JWS from a header and a payload (each []byte
// used as is, a string used as an already encoded segment, or any other
// value marshalled to JSON) and a signature.
func vtAssemble(header, payload any, sig []byte) string {
	seg := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case []byte:
			return vtB64(v)
		default:
			return vtB64(vtJSON(v))
		}
	}
	return seg(header) + "." + seg(payload) + "." + vtB64(sig)
}

// vtSplit returns a compact JWS's three segments.
func vtSplit(tok string) (h, p, s string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		panic("vtSplit: not three segments")
	}
	return parts[0], parts[1], parts[2]
}

// vtHMAC signs a token with an HMAC algorithm, the key-confusion attack:
// secret is public key material the attacker can read from the JWKS.
func vtHMAC(alg string, header map[string]any, payload []byte, secret []byte) string {
	var h func() hash.Hash
	switch alg {
	case "HS256":
		h = sha256.New
	case "HS384":
		h = sha512.New384
	default:
		h = sha512.New
	}
	hdr := map[string]any{"alg": alg, "typ": "at+jwt"}
	for k, v := range header {
		hdr[k] = v
	}
	input := vtB64(vtJSON(hdr)) + "." + vtB64(payload)
	m := hmac.New(h, secret)
	m.Write([]byte(input))
	return input + "." + vtB64(m.Sum(nil))
}

// vtMod changes a claims set before it is signed.
type vtMod func(map[string]any)

func vtSet(name string, v any) vtMod { return func(m map[string]any) { m[name] = v } }

func vtDel(names ...string) vtMod {
	return func(m map[string]any) {
		for _, n := range names {
			delete(m, n)
		}
	}
}

// vtAlgIssuer is an issuer of one algorithm with a remote keyset on it.
type vtAlgIssuer struct {
	alg string
	is  *testkit.Issuer
	ks  *Keyset
}

// vtFixture is an ES256 issuer that also publishes an RS256 key, a remote
// keyset on its httptest JWKS, a static keyset of the same document, an
// attacker with its own key and an HTTP server counting hits, and a clock.
type vtFixture struct {
	t       *testing.T
	clock   *vtClock
	is      *testkit.Issuer
	remote  *Keyset
	static  *Keyset
	ec      *testkit.Key // ES256, the issuer's signing key
	rsa     *testkit.Key // RS256 (its JWK declares "alg": "RS256")
	atk     *testkit.Key // the attacker's ES256 key, never published
	atkEd   *testkit.Key // the attacker's EdDSA key
	atkSrv  *httptest.Server
	atkHits atomic.Int64
	perAlg  []vtAlgIssuer
	secrets []string // key material that must never appear in an error text
	addr    string   // the issuer's host and port, which no fetch error may name
}

func newVTFixture(t *testing.T) *vtFixture {
	t.Helper()
	f := &vtFixture{t: t, clock: newVTClock(vtEpoch)}
	f.is = testkit.NewIssuer(testkit.WithAlgorithm("ES256"))
	t.Cleanup(f.is.Close)
	f.rsa = f.is.AddKey("RS256")
	f.ec = f.is.SigningKey()
	f.atk = testkit.NewKey("ES256")
	f.atkEd = testkit.NewKey("EdDSA")
	atkJWKS := vtJSON(map[string]any{"keys": []any{f.atk.Public(), f.atkEd.Public()}})
	f.atkSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.atkHits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(atkJWKS)
	}))
	t.Cleanup(f.atkSrv.Close)

	var err error
	f.remote, err = NewRemoteKeyset(t.Context(), f.is.JWKSURL(), WithHTTPClient(f.is.HTTPClient()), WithKeysetLogger(vtDiscard))
	if err != nil {
		t.Fatalf("NewRemoteKeyset: %v", err)
	}
	t.Cleanup(func() { f.remote.Close() })
	f.static, err = NewStaticKeyset(f.is.JWKS(), WithKeysetLogger(vtDiscard))
	if err != nil {
		t.Fatalf("NewStaticKeyset: %v", err)
	}
	for _, k := range []*testkit.Key{f.ec, f.rsa} {
		var m map[string]any
		json.Unmarshal(vtJSON(k.Public()), &m)
		for _, name := range []string{"n", "x", "y"} {
			if s, ok := m[name].(string); ok && len(s) >= 16 {
				f.secrets = append(f.secrets, s[:16])
			}
		}
	}
	f.secrets = append(f.secrets, "SECRET", "PUBLIC KEY")
	f.addr = strings.TrimPrefix(f.is.URL(), "http://")
	return f
}

// claims returns a typical access token's claims around vtEpoch.
func (f *vtFixture) claims(mods ...vtMod) map[string]any {
	m := map[string]any{
		"iss":       f.is.URL(),
		"sub":       "user-123",
		"aud":       vtAud,
		"exp":       vtEpoch.Add(time.Hour).Unix(),
		"iat":       vtEpoch.Unix(),
		"nbf":       vtEpoch.Unix(),
		"jti":       "jti-1",
		"client_id": "client-abc",
		"scope":     "orders:read orders:write",
	}
	for _, mod := range mods {
		mod(m)
	}
	return m
}

// tok mints a token with the ES256 signing key and the default header.
func (f *vtFixture) tok(mods ...vtMod) string { return testkit.Sign(f.ec, nil, f.claims(mods...)) }

// tokH mints a token with the ES256 signing key and header changes.
func (f *vtFixture) tokH(hdr map[string]any, mods ...vtMod) string {
	return testkit.Sign(f.ec, hdr, f.claims(mods...))
}

// rawPayload is the JSON of the claims with extra members spliced in as
// raw text (for duplicate names, invalid UTF-8, out-of-range numbers).
func (f *vtFixture) rawPayload(extra string, mods ...vtMod) []byte {
	b := vtJSON(f.claims(mods...))
	return append(append(b[:len(b)-1:len(b)-1], ","+extra...), '}')
}

// edIssuer is the fixture's per-algorithm issuer of Ed25519 keys.
func (f *vtFixture) edIssuer() vtAlgIssuer {
	for _, ai := range f.algIssuers() {
		if ai.alg == "Ed25519" {
			return ai
		}
	}
	f.t.Fatal("no Ed25519 issuer")
	return vtAlgIssuer{}
}

// edToken signs the fixture's claims with the Ed25519 issuer's key under
// the JWS alg name, "EdDSA" or "Ed25519"; edKeys is a static keyset of
// that key with no declared alg, so that both names fit it.
func (f *vtFixture) edToken(name string) string {
	ai := f.edIssuer()
	k := *ai.is.SigningKey()
	k.Algorithm = name
	return testkit.Sign(&k, nil, f.claims(vtSet("iss", ai.is.URL())))
}

func (f *vtFixture) edKeys() *Keyset {
	k := f.edIssuer().is.SigningKey()
	jwk := k.Public()
	jwk.Algorithm = ""
	return mustStatic(f.t, vtJSON(map[string]any{"keys": []any{jwk}}))
}

func (f *vtFixture) edOpts(extra ...VerifierOption) []VerifierOption {
	return append([]VerifierOption{WithIssuer(f.edIssuer().is.URL()), WithAudience(vtAud)}, extra...)
}

func (f *vtFixture) opts(extra ...VerifierOption) []VerifierOption {
	return append([]VerifierOption{WithIssuer(f.is.URL()), WithAudience(vtAud)}, extra...)
}

// verifier builds the verifier a case asks for, with the fixture's clock,
// with or without the token cache.
func (f *vtFixture) verifier(t testing.TB, c vtCase, cache bool) *Verifier {
	t.Helper()
	keys := c.keys
	if keys == nil {
		keys = f.remote
	}
	opts := c.opts
	if opts == nil {
		opts = f.opts()
	}
	opts = append(slices.Clone(opts), WithClock(f.clock.Now))
	if !cache {
		opts = append(opts, WithTokenCache(0, 0, 0))
	}
	v, err := NewVerifier(keys, opts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// algIssuers starts one issuer per algorithm of testkit.Algorithms.
func (f *vtFixture) algIssuers() []vtAlgIssuer {
	if f.perAlg != nil {
		return f.perAlg
	}
	for _, alg := range testkit.Algorithms {
		is := testkit.NewIssuer(testkit.WithAlgorithm(alg))
		f.t.Cleanup(is.Close)
		ks, err := NewRemoteKeyset(f.t.Context(), is.JWKSURL(), WithHTTPClient(is.HTTPClient()), WithKeysetLogger(vtDiscard))
		if err != nil {
			f.t.Fatalf("NewRemoteKeyset(%s): %v", alg, err)
		}
		f.t.Cleanup(func() { ks.Close() })
		f.perAlg = append(f.perAlg, vtAlgIssuer{alg: alg, is: is, ks: ks})
	}
	return f.perAlg
}

// vtCase is one row of the verification table. keys nil means the
// fixture's remote keyset; opts nil means the fixture's issuer and audience.
type vtCase struct {
	name    string
	token   string
	wantErr error
	// wantText, if set, is a fragment the error must hold: for rows whose
	// sentinel alone does not say which check refused the token.
	wantText string
	keys     *Keyset
	opts     []VerifierOption
}

// cases is the verification table, shared by TestVerify and the cache
// consistency property.
func (f *vtFixture) cases() []vtCase {
	var cs []vtCase
	add := func(c ...vtCase) { cs = append(cs, c...) }

	// --- accepted ---
	for _, ai := range f.algIssuers() {
		add(vtCase{
			name:  "accept/alg/" + ai.alg,
			token: testkit.Sign(ai.is.SigningKey(), nil, f.claims(vtSet("iss", ai.is.URL()))),
			keys:  ai.ks,
			opts:  []VerifierOption{WithIssuer(ai.is.URL()), WithAudience(vtAud)},
		})
		add(vtCase{
			name:  "accept/alg/static/" + ai.alg,
			token: testkit.Sign(ai.is.SigningKey(), map[string]any{"kid": nil}, f.claims(vtSet("iss", ai.is.URL()))),
			keys:  mustStatic(f.t, ai.is.JWKS()),
			opts:  []VerifierOption{WithIssuer(ai.is.URL()), WithAudience(vtAud)},
		})
	}
	add(
		vtCase{name: "accept/RS256 key of the fixture", token: testkit.Sign(f.rsa, nil, f.claims())},
		vtCase{name: "accept/aud string", token: f.tok()},
		vtCase{name: "accept/aud array", token: f.tok(vtSet("aud", []string{"https://other.example", vtAud}))},
		vtCase{name: "accept/typ at+jwt", token: f.tokH(map[string]any{"typ": "at+jwt"})},
		vtCase{name: "accept/typ application/at+jwt", token: f.tokH(map[string]any{"typ": "application/at+jwt"})},
		vtCase{name: "accept/typ AT+JWT", token: f.tokH(map[string]any{"typ": "AT+JWT"})},
		vtCase{name: "accept/typ JWT", token: f.tokH(map[string]any{"typ": "JWT"})},
		vtCase{name: "accept/typ absent", token: f.tokH(map[string]any{"typ": nil})},
		vtCase{name: "accept/strict type at+jwt", token: f.tok(), opts: f.opts(WithStrictType())},
		// Keycloak before 24 copied nonce into access tokens; RFC 9068
		// §2.2.1 allows auth_time. Neither marks an ID token.
		vtCase{name: "accept/Keycloak access token with nonce", token: f.tokH(map[string]any{"typ": "JWT"},
			vtSet("typ", "Bearer"), vtSet("nonce", "n-0S6_WzA2Mj"), vtSet("auth_time", vtEpoch.Unix()), vtSet("azp", "orders-client"))},
		vtCase{
			name:  "accept/several issuers and audiences",
			token: f.tok(vtSet("aud", []string{"https://b.example", vtAud})),
			opts: []VerifierOption{WithIssuer("https://other-issuer.example", f.is.URL()),
				WithAudience("https://a.example"), WithAudience(vtAud, "https://c.example")},
		},
		vtCase{name: "accept/expired within leeway", token: f.tok(vtSet("exp", vtEpoch.Add(-29*time.Second).Unix()))},
		vtCase{name: "accept/nbf within leeway", token: f.tok(vtSet("nbf", vtEpoch.Add(30*time.Second).Unix()))},
		vtCase{name: "accept/iat within leeway", token: f.tok(vtSet("iat", vtEpoch.Add(30*time.Second).Unix()))},
		vtCase{name: "accept/no nbf no iat", token: f.tok(vtDel("nbf", "iat"))},
		vtCase{name: "accept/no kid, one compatible key", token: f.tokH(map[string]any{"kid": nil})},
		vtCase{name: "accept/no kid, static keyset", token: f.tokH(map[string]any{"kid": nil}), keys: f.static},
		vtCase{name: "accept/required sub present", token: f.tok(), opts: f.opts(WithRequiredClaims("sub"))},
		vtCase{name: "accept/lifetime at the bound", token: f.tok(), opts: f.opts(WithMaxLifetime(time.Hour))},
		vtCase{name: "accept/unknown header members ignored", token: f.tokH(map[string]any{"x-custom": true})},
		vtCase{name: "accept/skip issuer check", token: f.tok(vtSet("iss", "https://anyone.example")),
			opts: []VerifierOption{InsecureSkipIssuerCheck(), WithAudience(vtAud)}},
		vtCase{name: "accept/skip audience check", token: f.tok(vtSet("aud", "https://anything.example")),
			opts: []VerifierOption{WithIssuer(f.is.URL()), InsecureSkipAudienceCheck()}},
	)

	// --- algorithm ---
	good := f.tok()
	gh, gp, gs := vtSplit(good)
	payload := vtJSON(f.claims())
	for _, none := range []string{"none", "None", "NONE", "nOnE"} {
		hdr := map[string]any{"alg": none, "kid": f.ec.ID, "typ": "at+jwt"}
		add(
			vtCase{name: "alg/" + none + "/unsigned", token: vtAssemble(hdr, payload, nil), wantErr: ErrAlgorithm},
			vtCase{name: "alg/" + none + "/with signature", token: vtAssemble(hdr, gp, nil) + gs, wantErr: ErrAlgorithm},
			vtCase{name: "alg/" + none + "/no kid", token: vtAssemble(map[string]any{"alg": none}, payload, nil), wantErr: ErrAlgorithm},
		)
	}
	for _, k := range []*testkit.Key{f.ec, f.rsa} {
		der, err := x509.MarshalPKIXPublicKey(k.Signer.Public())
		if err != nil {
			f.t.Fatal(err)
		}
		secrets := map[string][]byte{
			"jwk":  vtJSON(k.Public()),
			"jwks": f.is.JWKS(),
			"der":  der,
			"pem":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		}
		for _, hs := range []string{"HS256", "HS384", "HS512"} {
			for _, what := range []string{"jwk", "jwks", "der", "pem"} {
				add(vtCase{
					name:    fmt.Sprintf("alg/%s keyed with the %s of %s", hs, what, k.Algorithm),
					token:   vtHMAC(hs, map[string]any{"kid": k.ID}, payload, secrets[what]),
					wantErr: ErrAlgorithm,
				})
			}
		}
	}
	psOnRS := &testkit.Key{ID: f.rsa.ID, Algorithm: "PS256", Signer: f.rsa.Signer}
	add(
		vtCase{name: "alg/HS256 without kid", token: vtHMAC("HS256", nil, payload, f.is.JWKS()), wantErr: ErrAlgorithm},
		vtCase{name: "alg/ES256 header on the RSA kid", token: f.tokH(map[string]any{"kid": f.rsa.ID}), wantErr: ErrAlgorithm},
		vtCase{name: "alg/RS256 header on the EC kid", token: testkit.Sign(f.rsa, map[string]any{"kid": f.ec.ID}, f.claims()), wantErr: ErrAlgorithm},
		vtCase{name: "alg/PS256 on a key whose JWK declares RS256", token: testkit.Sign(psOnRS, nil, f.claims()), wantErr: ErrAlgorithm},
		vtCase{name: "alg/PS256 on a key whose JWK declares RS256, static", token: testkit.Sign(psOnRS, nil, f.claims()), keys: f.static, wantErr: ErrAlgorithm},
		vtCase{name: "alg/not in WithAlgorithms", token: f.tok(), opts: f.opts(WithAlgorithms("RS256", "EdDSA")), wantErr: ErrAlgorithm},
		vtCase{name: "alg/lower case es256", token: f.tokH(map[string]any{"alg": "es256"}), wantErr: ErrAlgorithm},
		vtCase{name: "alg/ES256K", token: f.tokH(map[string]any{"alg": "ES256K"}), wantErr: ErrAlgorithm},
		vtCase{name: "alg/empty", token: f.tokH(map[string]any{"alg": ""}), wantErr: ErrAlgorithm},
	)

	// --- keys named by the header are never fetched or trusted ---
	x5c := f.attackerCert()
	add(
		vtCase{name: "hdrkey/jwk, no kid", token: testkit.Sign(f.atk, map[string]any{"kid": nil, "jwk": f.atk.Public()}, f.claims()), wantErr: ErrSignature},
		vtCase{name: "hdrkey/jwk, attacker kid", token: testkit.Sign(f.atk, map[string]any{"jwk": f.atk.Public()}, f.claims()), wantErr: ErrUnknownKey},
		vtCase{name: "hdrkey/jwk, attacker kid, static", token: testkit.Sign(f.atk, map[string]any{"jwk": f.atk.Public()}, f.claims()), keys: f.static, wantErr: ErrUnknownKey},
		vtCase{name: "hdrkey/jwk, victim kid", token: testkit.Sign(f.atk, map[string]any{"kid": f.ec.ID, "jwk": f.atk.Public()}, f.claims()), wantErr: ErrSignature},
		vtCase{name: "hdrkey/jwk EdDSA, no kid, no EdDSA key held", token: testkit.Sign(f.atkEd, map[string]any{"kid": nil, "jwk": f.atkEd.Public()}, f.claims()), wantErr: ErrUnknownKey},
		vtCase{name: "hdrkey/jku, attacker kid", token: testkit.Sign(f.atk, map[string]any{"jku": f.atkSrv.URL + "/jwks"}, f.claims()), wantErr: ErrUnknownKey},
		vtCase{name: "hdrkey/jku, no kid", token: testkit.Sign(f.atk, map[string]any{"kid": nil, "jku": f.atkSrv.URL + "/jwks"}, f.claims()), wantErr: ErrSignature},
		vtCase{name: "hdrkey/x5u, attacker kid", token: testkit.Sign(f.atk, map[string]any{"x5u": f.atkSrv.URL + "/cert.pem"}, f.claims()), wantErr: ErrUnknownKey},
		vtCase{name: "hdrkey/x5u, no kid", token: testkit.Sign(f.atk, map[string]any{"kid": nil, "x5u": f.atkSrv.URL + "/cert.pem"}, f.claims()), wantErr: ErrSignature},
		vtCase{name: "hdrkey/x5c, attacker kid", token: testkit.Sign(f.atk, map[string]any{"x5c": x5c}, f.claims()), wantErr: ErrUnknownKey},
		vtCase{name: "hdrkey/x5c, no kid", token: testkit.Sign(f.atk, map[string]any{"kid": nil, "x5c": x5c}, f.claims()), wantErr: ErrSignature},
		vtCase{name: "hdrkey/x5c and jku and jwk together", token: testkit.Sign(f.atk, map[string]any{"kid": nil, "x5c": x5c, "jku": f.atkSrv.URL, "jwk": f.atk.Public()}, f.claims()), wantErr: ErrSignature},
	)

	// --- structure ---
	fiveSeg := vtB64([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"`+f.ec.ID+`"}`)) + ".AAAA.BBBB.CCCC.DDDD"
	flattened := fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, gp, gh, gs)
	general := fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"signature":%q}]}`, gp, gh, gs)
	stdAlpha := f.tokWithURLChars()
	trailing := gs[:len(gs)-1] + string(vtFlipTrailing(gs[len(gs)-1]))
	sigBytes, _ := base64.RawURLEncoding.DecodeString(gs)
	add(
		vtCase{name: "crit/exp", token: f.tokH(map[string]any{"crit": []string{"exp"}}), wantErr: ErrMalformed, wantText: "crit header"},
		vtCase{name: "crit/empty", token: f.tokH(map[string]any{"crit": []string{}}), wantErr: ErrMalformed},
		vtCase{name: "crit/b64 false", token: f.tokH(map[string]any{"crit": []string{"b64"}, "b64": false}), wantErr: ErrMalformed},
		vtCase{name: "crit/b64 true", token: f.tokH(map[string]any{"crit": []string{"b64"}, "b64": true}), wantErr: ErrMalformed},
		vtCase{name: "crit/not an array", token: f.tokH(map[string]any{"crit": "exp"}), wantErr: ErrMalformed},
		vtCase{name: "jwe/five segments", token: fiveSeg, wantErr: ErrMalformed, wantText: "JWE is not accepted"},
		vtCase{name: "jwe/enc header in three segments", token: f.tokH(map[string]any{"enc": "A256GCM"}), wantErr: ErrMalformed},
		vtCase{name: "json/flattened", token: flattened, wantErr: ErrMalformed, wantText: "JWS JSON serialization is not accepted"},
		vtCase{name: "json/general", token: general, wantErr: ErrMalformed, wantText: "JWS JSON serialization is not accepted"},
		vtCase{name: "json/flattened after whitespace", token: " \n" + flattened, wantErr: ErrMalformed},
		vtCase{name: "nested/cty JWT", token: f.tokH(map[string]any{"cty": "JWT"}), wantErr: ErrMalformed, wantText: "nested JWTs are not accepted"},
		vtCase{name: "nested/cty jwt", token: f.tokH(map[string]any{"cty": "jwt"}), wantErr: ErrMalformed},
		vtCase{name: "nested/cty application/jwt", token: f.tokH(map[string]any{"cty": "application/jwt"}), wantErr: ErrMalformed},
		vtCase{name: "size/over WithMaxTokenSize", token: f.tok(vtSet("pad", strings.Repeat("x", 2000))), opts: f.opts(WithMaxTokenSize(1024)), wantErr: ErrMalformed},
		vtCase{name: "size/over the default 16 KiB", token: f.tok(vtSet("pad", strings.Repeat("x", 17<<10))), wantErr: ErrMalformed},
		vtCase{name: "size/100000 dots", token: strings.Repeat(".", 100000), wantErr: ErrMalformed},
		vtCase{name: "size/100000 dots under a 1 MiB cap", token: strings.Repeat(".", 100000), opts: f.opts(WithMaxTokenSize(1 << 20)), wantErr: ErrMalformed},
		vtCase{name: "b64/padding in signature", token: good + "==", wantErr: ErrMalformed, wantText: "signature: "},
		vtCase{name: "b64/padding in header", token: gh + "=." + gp + "." + gs, wantErr: ErrMalformed, wantText: "header: "},
		vtCase{name: "b64/padding in payload", token: gh + "." + gp + "=." + gs, wantErr: ErrMalformed, wantText: "payload: "},
		vtCase{name: "b64/standard alphabet", token: stdAlpha, wantErr: ErrMalformed},
		vtCase{name: "b64/non-canonical trailing bits", token: gh + "." + gp + "." + trailing, wantErr: ErrMalformed},
		vtCase{name: "b64/trailing newline", token: good + "\n", wantErr: ErrMalformed},
		vtCase{name: "b64/trailing CRLF", token: good + "\r\n", wantErr: ErrMalformed},
		vtCase{name: "b64/newline inside the signature", token: gh + "." + gp + "." + gs[:10] + "\n" + gs[10:], wantErr: ErrMalformed},
		vtCase{name: "b64/newline inside the header", token: gh[:5] + "\n" + gh[5:] + "." + gp + "." + gs, wantErr: ErrMalformed},
		vtCase{name: "b64/leading space", token: " " + good, wantErr: ErrMalformed},
		vtCase{name: "b64/trailing space", token: good + " ", wantErr: ErrMalformed},
		vtCase{name: "segments/empty string", token: "", wantErr: ErrMalformed},
		vtCase{name: "segments/a.b", token: "a.b", wantErr: ErrMalformed, wantText: "not a compact JWS"},
		vtCase{name: "segments/a.b.c.d", token: "a.b.c.d", wantErr: ErrMalformed},
		vtCase{name: "segments/a.b.c", token: "a.b.c", wantErr: ErrMalformed},
		vtCase{name: "segments/..", token: "..", wantErr: ErrMalformed},
		vtCase{name: "segments/no dot", token: gh, wantErr: ErrMalformed, wantText: "not a JWT (no dots): an opaque access token?"},
		vtCase{name: "segments/four dots (not JWE-shaped)", token: good + ".x", wantErr: ErrMalformed, wantText: "not a compact JWS"},
		vtCase{name: "header/not a JSON object (array)", token: vtAssemble([]byte(`["alg","ES256"]`), payload, sigBytes), wantErr: ErrMalformed},
		vtCase{name: "header/JSON null", token: vtAssemble([]byte(`null`), payload, sigBytes), wantErr: ErrMalformed},
		vtCase{name: "header/JSON string", token: vtAssemble([]byte(`"ES256"`), payload, sigBytes), wantErr: ErrMalformed},
		vtCase{name: "header/not JSON", token: vtAssemble([]byte(`alg=ES256`), payload, sigBytes), wantErr: ErrMalformed},
		vtCase{name: "header/trailing garbage", token: vtAssemble([]byte(`{"alg":"ES256"}x`), payload, sigBytes), wantErr: ErrMalformed},
		vtCase{name: "header/alg not a string", token: f.tokH(map[string]any{"alg": 256}), wantErr: ErrMalformed},
		vtCase{name: "header/alg array", token: f.tokH(map[string]any{"alg": []string{"ES256"}}), wantErr: ErrMalformed},
		vtCase{name: "header/alg null", token: f.tokH(map[string]any{"alg": json.RawMessage("null")}), wantErr: ErrMalformed},
		vtCase{name: "header/alg missing", token: f.tokH(map[string]any{"alg": nil}), wantErr: ErrMalformed},
		vtCase{name: "header/kid not a string", token: f.tokH(map[string]any{"kid": 7}), wantErr: ErrMalformed},
		vtCase{name: "header/typ not a string", token: f.tokH(map[string]any{"typ": true}), wantErr: ErrMalformed},
		vtCase{name: "header/invalid UTF-8", token: vtAssemble([]byte("{\"alg\":\"ES256\",\"kid\":\"\xff\"}"), payload, sigBytes), wantErr: ErrMalformed},
	)

	// --- signature ---
	tamperedPayload := gh + "." + vtB64(vtJSON(f.claims(vtSet("sub", "admin")))) + "." + gs
	tamperedHeader := vtB64(vtJSON(map[string]any{"alg": "ES256", "kid": f.ec.ID, "typ": "JWT"})) + "." + gp + "." + gs
	other := testkit.NewKey("ES256")
	other.ID = f.ec.ID
	rsaGood := testkit.Sign(f.rsa, nil, f.claims())
	rh, rp, rs := vtSplit(rsaGood)
	rsaSig, _ := base64.RawURLEncoding.DecodeString(rs)
	otherTok := f.tok(vtSet("jti", "jti-other"))
	_, _, otherSig := vtSplit(otherTok)
	add(
		vtCase{name: "sig/tampered payload", token: tamperedPayload, wantErr: ErrSignature},
		vtCase{name: "sig/tampered header (typ, same kid)", token: tamperedHeader, wantErr: ErrSignature},
		vtCase{name: "sig/truncated ES256", token: gh + "." + gp + "." + vtB64(sigBytes[:len(sigBytes)-3]), wantErr: ErrSignature},
		vtCase{name: "sig/truncated RS256", token: rh + "." + rp + "." + vtB64(rsaSig[:len(rsaSig)-3]), wantErr: ErrSignature},
		vtCase{name: "sig/extended ES256", token: gh + "." + gp + "." + vtB64(append(slices.Clone(sigBytes), 0, 0, 0)), wantErr: ErrSignature},
		vtCase{name: "sig/empty", token: gh + "." + gp + ".", wantErr: ErrSignature},
		vtCase{name: "sig/another key with the same kid", token: testkit.Sign(other, nil, f.claims()), wantErr: ErrSignature},
		vtCase{name: "sig/another key with the same kid, static", token: testkit.Sign(other, nil, f.claims()), keys: f.static, wantErr: ErrSignature},
		vtCase{name: "sig/another token's signature", token: gh + "." + gp + "." + otherSig, wantErr: ErrSignature},
		vtCase{name: "sig/zero r and s", token: gh + "." + gp + "." + vtB64(make([]byte, 64)), wantErr: ErrSignature},
	)

	// --- issuer, audience ---
	add(
		vtCase{name: "iss/wrong", token: f.tok(vtSet("iss", "https://evil.example/tenant")), wantErr: ErrIssuer, wantText: `iss is "https://evil.example/tenant", want one of ["http://`},
		vtCase{name: "iss/trailing slash", token: f.tok(vtSet("iss", f.is.URL()+"/")), wantErr: ErrIssuer},
		vtCase{name: "iss/different case", token: f.tok(vtSet("iss", strings.ToUpper(f.is.URL()))), wantErr: ErrIssuer},
		vtCase{name: "iss/missing", token: f.tok(vtDel("iss")), wantErr: ErrIssuer},
		vtCase{name: "iss/empty", token: f.tok(vtSet("iss", "")), wantErr: ErrIssuer},
		vtCase{name: "iss/array", token: f.tok(vtSet("iss", []string{f.is.URL()})), wantErr: ErrMalformed},
		vtCase{name: "iss/number", token: f.tok(vtSet("iss", 1)), wantErr: ErrMalformed},
		vtCase{name: "iss/null", token: f.tok(vtSet("iss", json.RawMessage("null"))), wantErr: ErrMalformed},
		vtCase{name: "aud/wrong", token: f.tok(vtSet("aud", "https://api.example.com/billing")), wantErr: ErrAudience},
		vtCase{name: "aud/wrong array", token: f.tok(vtSet("aud", []string{"a", "b"})), wantErr: ErrAudience},
		vtCase{name: "aud/empty array", token: f.tok(vtSet("aud", []string{})), wantErr: ErrAudience},
		vtCase{name: "aud/missing", token: f.tok(vtDel("aud")), wantErr: ErrAudience},
		vtCase{name: "aud/empty string", token: f.tok(vtSet("aud", "")), wantErr: ErrAudience},
		vtCase{name: "aud/prefix", token: f.tok(vtSet("aud", vtAud+"/x")), wantErr: ErrAudience},
		vtCase{name: "aud/number", token: f.tok(vtSet("aud", 5)), wantErr: ErrMalformed},
		vtCase{name: "aud/array of numbers", token: f.tok(vtSet("aud", []int{5})), wantErr: ErrMalformed},
		vtCase{name: "aud/array with null", token: f.tok(vtSet("aud", []any{vtAud, nil})), wantErr: ErrMalformed},
		vtCase{name: "aud/nested array", token: f.tok(vtSet("aud", []any{[]string{vtAud}})), wantErr: ErrMalformed},
	)

	// --- times ---
	add(
		vtCase{name: "exp/missing", token: f.tok(vtDel("exp")), wantErr: ErrMissingClaim},
		vtCase{name: "exp/string", token: f.tok(vtSet("exp", fmt.Sprint(vtEpoch.Add(time.Hour).Unix()))), wantErr: ErrMalformed},
		vtCase{name: "exp/array", token: f.tok(vtSet("exp", []int64{vtEpoch.Add(time.Hour).Unix()})), wantErr: ErrMalformed},
		vtCase{name: "exp/true", token: f.tok(vtSet("exp", true)), wantErr: ErrMalformed},
		vtCase{name: "exp/null", token: f.tok(vtSet("exp", json.RawMessage("null"))), wantErr: ErrMalformed},
		vtCase{name: "exp/object", token: f.tok(vtSet("exp", map[string]int{"t": 1})), wantErr: ErrMalformed},
		vtCase{name: "exp/1e400", token: testkit.Sign(f.ec, nil, f.rawPayload(`"exp":1e400`, vtDel("exp"))), wantErr: ErrMalformed},
		vtCase{name: "exp/past year 9999", token: f.tok(vtSet("exp", int64(253402300800))), wantErr: ErrMalformed},
		vtCase{name: "exp/expired beyond leeway", token: f.tok(vtSet("exp", vtEpoch.Add(-31*time.Second).Unix())), wantErr: ErrExpired},
		vtCase{name: "exp/expired at exactly the leeway", token: f.tok(vtSet("exp", vtEpoch.Add(-30*time.Second).Unix())), wantErr: ErrExpired},
		vtCase{name: "exp/zero leeway", token: f.tok(vtSet("exp", vtEpoch.Unix())), opts: f.opts(WithLeeway(0)), wantErr: ErrExpired},
		vtCase{name: "exp/negative", token: f.tok(vtSet("exp", -1)), wantErr: ErrExpired},
		vtCase{name: "nbf/future", token: f.tok(vtSet("nbf", vtEpoch.Add(31*time.Second).Unix())), wantErr: ErrNotYetValid},
		vtCase{name: "nbf/string", token: f.tok(vtSet("nbf", "0")), wantErr: ErrMalformed},
		vtCase{name: "iat/future", token: f.tok(vtSet("iat", vtEpoch.Add(31*time.Second).Unix())), wantErr: ErrNotYetValid},
		vtCase{name: "iat/string", token: f.tok(vtSet("iat", "now")), wantErr: ErrMalformed},
	)

	// --- type, required claims, lifetime, encoding of claims ---
	add(
		vtCase{name: "typ/strict, JWT", token: f.tokH(map[string]any{"typ": "JWT"}), opts: f.opts(WithStrictType()), wantErr: ErrTokenType},
		vtCase{name: "typ/strict, absent", token: f.tokH(map[string]any{"typ": nil}), opts: f.opts(WithStrictType()), wantErr: ErrTokenType},
		vtCase{name: "typ/id+jwt", token: f.tokH(map[string]any{"typ": "id+jwt"}), wantErr: ErrTokenType},
		vtCase{name: "typ/dpop+jwt", token: f.tokH(map[string]any{"typ": "dpop+jwt"}), wantErr: ErrTokenType},
		vtCase{name: "typ/logout+jwt", token: f.tokH(map[string]any{"typ": "logout+jwt"}), wantErr: ErrTokenType},
		// ID tokens, whatever their header says (RFC 8725 §3.11).
		vtCase{name: "idtoken/at_hash", token: f.tokH(map[string]any{"typ": "JWT"}, vtSet("at_hash", "77QmUPtjPfzWtF2AnpK9RQ")), wantErr: ErrTokenType, wantText: "at_hash"},
		vtCase{name: "idtoken/c_hash", token: f.tok(vtSet("c_hash", "LDktKdoQak3Pk0cnXxCltA")), wantErr: ErrTokenType, wantText: "c_hash"},
		vtCase{name: "idtoken/at_hash null", token: f.tok(vtSet("at_hash", json.RawMessage("null"))), wantErr: ErrTokenType},
		vtCase{name: "idtoken/Keycloak typ ID", token: f.tokH(map[string]any{"typ": "JWT"}, vtSet("typ", "ID")), wantErr: ErrTokenType, wantText: `"ID"`},
		vtCase{name: "idtoken/Keycloak typ Refresh", token: f.tok(vtSet("typ", "Refresh")), wantErr: ErrTokenType},
		vtCase{name: "idtoken/Keycloak typ Offline", token: f.tok(vtSet("typ", "Offline")), wantErr: ErrTokenType},
		vtCase{name: "accept/ID token with InsecureAcceptIDTokens (Dex)", token: f.tokH(map[string]any{"typ": nil}, vtSet("at_hash", "77QmUPtjPfzWtF2AnpK9RQ")),
			opts: f.opts(InsecureAcceptIDTokens())},
		// cnf (RFC 7800): only x5t#S256 (RFC 8705) is checked here; any
		// other binding refuses the token unless the operator opts out.
		// Repeated claim names, and names that differ only in case, are
		// refused: two readers must never see different aud or scope.
		vtCase{name: "claims/repeated aud (signed)", token: testkit.Sign(f.ec, nil, f.rawPayload(`"aud":"https://other.example"`)), wantErr: ErrMalformed, wantText: `repeats the name "aud"`},
		vtCase{name: "claims/repeated unread name (signed)", token: testkit.Sign(f.ec, nil, f.rawPayload(`"tenant":"a","tenant":"b"`)), wantErr: ErrMalformed},
		vtCase{name: "claims/SCOPE beside scope (signed)", token: testkit.Sign(f.ec, nil, f.rawPayload(`"SCOPE":"admin"`, vtSet("scope", "read"))),
			wantErr: ErrMalformed, wantText: `names "scope" and "SCOPE" differ only in case`},
		vtCase{name: "claims/SCOPE alone (signed)", token: testkit.Sign(f.ec, nil, f.rawPayload(`"SCOPE":"admin"`, vtDel("scope"))),
			wantErr: ErrMalformed, wantText: `the claim name "SCOPE" differs only in case from "scope"`},
		vtCase{name: "claims/Kelvin-sign variant of a required claim (signed)", token: testkit.Sign(f.ec, nil, f.rawPayload(`"\u212aid":"x"`)),
			opts: f.opts(WithRequiredClaims("kid")), wantErr: ErrMalformed},
		vtCase{name: "claims/scp variant with WithScopeClaims(scp) (signed)", token: testkit.Sign(f.ec, nil, f.rawPayload(`"SCP":["admin"]`)),
			opts: f.opts(WithScopeClaims("scope", "scp")), wantErr: ErrMalformed},
		vtCase{name: "accept/case variant of an unread claim", token: testkit.Sign(f.ec, nil, f.rawPayload(`"TENANT":"a"`))},
		// Ed25519 (RFC 9864) in WithAlgorithms: the fixture's per-algorithm
		// issuers include one that signs with it.
		vtCase{name: "alg/Ed25519 token with WithAlgorithms(EdDSA)", token: f.edToken("Ed25519"), keys: f.edKeys(), opts: f.edOpts(WithAlgorithms("EdDSA")), wantErr: ErrAlgorithm},
		vtCase{name: "accept/Ed25519 token with WithAlgorithms(Ed25519)", token: f.edToken("Ed25519"), keys: f.edKeys(), opts: f.edOpts(WithAlgorithms("Ed25519"))},
		vtCase{name: "alg/EdDSA token with WithAlgorithms(Ed25519)", token: f.edToken("EdDSA"), keys: f.edKeys(), opts: f.edOpts(WithAlgorithms("Ed25519")), wantErr: ErrAlgorithm},
		vtCase{name: "cnf/jkt", token: f.tok(vtSet("cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})),
			wantErr: ErrUnsupportedConfirmation, wantText: `cnf holds "jkt"`},
		vtCase{name: "cnf/jwk", token: f.tok(vtSet("cnf", map[string]any{"jwk": map[string]any{"kty": "OKP"}})), wantErr: ErrUnsupportedConfirmation},
		vtCase{name: "cnf/kid", token: f.tok(vtSet("cnf", map[string]any{"kid": "k"})), wantErr: ErrUnsupportedConfirmation},
		vtCase{name: "cnf/unknown member", token: f.tok(vtSet("cnf", map[string]any{"osc": "x"})), wantErr: ErrUnsupportedConfirmation},
		vtCase{name: "cnf/repeated member", token: testkit.Sign(f.ec, nil, f.rawPayload(`"cnf":{"jkt":"a","jkt":"b"}`)), wantErr: ErrMalformed},
		vtCase{name: "cnf/x5t#S256 a number", token: f.tok(vtSet("cnf", map[string]any{"x5t#S256": 1})), wantErr: ErrMalformed},
		vtCase{name: "accept/cnf jkt with InsecureIgnoreUnsupportedConfirmation", token: f.tok(vtSet("cnf", map[string]any{"jkt": "x"})),
			opts: f.opts(InsecureIgnoreUnsupportedConfirmation())},
		vtCase{name: "idtoken/strict type too", token: f.tok(vtSet("at_hash", "x")), opts: f.opts(WithStrictType()), wantErr: ErrTokenType},
		vtCase{name: "required/sub missing", token: f.tok(vtDel("sub")), opts: f.opts(WithRequiredClaims("sub")), wantErr: ErrMissingClaim},
		vtCase{name: "lifetime/exceeded", token: f.tok(), opts: f.opts(WithMaxLifetime(30 * time.Minute)), wantErr: ErrLifetime},
		vtCase{name: "lifetime/no iat", token: f.tok(vtDel("iat")), opts: f.opts(WithMaxLifetime(2 * time.Hour)), wantErr: ErrMissingClaim},
		vtCase{name: "claims/invalid UTF-8 (signed)", token: testkit.Sign(f.ec, nil, f.rawPayload("\"name\":\"\xff\xfe\"")), wantErr: ErrMalformed},
		vtCase{name: "claims/not an object (signed)", token: testkit.Sign(f.ec, nil, []byte(`["iss"]`)), wantErr: ErrMalformed},
		vtCase{name: "claims/null (signed)", token: testkit.Sign(f.ec, nil, []byte(`null`)), wantErr: ErrMalformed},
		vtCase{name: "claims/trailing garbage (signed)", token: testkit.Sign(f.ec, nil, append(vtJSON(f.claims()), 'x')), wantErr: ErrMalformed},
		vtCase{name: "claims/scope number", token: f.tok(vtSet("scope", 42)), wantErr: ErrMalformed},
		vtCase{name: "claims/scope array with null", token: f.tok(vtSet("scope", []any{"a", nil})), wantErr: ErrMalformed},
		vtCase{name: "claims/sub number", token: f.tok(vtSet("sub", 123)), wantErr: ErrMalformed},
		vtCase{name: "claims/client_id object", token: f.tok(vtSet("client_id", map[string]string{})), wantErr: ErrMalformed},
		vtCase{name: "kid/unknown, static keyset", token: f.tokH(map[string]any{"kid": "no-such-kid"}), keys: f.static, wantErr: ErrUnknownKey},
		vtCase{name: "kid/unknown, remote keyset", token: f.tokH(map[string]any{"kid": "no-such-kid"}), wantErr: ErrUnknownKey},
	)
	return cs
}

func mustStatic(t *testing.T, jwks []byte) *Keyset {
	t.Helper()
	ks, err := NewStaticKeyset(jwks, WithKeysetLogger(vtDiscard))
	if err != nil {
		t.Fatalf("NewStaticKeyset: %v", err)
	}
	return ks
}

// attackerCert returns an "x5c" chain: a self-signed certificate for the
// attacker's key.
func (f *vtFixture) attackerCert() []string {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    vtEpoch.Add(-time.Hour),
		NotAfter:     vtEpoch.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, f.atk.Signer.Public(), f.atk.Signer)
	if err != nil {
		f.t.Fatal(err)
	}
	return []string{base64.StdEncoding.EncodeToString(der)}
}

// tokWithURLChars returns a valid token whose signature has '-' or '_',
// re-spelt in the standard base64 alphabet.
func (f *vtFixture) tokWithURLChars() string {
	for i := 0; ; i++ {
		tok := f.tok(vtSet("jti", fmt.Sprintf("jti-alpha-%d", i)))
		h, p, s := vtSplit(tok)
		if strings.ContainsAny(s, "-_") {
			return h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s)
		}
	}
}

// vtFlipTrailing returns the base64url character that differs from c only
// in its lowest bit, which is a trailing (unused) bit in the last character
// of a 64-byte signature.
func vtFlipTrailing(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

func TestVerify(t *testing.T) {
	f := newVTFixture(t)
	cases := f.cases()
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			f.clock.Set(vtEpoch)
			v := f.verifier(t, c, true)
			claims, err := v.Verify(t.Context(), c.token)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("Verify: got error %v, want %v", err, c.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), c.wantText) {
				t.Errorf("Verify: error %q does not say %q", err, c.wantText)
			}
			if _, serr := vtSentinel(err); serr != nil {
				t.Error(serr)
			}
			if err != nil {
				if claims != nil {
					t.Errorf("Verify returned claims with error %v", err)
				}
				for _, s := range f.secrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error text %q contains %q", err, s)
					}
				}
				// Only a check of a verified claim names values, the
				// configured issuers among them; a fetch error never
				// names the JWKS address.
				var ce *CheckError
				if !errors.As(err, &ce) && strings.Contains(err.Error(), f.addr) {
					t.Errorf("error text %q names the issuer's address", err)
				}
				return
			}
			if claims == nil {
				t.Fatal("Verify returned nil claims and nil error")
			}
			if claims.Subject != "user-123" || !claims.HasScope("orders:read") || claims.Issuer == "" || len(claims.Audience) == 0 {
				t.Errorf("claims = %+v", claims)
			}
			if !claims.Expiry.Equal(vtEpoch.Add(time.Hour)) && c.name != "accept/expired within leeway" {
				t.Errorf("Expiry = %v", claims.Expiry)
			}
		})
	}
	if n := f.atkHits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests, want 0", n)
	}
}

// TestVerifyHeaderKeysNeverFetched checks the jku/x5u cases on their own,
// with a keyset whose on-demand refresh is not rate limited, so that every
// token gets the chance to trigger a fetch.
func TestVerifyHeaderKeysNeverFetched(t *testing.T) {
	f := newVTFixture(t)
	ks, err := NewRemoteKeyset(t.Context(), f.is.JWKSURL(), WithHTTPClient(f.is.HTTPClient()),
		WithKeysetLogger(vtDiscard), WithUnknownKeyRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	v := f.verifier(t, vtCase{keys: ks}, true)
	before := f.is.JWKSHits()
	for _, hdr := range []map[string]any{
		{"jku": f.atkSrv.URL + "/jwks"},
		{"jku": f.atkSrv.URL + "/jwks", "kid": nil},
		{"x5u": f.atkSrv.URL + "/cert.pem"},
		{"x5u": f.atkSrv.URL + "/cert.pem", "kid": nil},
		{"jku": f.atkSrv.URL + "/jwks", "x5u": f.atkSrv.URL + "/cert.pem", "jwk": f.atk.Public()},
	} {
		_, err := v.Verify(t.Context(), testkit.Sign(f.atk, hdr, f.claims()))
		if !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrSignature) {
			t.Errorf("header %v: got %v, want ErrUnknownKey or ErrSignature", hdr, err)
		}
	}
	if n := f.atkHits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests, want 0", n)
	}
	if f.is.JWKSHits() == before {
		t.Errorf("the issuer's JWKS was not refetched for an unknown kid; the test proves nothing")
	}
}

func TestNewVerifierRequiresIssuerAndAudience(t *testing.T) {
	f := newVTFixture(t)
	for _, tc := range []struct {
		name string
		opts []VerifierOption
		ok   bool
	}{
		{"no options", nil, false},
		{"issuer only", []VerifierOption{WithIssuer(f.is.URL())}, false},
		{"audience only", []VerifierOption{WithAudience(vtAud)}, false},
		{"empty WithIssuer", []VerifierOption{WithIssuer(), WithAudience(vtAud)}, false},
		{"empty WithAudience", []VerifierOption{WithIssuer(f.is.URL()), WithAudience()}, false},
		{"both", []VerifierOption{WithIssuer(f.is.URL()), WithAudience(vtAud)}, true},
		{"skip issuer", []VerifierOption{InsecureSkipIssuerCheck(), WithAudience(vtAud)}, true},
		{"skip audience", []VerifierOption{WithIssuer(f.is.URL()), InsecureSkipAudienceCheck()}, true},
		{"skip both", []VerifierOption{InsecureSkipIssuerCheck(), InsecureSkipAudienceCheck()}, true},
		{"skip issuer, no audience", []VerifierOption{InsecureSkipIssuerCheck()}, false},
		{"skip audience, no issuer", []VerifierOption{InsecureSkipAudienceCheck()}, false},
		{"nil option ignored", []VerifierOption{nil, WithIssuer(f.is.URL()), WithAudience(vtAud)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(f.static, tc.opts...)
			if (err == nil) != tc.ok {
				t.Fatalf("NewVerifier: got error %v, want ok=%v", err, tc.ok)
			}
			if (v != nil) != tc.ok {
				t.Errorf("NewVerifier returned %v with error %v", v, err)
			}
		})
	}
	if _, err := NewVerifier(nil, WithIssuer("x"), WithAudience("y")); err == nil {
		t.Error("NewVerifier(nil keyset): got no error")
	}

	// The insecure options really do skip the check, and only that check.
	tok := f.tok(vtSet("iss", "https://any.example"), vtSet("aud", "https://any.example/api"))
	v := f.verifier(t, vtCase{opts: []VerifierOption{InsecureSkipIssuerCheck(), InsecureSkipAudienceCheck()}}, false)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("skip both: %v", err)
	}
	v = f.verifier(t, vtCase{opts: []VerifierOption{InsecureSkipIssuerCheck(), WithAudience(vtAud)}}, false)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrAudience) {
		t.Errorf("skip issuer only: got %v, want ErrAudience", err)
	}
	v = f.verifier(t, vtCase{opts: []VerifierOption{WithIssuer(f.is.URL()), InsecureSkipAudienceCheck()}}, false)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrIssuer) {
		t.Errorf("skip audience only: got %v, want ErrIssuer", err)
	}
	if got := f.verifier(t, vtCase{opts: f.opts(WithAudience("https://b.example"))}, false).Audiences(); !slices.Equal(got, []string{vtAud, "https://b.example"}) {
		t.Errorf("Audiences() = %q", got)
	}
}

func TestNewVerifierInvalidOptions(t *testing.T) {
	f := newVTFixture(t)
	for _, tc := range []struct {
		name string
		opt  VerifierOption
	}{
		{"leeway one hour", WithLeeway(time.Hour)},
		{"leeway negative", WithLeeway(-time.Second)},
		{"HS256", WithAlgorithms("HS256")},
		{"HS512 among valid", WithAlgorithms("RS256", "HS512")},
		{"none", WithAlgorithms("none")},
		{"None", WithAlgorithms("None")},
		{"lower-case alg", WithAlgorithms("rs256")},
		{"no algorithm", WithAlgorithms()},
		{"max token size 10", WithMaxTokenSize(10)},
		{"max token size 2 MiB", WithMaxTokenSize(2 << 20)},
		{"empty issuer", WithIssuer("")},
		{"empty audience", WithAudience("")},
		{"negative lifetime", WithMaxLifetime(-time.Minute)},
		{"no scope claim", WithScopeClaims()},
		{"negative cache", WithTokenCache(-1, 0, 0)},
		// A claim name that differs only in case from another the verifier
		// reads would refuse every token carrying the other.
		{"required Sub", WithRequiredClaims("Sub")},
		{"required Scope beside the scope claim", WithRequiredClaims("Scope")},
		{"scope claims scp and SCP", WithScopeClaims("scp", "SCP")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(f.static, append(f.opts(), tc.opt)...)
			if err == nil || v != nil {
				t.Errorf("NewVerifier: got (%v, %v), want an error", v, err)
			}
		})
	}
	// The same name twice is one claim, not a conflict.
	if _, err := NewVerifier(f.static, append(f.opts(), WithRequiredClaims("sub", "jti"), WithScopeClaims("scope", "scp"))...); err != nil {
		t.Errorf("NewVerifier with names the verifier reads anyway: %v", err)
	}
}

// TestVerifyErrorTexts plants a marker in each part of a token that an
// error could echo. A token whose signature does not verify, or whose
// claims are refused for their form, never has a value echoed; a signed
// token refused by a claim check is a CheckError that names that claim's
// value (and only that claim's) beside the accepted ones.
func TestVerifyErrorTexts(t *testing.T) {
	f := newVTFixture(t)
	const marker = "SECRET"
	evil := "https://evil.example/" + marker
	for _, tc := range []struct {
		name      string
		tok       string
		wantCheck string // "": no CheckError and no marker in the text
	}{
		{"iss", f.tok(vtSet("iss", evil)), "iss"},
		{"aud", f.tok(vtSet("aud", evil)), "aud"},
		{"aud array", f.tok(vtSet("aud", []string{evil, marker})), "aud"},
		{"expired sub", f.tok(vtSet("sub", marker), vtSet("exp", vtEpoch.Add(-time.Hour).Unix())), "exp"},
		{"kid", f.tokH(map[string]any{"kid": marker}), ""},
		{"alg", f.tokH(map[string]any{"alg": marker}), ""},
		{"typ", f.tokH(map[string]any{"typ": marker}), ""},
		{"cty", f.tokH(map[string]any{"cty": "JWT", "x": marker}), ""},
		{"crit", f.tokH(map[string]any{"crit": []string{marker}}), ""},
		{"jku", testkit.Sign(f.atk, map[string]any{"jku": evil}, f.claims()), ""},
		{"unsigned iss", testkit.Sign(f.atk, nil, f.claims(vtSet("iss", evil))), ""},
		{"exp string", f.tok(vtSet("exp", marker)), ""},
		{"iss number", f.tok(vtSet("iss", 1), vtSet("sub", marker)), ""},
		{"scope", f.tok(vtSet("scope", map[string]string{marker: marker})), ""},
		{"tampered", f.tok(vtSet("sub", marker)) + "A", ""},
		{"required claim", f.tok(vtSet("sub", marker), vtDel("jti")), ""},
	} {
		v := f.verifier(t, vtCase{opts: f.opts(WithRequiredClaims("jti"))}, true)
		_, err := v.Verify(t.Context(), tc.tok)
		if err == nil {
			t.Errorf("%s: token accepted", tc.name)
			continue
		}
		var ce *CheckError
		isCheck := errors.As(err, &ce)
		switch {
		case tc.wantCheck == "" && isCheck:
			t.Errorf("%s: got CheckError %v, want none", tc.name, err)
		case tc.wantCheck == "" && strings.Contains(err.Error(), marker):
			t.Errorf("%s: error text %q holds a value from the token", tc.name, err)
		case tc.wantCheck != "" && (!isCheck || ce.Check != tc.wantCheck):
			t.Errorf("%s: got %v, want a CheckError of %s", tc.name, err, tc.wantCheck)
		case tc.wantCheck != "" && tc.wantCheck != "exp" && !strings.Contains(ce.Got, marker):
			t.Errorf("%s: CheckError %v does not name the token's value", tc.name, err)
		case tc.wantCheck == "exp" && strings.Contains(err.Error(), marker):
			t.Errorf("%s: error text %q names another claim's value", tc.name, err)
		}
		for _, s := range f.secrets {
			if strings.Contains(err.Error(), s) && s != marker {
				t.Errorf("%s: error text %q holds %q", tc.name, err, s)
			}
		}
	}
}

func TestVerifyCacheRechecksExpiry(t *testing.T) {
	f := newVTFixture(t)
	v := f.verifier(t, vtCase{}, true)
	if v.cache == nil {
		t.Fatal("the default verifier has no token cache")
	}
	tok := f.tok()
	c1, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if v.cache.get(tok) == nil {
		t.Fatal("a verified token was not cached")
	}
	c2, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 {
		t.Error("the second Verify did not come from the cache")
	}
	f.clock.Set(vtEpoch.Add(time.Hour + 29*time.Second))
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("within the leeway after exp: %v", err)
	}
	f.clock.Set(vtEpoch.Add(time.Hour + 30*time.Second))
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrExpired) {
		t.Errorf("past exp: got %v, want ErrExpired", err)
	}
	// The entry's own check, which the cache's end time normally makes
	// unreachable, still rejects.
	e := v.cache.get(tok)
	if e == nil {
		t.Fatal("entry gone")
	}
	v.cache.put(&cacheEntry{claims: e.claims, token: e.token, hash: e.hash, key: e.key, until: vtEpoch.Add(24 * time.Hour)})
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrExpired) {
		t.Errorf("cache entry past exp: got %v, want ErrExpired", err)
	}
}

func TestVerifyCacheSkipsFailures(t *testing.T) {
	f := newVTFixture(t)
	v := f.verifier(t, vtCase{}, true)
	for name, tok := range map[string]string{
		"tampered":   f.tok() + "A",
		"expired":    f.tok(vtSet("exp", vtEpoch.Add(-time.Hour).Unix())),
		"future nbf": f.tok(vtSet("nbf", vtEpoch.Add(time.Hour).Unix())),
	} {
		_, err1 := v.Verify(t.Context(), tok)
		_, err2 := v.Verify(t.Context(), tok)
		if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
			t.Errorf("%s: got %v then %v, want the same error twice", name, err1, err2)
		}
		if v.cache.get(tok) != nil {
			t.Errorf("%s: a token that failed was cached", name)
		}
	}
	// The cache stores claims, not decisions: a genuine token for another
	// audience is cached (a method rule may accept that audience) and still
	// rejected by Verify on every call.
	wrongAud := f.tok(vtSet("aud", "https://other.example"))
	for range 2 {
		if _, err := v.Verify(t.Context(), wrongAud); !errors.Is(err, ErrAudience) {
			t.Errorf("wrong aud: got %v, want ErrAudience", err)
		}
	}
	// A token rejected for nbf at first is accepted (and cached) once valid.
	tok := f.tok(vtSet("nbf", vtEpoch.Add(time.Hour).Unix()))
	f.clock.Set(vtEpoch.Add(time.Hour))
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("after nbf: %v", err)
	}
	if v.cache.get(tok) == nil {
		t.Error("after nbf: not cached")
	}
}

func TestVerifyCacheOff(t *testing.T) {
	f := newVTFixture(t)
	v, err := NewVerifier(f.static, f.opts(WithClock(f.clock.Now), WithTokenCache(0, 0, 0))...)
	if err != nil {
		t.Fatal(err)
	}
	if v.cache != nil {
		t.Fatal("WithTokenCache(0, 0, 0) left a cache")
	}
	tok := f.tok()
	c1, err1 := v.Verify(t.Context(), tok)
	c2, err2 := v.Verify(t.Context(), tok)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if c1 == c2 {
		t.Error("two Verify calls without a cache returned the same *Claims")
	}
	if !reflect.DeepEqual(c1, c2) {
		t.Errorf("claims differ: %+v, %+v", c1, c2)
	}
	for _, opt := range []VerifierOption{WithTokenCache(100, 0, time.Minute), WithTokenCache(100, 8<<10, 0)} {
		v, err := NewVerifier(f.static, f.opts(opt)...)
		if err != nil {
			t.Fatal(err)
		}
		if v.cache != nil {
			t.Error("a zero token size or age left a cache")
		}
	}
}

func TestVerifyCacheLimits(t *testing.T) {
	f := newVTFixture(t)
	count := func(v *Verifier) int { return v.cache.len() }
	for _, entries := range []int{1, 3, 31, 33, 100} {
		v := f.verifier(t, vtCase{keys: f.static, opts: f.opts(WithTokenCache(entries, 8<<10, time.Hour))}, true)
		for i := range 3 * entries {
			if _, err := v.Verify(t.Context(), f.tok(vtSet("jti", fmt.Sprint(i)))); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(v); n > entries || n == 0 {
			t.Errorf("WithTokenCache(%d, ...): cache holds %d entries", entries, n)
		}
	}

	// Tokens larger than the cache's token size are verified, not cached.
	v := f.verifier(t, vtCase{keys: f.static, opts: f.opts(WithTokenCache(100, 600, time.Hour))}, true)
	big := f.tok(vtSet("pad", strings.Repeat("p", 600)))
	if _, err := v.Verify(t.Context(), big); err != nil {
		t.Fatal(err)
	}
	if v.cache.get(big) != nil {
		t.Error("a token over the cache's size bound was cached")
	}

	// An entry lives at most maxAge: past it the token is verified again.
	v = f.verifier(t, vtCase{keys: f.static, opts: f.opts(WithTokenCache(100, 8<<10, time.Minute))}, true)
	tok := f.tok()
	c1, _ := v.Verify(t.Context(), tok)
	c2, _ := v.Verify(t.Context(), tok)
	f.clock.Advance(2 * time.Minute)
	c3, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 || c2 == c3 {
		t.Errorf("cache hits: second call %v, after maxAge %v; want true, false", c1 == c2, c2 == c3)
	}
}

// TestVerifyCacheEvictsOldest checks that a full cache drops its oldest
// entry for a new token, that a token verified again takes no second
// place, and that the bound holds exactly.
func TestVerifyCacheEvictsOldest(t *testing.T) {
	f := newVTFixture(t)
	v := f.verifier(t, vtCase{keys: f.static, opts: f.opts(WithTokenCache(1, 8<<10, time.Hour))}, true)
	a, b := f.tok(vtSet("jti", "a")), f.tok(vtSet("jti", "b"))
	for _, tok := range []string{a, b} {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if v.cache.get(a) != nil || v.cache.get(b) == nil || v.cache.len() != 1 {
		t.Fatalf("after a then b in a one-entry cache: a cached %v, b cached %v, %d entries; want false, true, 1",
			v.cache.get(a) != nil, v.cache.get(b) != nil, v.cache.len())
	}
	e := v.cache.get(b)
	v.cache.put(e)
	v.cache.put(e)
	if v.cache.get(b) != e || v.cache.len() != 1 {
		t.Errorf("b put again: %d entries, want 1", v.cache.len())
	}

	// Many shards: each keeps its newest tokens and drops the older, and
	// the cache fills to its bound and no further.
	const entries = 64
	v = f.verifier(t, vtCase{keys: f.static, opts: f.opts(WithTokenCache(entries, 8<<10, time.Hour))}, true)
	inShard := map[*cacheShard][]string{}
	for i := range 10 * entries {
		tok := f.tok(vtSet("jti", fmt.Sprint(i)))
		s := v.cache.shard(v.cache.hash(tok))
		inShard[s] = append(inShard[s], tok)
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		if v.cache.get(tok) == nil {
			t.Fatalf("token %d is not in the cache right after it verified", i)
		}
		if n := v.cache.len(); n > entries {
			t.Fatalf("after %d tokens the cache holds %d entries, more than %d", i+1, n, entries)
		}
	}
	if n := v.cache.len(); n != entries {
		t.Errorf("after %d tokens the cache holds %d entries, want %d", 10*entries, n, entries)
	}
	for s, toks := range inShard {
		for i, tok := range toks {
			if want := i >= len(toks)-s.max; (v.cache.get(tok) != nil) != want {
				t.Errorf("the shard's token %d of %d (shard bound %d): cached %v, want %v", i+1, len(toks), s.max, !want, want)
			}
		}
	}
}

// TestVerifyCacheEntryObjects checks that a cached token holds three heap
// objects: its entry, one buffer for the token and its claims set, and the
// slice of its audiences and scopes. A full cache is live heap that every
// garbage collection marks object by object, so each one more per entry
// costs every RPC of a busy server.
func TestVerifyCacheEntryObjects(t *testing.T) {
	f := newVTFixture(t)
	const n = 1000
	v := f.verifier(t, vtCase{keys: f.static, opts: f.opts(WithTokenCache(n, 8<<10, time.Hour))}, true)
	toks := make([]string, n)
	for i := range toks {
		toks[i] = f.tok(vtSet("jti", fmt.Sprint(i)), vtSet("scope", "read write"))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tok := range toks {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := v.cache.len()
	// The shards' tables and rings add a few objects for the whole cache.
	if per := float64(int64(after.HeapObjects)-int64(before.HeapObjects)) / float64(held); held < n/2 || per > 3.25 {
		t.Errorf("%d cached tokens hold %.2f heap objects each, want at most 3.25", held, per)
	}
	// Until here, so that the collection above does not free the tokens,
	// which were allocated before the count began.
	runtime.KeepAlive(toks)
	runtime.KeepAlive(v)
}

// TestVerifyCacheCopiesToken checks that the cache keeps its own copy of a
// token given to Verify: a caller that passes a view of a buffer and then
// reuses the buffer (as zero-copy HTTP stacks do) changes neither the
// entry's key nor what a later token finds.
func TestVerifyCacheCopiesToken(t *testing.T) {
	f := newVTFixture(t)
	v := f.verifier(t, vtCase{}, true)
	tok := f.tok(vtSet("sub", "alice"))
	buf := []byte(tok)
	if _, err := v.Verify(t.Context(), unsafe.String(&buf[0], len(buf))); err != nil {
		t.Fatal(err)
	}
	e := v.cache.get(tok)
	if e == nil {
		t.Fatal("the token is not in the cache")
	}
	if unsafe.StringData(e.token) == &buf[0] {
		t.Fatal("the cache entry keeps the caller's buffer as its key")
	}
	// The buffer now holds another token of the same length: alice's
	// signature over a payload that names mallory.
	h, p, sig := vtSplit(tok)
	forged := h + "." + strings.Replace(p, p[8:12], "AAAA", 1) + "." + sig
	if len(forged) != len(tok) || forged == tok {
		t.Fatal("the forged token must differ from the token and have its length")
	}
	copy(buf, forged)
	if v.cache.get(forged) != nil {
		t.Fatal("a forged token finds the entry of the token whose buffer it overwrote")
	}
	if _, err := v.Verify(t.Context(), forged); !errors.Is(err, ErrSignature) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("forged token: %v, want a signature or format error", err)
	}
	if c, err := v.Verify(t.Context(), tok); err != nil || c.Subject != "alice" || v.cache.get(tok) != e {
		t.Fatalf("the token no longer finds its entry: %v", err)
	}
}

// TestVerifyCacheRetiredKey checks that a cached token stops verifying once
// its key leaves the keyset.
func TestVerifyCacheRetiredKey(t *testing.T) {
	f := newVTFixture(t)
	v := f.verifier(t, vtCase{}, true)
	old := f.tok()
	if _, err := v.Verify(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	next := f.is.Rotate()
	f.is.RetireOldKeys()
	// A token of the new key names an unknown kid: the keyset refetches and
	// the old key is gone.
	if _, err := v.Verify(t.Context(), testkit.Sign(next, nil, f.claims())); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err := v.Verify(t.Context(), old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("cached token of a retired key: got %v, want ErrUnknownKey", err)
	}
}

// TestVerifyCacheConsistency is a property: for every token of the table,
// a verifier with the cache and one without give the same outcome, call
// after call, before and after the tokens expire.
func TestVerifyCacheConsistency(t *testing.T) {
	f := newVTFixture(t)
	for _, c := range f.cases() {
		t.Run(c.name, func(t *testing.T) {
			f.clock.Set(vtEpoch)
			cached := f.verifier(t, c, true)
			plain := f.verifier(t, c, false)
			if cached.cache == nil || plain.cache != nil {
				t.Fatal("cache settings not applied")
			}
			for _, at := range []time.Time{vtEpoch, vtEpoch.Add(time.Hour + 29*time.Second), vtEpoch.Add(2 * time.Hour)} {
				f.clock.Set(at)
				for i := range 2 {
					cc, errC := cached.Verify(t.Context(), c.token)
					pc, errP := plain.Verify(t.Context(), c.token)
					sc, e1 := vtSentinel(errC)
					sp, e2 := vtSentinel(errP)
					if e1 != nil || e2 != nil {
						t.Fatal(e1, e2)
					}
					if sc != sp || (errC == nil) != (errP == nil) {
						t.Fatalf("at %v, call %d: cached %v, uncached %v", at.Sub(vtEpoch), i, errC, errP)
					}
					if errC == nil && !reflect.DeepEqual(cc, pc) {
						t.Fatalf("at %v, call %d: claims differ: %+v vs %+v", at.Sub(vtEpoch), i, cc, pc)
					}
					if at.Equal(vtEpoch) && !errors.Is(errC, c.wantErr) {
						t.Fatalf("at epoch: got %v, want %v", errC, c.wantErr)
					}
					if at.After(vtEpoch.Add(90*time.Minute)) && c.wantErr == nil && !errors.Is(errC, ErrExpired) {
						t.Fatalf("after expiry: an accepted token gave %v, want ErrExpired", errC)
					}
				}
			}
		})
	}
}

// TestVerifyConcurrent runs Verify from many goroutines on one verifier, for
// the race detector.
func TestVerifyConcurrent(t *testing.T) {
	f := newVTFixture(t)
	v := f.verifier(t, vtCase{opts: f.opts(WithTokenCache(8, 8<<10, time.Hour))}, true)
	toks := make([]string, 16)
	for i := range toks {
		toks[i] = f.tok(vtSet("jti", fmt.Sprint(i)))
	}
	bad := f.tok(vtSet("aud", "x"))
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for i := range 200 {
				if _, e := v.Verify(t.Context(), toks[(g+i)%len(toks)]); e != nil && err == nil {
					err = e
				}
				if _, e := v.Verify(t.Context(), bad); !errors.Is(e, ErrAudience) && err == nil {
					err = fmt.Errorf("bad token: %v", e)
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestVerifyRepeatedHeaderNames: a header that names a parameter twice is
// rejected whatever the values, so that no two parsers can read it apart
// (a signed header whose first "alg" is "none").
func TestVerifyRepeatedHeaderNames(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	ks, err := NewStaticKeyset(is.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(ks, WithIssuer(is.URL()), WithAudience("api"))
	if err != nil {
		t.Fatal(err)
	}
	k := is.SigningKey()
	payload, _ := json.Marshal(is.Claims("api"))
	enc := base64.RawURLEncoding.EncodeToString
	for _, hdr := range []string{
		`{"alg":"none","kid":"` + k.ID + `","alg":"ES256"}`,
		`{"alg":"ES256","kid":"` + k.ID + `","typ":"id+jwt","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"other","kid":"` + k.ID + `"}`,
	} {
		input := enc([]byte(hdr)) + "." + enc(payload)
		tok := input + "." + enc(testkit.SignBytes(k, []byte(input)))
		if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrMalformed) {
			t.Errorf("header %s: got %v, want ErrMalformed", hdr, err)
		}
	}
	// The same header without the repetition verifies: the signature is fine.
	input := enc([]byte(`{"alg":"ES256","kid":"`+k.ID+`"}`)) + "." + enc(payload)
	if _, err := v.Verify(t.Context(), input+"."+enc(testkit.SignBytes(k, []byte(input)))); err != nil {
		t.Errorf("control: %v", err)
	}
}
