package grpcjwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// The fuzz targets need seeds that are the same in every process: the fuzz
// coordinator sends its seeds to worker processes, which rebuild their own
// list of tokens that must verify. So the keys are fixed and every
// signature is deterministic: RS256 (PKCS #1 v1.5), EdDSA, and ECDSA signed
// with a nil random source, which Go turns into RFC 6979 nonces. PS256's
// random salt rules it out of the seeds (the unit tests cover it).

// fzRSAPEM is a 2048-bit RSA key for tests only. The PEM type is spelt
// "TESTING KEY" so that secret scanners do not flag it.
const fzRSAPEM = `-----BEGIN TESTING KEY-----
MIIEogIBAAKCAQEAzLjxkADDUMRtlwqnRbk2v5Gljo9PCa3v23nandkz2uJnveF0
PW3oBzejpdN+j7iH7RkjGyuakg+Zl9tULGC/g2XcG1EsNU5YclewKperkVVZzcU6
rLCEz+cYXX95A8QOcmATUtLAIpY7uYjUbx18gD+PM4HqQz8b0p5Qd9jTROUFukDU
cIAGvyT6JixsYW2MylZea5lq/cei16J6zKZdPtVK/lkDe/hprbAXylrNVUQKMAZz
hhjOLVkL2QhDbwZDGl9SmPdVKn5mYnRjwjviosxCUv1RxtaW4fzKO4HS0YF1sH5R
Qj8ep0Oo16PU0xM8Dn8YzEfkHqyEPH+fp+2HVQIDAQABAoIBABeBoNL9E3Ahrcer
BHvgAWZLrevJjrS40RKtUinPt8GJP4ow6eznwr2ZaOPwfda4xHq36S0Ee7ILsoIa
P/b8gODwgC5uypmwTj2KzgKF+cAtQat72vnbJtTMXyLVMSr6hwIg//cBlegiwebS
zDmZ9CKxqZqrbx+bjnFHlku8jL2bLb9Fy97jH/qJm2wdlhTJ3PfEfWUNgGYSFQoC
eo/qqrxiqpsVrSyjslZmgLgnUFfOVmDuLc4Gc7DIlmOk/VpLOpt1ugtcmHPIAg5j
VDi3+2XFj3qX5FuR+LdLQdckJqJkzuBDHz1Ypq2AT569vxEj81w9qB5qsoC1HWSb
iCrqZJ0CgYEA8dzgeJcbh0AKOnJtIt5OuT+aJRjbCi3Bqst0pXxgaLw3FAaFqjfr
oP63q4ZVasOa5P7EHm7eGsWPxk0cmRX/JCws1d57449A3xIS1bbKbJswmfKbyU85
FtGpJtem3kbzK5C+WrRNUHMz0mbSj2aXe+Pm7zju6/BMHO7Ednx29vsCgYEA2LBQ
xdUBD/TlRVeE1Y87wGa6AdF4sKNOBPjWjXvpvShzlondEdAus9wngJ8Op9RZxT9B
oIGIaXja0fBeWMIhLvblG9Yvyi52hHoTj3jPdEThHi6qTapCfLiFrU9xkbHeKL+B
7X0+lnCEAviUHCCeTEEDUB4fAJH//NSoHgewae8CgYBCqyDQ/M4gxP1MyRfeQasv
kyGZUjWmo6A7xSNdLmCg3ijMg1O67Pktgqj8ReYrrMl4j+VdgjAE7ypHfiAA7rhK
r0aYmWBLBMTb+G5qrJ01vL1z4hUhM45IBPj8dPtRT/tdqeNeu06Ie4jwWVl3H89n
3hVdIbNyI+XHH+XVx08/mwKBgEuRGWoUgV1WM0p+XfW4EMdlS8LskSFQohm7yd7n
crkjzUOXaoAW0OKqiSAi2BKRTIksKS/XXIIjwnPqVoyvjrD5KycNB/eDQpOqmv2y
zO4oQzWqYnvZP3yNQRkSlnGPzQD64E25GsWOEYuTstsoSOwg1A3xozAoulQquUJX
vh8DAoGAEGyxGmMa3gd4fnKWYn2E6/Jo/KraotnesS1SWF14WtK5vSW46q6aH/OG
mKCd3tQHPu3iEH8OLfz3LI/XAGYchCsjjKhCbdv9kiiZJMc4roCq56G2h4XtgPpz
xS9qzI0nUoUlMCqoH3fjF8KDL9MNDafD4RyZAYvvGLYN8F61M2Q=
-----END TESTING KEY-----`

// fzNow is the fuzz verifier's clock; the seed tokens are valid at it.
var fzNow = time.Unix(1_900_000_000, 0).UTC()

const (
	fzIssuer = "https://issuer.fuzz.example"
	fzAud    = "https://api.fuzz.example"
)

// fzKeys returns the fixed keys: RS256, ES256, ES384, ES512 and EdDSA.
func fzKeys(tb testing.TB) []*testkit.Key {
	tb.Helper()
	block, _ := pem.Decode([]byte(fzRSAPEM))
	if block == nil {
		tb.Fatal("fuzz RSA key: no PEM block")
	}
	rsaKey, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("fuzz RSA key: %v", err)
	}
	scalar := func(label string, size int) []byte {
		h := sha512.Sum512([]byte(label))
		b := make([]byte, size)
		copy(b[max(0, size-len(h)):], h[:min(size, len(h))])
		return b
	}
	ec := func(curve elliptic.Curve, size int, label string) *ecdsa.PrivateKey {
		k, err := ecdsa.ParseRawPrivateKey(curve, scalar(label, size))
		if err != nil {
			tb.Fatalf("fuzz EC key %s: %v", label, err)
		}
		return k
	}
	seed := sha256.Sum256([]byte("grpcjwt fuzz ed25519"))
	return []*testkit.Key{
		{ID: "fz-rs256", Algorithm: "RS256", Signer: rsaKey},
		{ID: "fz-es256", Algorithm: "ES256", Signer: ec(elliptic.P256(), 32, "grpcjwt fuzz P-256")},
		{ID: "fz-es384", Algorithm: "ES384", Signer: ec(elliptic.P384(), 48, "grpcjwt fuzz P-384")},
		{ID: "fz-es512", Algorithm: "ES512", Signer: ec(elliptic.P521(), 66, "grpcjwt fuzz P-521")},
		{ID: "fz-eddsa", Algorithm: "EdDSA", Signer: ed25519.NewKeyFromSeed(seed[:])},
	}
}

// fzSign is testkit.Sign with deterministic ECDSA signatures.
func fzSign(tb testing.TB, k *testkit.Key, header map[string]any, claims any) string {
	h := map[string]any{"alg": k.Algorithm, "kid": k.ID, "typ": "at+jwt"}
	for name, v := range header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	var pb []byte
	if raw, ok := claims.([]byte); ok {
		pb = raw
	} else {
		pb = vtJSON(claims)
	}
	input := vtB64(vtJSON(h)) + "." + vtB64(pb)
	priv, ok := k.Signer.(*ecdsa.PrivateKey)
	if !ok {
		return input + "." + vtB64(testkit.SignBytes(k, []byte(input)))
	}
	hash := map[string]crypto.Hash{"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512}[k.Algorithm]
	d := hash.New()
	d.Write([]byte(input))
	der, err := priv.Sign(nil, d.Sum(nil), hash)
	if err != nil {
		tb.Fatalf("ecdsa sign: %v", err)
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		tb.Fatalf("ecdsa signature: %v", err)
	}
	size := (priv.Curve.Params().BitSize + 7) / 8
	sig := make([]byte, 2*size)
	rs.R.FillBytes(sig[:size])
	rs.S.FillBytes(sig[size:])
	return input + "." + vtB64(sig)
}

func fzClaims(mods ...vtMod) map[string]any {
	m := map[string]any{
		"iss":       fzIssuer,
		"sub":       "fuzz-user",
		"aud":       fzAud,
		"exp":       fzNow.Add(time.Hour).Unix(),
		"iat":       fzNow.Unix(),
		"nbf":       fzNow.Unix(),
		"jti":       "fuzz-jti",
		"client_id": "fuzz-client",
		"scope":     "read write",
	}
	for _, mod := range mods {
		mod(m)
	}
	return m
}

// fzJWKS is the JWK Set document of keys.
func fzJWKS(keys []*testkit.Key) []byte {
	var set []any
	for _, k := range keys {
		set = append(set, k.Public())
	}
	return vtJSON(map[string]any{"keys": set})
}

func FuzzVerify(f *testing.F) {
	keys := fzKeys(f)
	ks, err := NewStaticKeyset(fzJWKS(keys), WithKeysetLogger(vtDiscard))
	if err != nil {
		f.Fatal(err)
	}
	opts := []VerifierOption{WithIssuer(fzIssuer), WithAudience(fzAud), WithClock(func() time.Time { return fzNow })}
	plain, err := NewVerifier(ks, append(opts, WithTokenCache(0, 0, 0))...)
	if err != nil {
		f.Fatal(err)
	}
	cached, err := NewVerifier(ks, opts...)
	if err != nil {
		f.Fatal(err)
	}

	// Tokens that verify.
	var good []string
	for _, k := range keys {
		good = append(good,
			fzSign(f, k, nil, fzClaims()),
			fzSign(f, k, map[string]any{"kid": nil}, fzClaims(vtSet("aud", []string{"x", fzAud}))),
			fzSign(f, k, map[string]any{"typ": "JWT"}, fzClaims(vtSet("scope", []string{"a", "b"}), vtSet("tenant", "t"))),
		)
	}
	// Header keys are ignored: signed by a published key, this verifies.
	good = append(good, fzSign(f, keys[1], map[string]any{"jwk": keys[1].Public(), "jku": "https://evil.example/jwks"}, fzClaims()))
	if again := fzSign(f, keys[1], nil, fzClaims()); again != good[3] {
		f.Fatal("ES256 signatures are not deterministic; the fuzz seeds would differ between processes")
	}
	es := keys[1]
	// Tokens that must not verify.
	gh, gp, gs := vtSplit(good[3])
	bad := []string{
		"", ".", "..", "...", "....", "a.b", "a.b.c", "a.b.c.d", "a.b.c.d.e", "{}", `{"payload":""}`,
		strings.Repeat(".", 1000), strings.Repeat("A", 20000),
		good[3] + "\n", good[3] + "=", gh + "." + gp + "." + gs[:len(gs)-2], gh + "." + gp + ".",
		gh + "." + vtB64(vtJSON(fzClaims(vtSet("sub", "admin")))) + "." + gs,
		vtAssemble(map[string]any{"alg": "none", "kid": es.ID}, fzClaims(), nil),
		vtAssemble(map[string]any{"alg": "nOnE"}, fzClaims(), nil),
		vtHMAC("HS256", map[string]any{"kid": es.ID}, vtJSON(fzClaims()), fzJWKS(keys)),
		fzSign(f, es, map[string]any{"crit": []string{"exp"}}, fzClaims()),
		fzSign(f, es, map[string]any{"b64": false, "crit": []string{"b64"}}, fzClaims()),
		fzSign(f, es, map[string]any{"cty": "JWT"}, fzClaims()),
		fzSign(f, es, map[string]any{"typ": "id+jwt"}, fzClaims()),
		fzSign(f, es, map[string]any{"kid": keys[0].ID}, fzClaims()),
		fzSign(f, es, map[string]any{"kid": "unknown"}, fzClaims()),
		fzSign(f, es, map[string]any{"kid": "attacker", "jwk": es.Public(), "jku": "https://evil.example/jwks"}, fzClaims()),
		fzSign(f, es, nil, fzClaims(vtSet("iss", "https://evil.example"))),
		fzSign(f, es, nil, fzClaims(vtSet("aud", []string{}))),
		fzSign(f, es, nil, fzClaims(vtDel("exp"))),
		fzSign(f, es, nil, fzClaims(vtSet("exp", fzNow.Add(-time.Hour).Unix()))),
		fzSign(f, es, nil, fzClaims(vtSet("nbf", fzNow.Add(time.Hour).Unix()))),
		fzSign(f, es, nil, fzClaims(vtSet("exp", "soon"))),
		fzSign(f, es, nil, fzClaims(vtSet("scope", 1))),
		fzSign(f, es, nil, []byte("{\"iss\":\""+fzIssuer+"\",\"aud\":\""+fzAud+"\",\"exp\":1e400}")),
		fzSign(f, es, nil, []byte("{\"iss\":\"\xff\"}")),
		fzSign(f, keys[4], map[string]any{"alg": "ES256"}, fzClaims()),
		fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, gp, gh, gs),
	}

	// valid maps each seed that verifies to its claims.
	valid := map[string]*Claims{}
	for _, tok := range good {
		c, err := plain.Verify(context.Background(), tok)
		if err != nil {
			f.Fatalf("seed token does not verify: %v", err)
		}
		valid[tok] = c
		f.Add(tok)
	}
	for _, tok := range bad {
		if _, err := plain.Verify(context.Background(), tok); err == nil {
			f.Fatalf("bad seed %q verifies", tok)
		}
		f.Add(tok)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		// Verify caps the size before parsing; this only keeps the corpus
		// from growing huge inputs that the cap rejects at once anyway.
		if len(raw) > 1<<16 {
			return
		}
		ctx := context.Background()
		c1, err1 := plain.Verify(ctx, raw)
		c2, err2 := cached.Verify(ctx, raw)
		s1, e1 := vtSentinel(err1)
		s2, e2 := vtSentinel(err2)
		if e1 != nil || e2 != nil {
			t.Fatal(e1, e2)
		}
		if s1 != s2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("uncached %v, cached %v", err1, err2)
		}
		if err1 != nil {
			if c1 != nil || c2 != nil {
				t.Fatalf("claims returned with error %v", err1)
			}
			return
		}
		want, ok := valid[raw]
		if !ok {
			t.Fatalf("accepted a token that is not a seed: %q", raw)
		}
		if !reflect.DeepEqual(c1, want) || !reflect.DeepEqual(c2, want) {
			t.Fatalf("claims %+v / %+v, want %+v", c1, c2, want)
		}
	})
}

func FuzzParseKeySet(f *testing.F) {
	keys := fzKeys(f)
	// One public JWK per algorithm of testkit.Algorithms; the RSA key
	// serves all six RSA algorithms.
	var jwks []map[string]any
	for _, alg := range testkit.Algorithms {
		var signer crypto.Signer
		switch alg[:2] {
		case "RS", "PS":
			signer = keys[0].Signer
		case "ES":
			signer = map[string]crypto.Signer{"ES256": keys[1].Signer, "ES384": keys[2].Signer, "ES512": keys[3].Signer}[alg]
		default:
			signer = keys[4].Signer
		}
		k := &testkit.Key{ID: "kid-" + alg, Algorithm: alg, Signer: signer}
		var m map[string]any
		if err := json.Unmarshal(vtJSON(k.Public()), &m); err != nil {
			f.Fatal(err)
		}
		jwks = append(jwks, m)
		f.Add(vtJSON(map[string]any{"keys": []any{m}}))
	}
	f.Add(vtJSON(map[string]any{"keys": jwks}))
	f.Add(fzJWKS(keys))
	variant := func(i int, mod func(map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range jwks[i] {
			m[k] = v
		}
		mod(m)
		return vtJSON(map[string]any{"keys": []any{m, jwks[6]}})
	}
	f.Add(variant(0, func(m map[string]any) { delete(m, "alg") }))
	f.Add(variant(0, func(m map[string]any) { m["alg"] = "ES256" }))
	f.Add(variant(0, func(m map[string]any) { m["use"] = "enc" }))
	f.Add(variant(0, func(m map[string]any) { m["key_ops"] = []string{"verify"} }))
	f.Add(variant(0, func(m map[string]any) { m["d"] = "AQAB" }))
	f.Add(variant(6, func(m map[string]any) { m["crv"] = "P-384" }))
	f.Add(variant(6, func(m map[string]any) { m["kid"] = 5 }))
	f.Add(variant(9, func(m map[string]any) { m["crv"] = "X25519" }))
	f.Add(variant(9, func(m map[string]any) { m["alg"] = "Ed25519" }))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[null,1,"x",[]]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))

	rsaAlgs := setOf(algRS256, algRS384, algRS512, algPS256, algPS384, algPS512)
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 1<<16 {
			return
		}
		snap, err := parseKeySet(doc, 100)
		if err != nil {
			if snap != nil {
				t.Fatal("snapshot returned with an error")
			}
			return
		}
		if len(snap.all) == 0 {
			t.Fatal("a keyset without keys was accepted")
		}
		for _, k := range snap.all {
			if k.algs == 0 || k.algs&^allAlgs != 0 {
				t.Fatalf("key %q: algs %b", k.kid, k.algs)
			}
			if k.thumbprint == "" {
				t.Fatalf("key %q: no thumbprint", k.kid)
			}
			switch pub := k.pub.(type) {
			case *rsa.PublicKey:
				if k.algs&^rsaAlgs != 0 || pub.N.BitLen() < minRSABits {
					t.Fatalf("RSA key %q of %d bits: algs %b", k.kid, pub.N.BitLen(), k.algs)
				}
			case *ecdsa.PublicKey:
				want := map[elliptic.Curve]algSet{
					elliptic.P256(): setOf(algES256), elliptic.P384(): setOf(algES384), elliptic.P521(): setOf(algES512),
				}[pub.Curve]
				if want == 0 || k.algs != want {
					t.Fatalf("EC key %q: algs %b for curve %v", k.kid, k.algs, pub.Curve.Params().Name)
				}
			case ed25519.PublicKey:
				if k.algs == 0 || k.algs&^setOf(algEdDSA, algEd25519) != 0 || len(pub) != ed25519.PublicKeySize {
					t.Fatalf("Ed25519 key %q: algs %b, %d bytes", k.kid, k.algs, len(pub))
				}
			default:
				t.Fatalf("key %q of type %T", k.kid, k.pub)
			}
			found := false
			for _, o := range snap.byKID[k.kid] {
				if o == k {
					found = true
				} else if o.algs&k.algs != 0 {
					t.Fatalf("kid %q: two keys for one algorithm", k.kid)
				}
			}
			if !found {
				t.Fatalf("key %q missing from byKID", k.kid)
			}
		}
	})
}

// fzNoNetwork is a transport that records each request's URL and fails it,
// as an unreachable host does.
type fzNoNetwork struct {
	mu   sync.Mutex
	urls []*url.URL
}

func (t *fzNoNetwork) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.urls = append(t.urls, r.URL)
	t.mu.Unlock()
	return nil, errors.New("no network in this test")
}

// FuzzConfigURL gives Discover, NewIssuerKeyset and NewRemoteKeyset
// arbitrary URLs: each returns an error, never panics, and requests only
// absolute http or https URLs.
func FuzzConfigURL(f *testing.F) {
	for _, s := range []string{
		"https://idp.example", "https://idp.example/", "http://127.0.0.1:8080/realms/r",
		"https://idp.example/.well-known/openid-configuration",
		"https://idp.example/t/%2Ewell-known/openid-configuration",
		"https://idp.example/t/.well-known%2Fopenid-configuration",
		"https://idp.example/.well-known/oauth-authorization-server/t",
		"https://user:pass@idp.example/x?y=1#z", "https://[::1]:443/", "https:///x", "//idp.example",
		"https://idp.example/%zz", "https://idp.example/a b", "HTTPS://IDP.EXAMPLE/", "", "http://:", "https://:443/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rt := &fzNoNetwork{}
		opts := []KeysetOption{WithHTTPClient(&http.Client{Transport: rt}), WithKeysetLogger(slog.New(slog.DiscardHandler))}
		if _, err := Discover(t.Context(), s, opts...); err == nil {
			t.Fatalf("Discover(%q) succeeded without a network", s)
		}
		if ks, err := NewIssuerKeyset(t.Context(), s, opts...); err == nil {
			ks.Close()
			t.Fatalf("NewIssuerKeyset(%q) succeeded without a network", s)
		}
		if ks, err := NewRemoteKeyset(t.Context(), s, opts...); err == nil {
			ks.Close()
			t.Fatalf("NewRemoteKeyset(%q) succeeded without a network", s)
		}
		rt.mu.Lock()
		defer rt.mu.Unlock()
		for _, u := range rt.urls {
			if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("a request to %q, from %q", u, s)
			}
		}
	})
}
