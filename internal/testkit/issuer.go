// Package testkit is the implementation of grpcjwttest: an in-process
// token issuer and gRPC test helpers. It lives here, apart from
// grpcjwttest, because grpcjwttest imports grpcjwt (for its verifier
// helper) while the grpcjwt package's own internal tests need the issuer:
// importing grpcjwttest from them would be an import cycle. grpcjwttest
// documents every name; this package's comments are brief.
package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithms lists the signing algorithms an Issuer supports, which are the
// ones grpcjwt verifies. "Ed25519" is EdDSA with Ed25519 by its
// fully-specified name (RFC 9864).
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}

// Failure is how the issuer's JWKS endpoint misbehaves; see [Issuer.SetFailure].
type Failure int

const (
	// FailNone serves the JWK Set normally.
	FailNone Failure = iota
	// Fail500 answers HTTP 500.
	Fail500
	// FailHang holds the request open until the client gives up or the
	// issuer is closed.
	FailHang
	// FailGarbage answers HTTP 200 with a body that is not JSON.
	FailGarbage
	// FailEmpty answers HTTP 200 with a JWK Set holding no keys.
	FailEmpty
	// FailHuge answers HTTP 200 with a body of 4 MiB.
	FailHuge
)

// Key is one signing key of an Issuer.
type Key struct {
	// ID is the key's "kid".
	ID string
	// Algorithm is the JWA name the key signs with.
	Algorithm string
	// Signer is the private key.
	Signer crypto.Signer
}

// Public returns the key's public JWK, with "kid", "alg" and "use": "sig".
func (k *Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"}
}

// Issuer is an in-process OpenID Connect issuer for tests. Create it with
// [NewIssuer] and stop it with Close. It is safe for concurrent use.
type Issuer struct {
	srv  *httptest.Server
	path string

	mu       sync.Mutex
	keys     []*Key // published, in order; the last one signs
	alg      string
	failure  Failure
	cacheCtl string
	hangStop chan struct{}
	jwksHits atomic.Int64
}

// An Option configures [NewIssuer].
type Option func(*Issuer)

// WithAlgorithm sets the signing algorithm (one of [Algorithms]). The
// default is ES256.
func WithAlgorithm(alg string) Option { return func(is *Issuer) { is.alg = alg } }

// WithPath serves the issuer under a path, as Logto's
// "https://tenant.example/oidc" issuers are. The default is the root.
func WithPath(path string) Option {
	return func(is *Issuer) { is.path = "/" + strings.Trim(path, "/") }
}

// WithCacheControl sets the Cache-Control header of JWKS responses. The
// default sends none.
func WithCacheControl(v string) Option { return func(is *Issuer) { is.cacheCtl = v } }

// NewIssuer starts an issuer with one fresh signing key.
func NewIssuer(opts ...Option) *Issuer {
	is := &Issuer{alg: "ES256", hangStop: make(chan struct{})}
	for _, o := range opts {
		o(is)
	}
	if is.path == "/" {
		is.path = ""
	}
	is.keys = []*Key{is.newKey(is.alg)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+is.path+"/.well-known/openid-configuration", is.serveDiscovery)
	mux.HandleFunc("GET "+is.path+"/jwks", is.serveJWKS)
	is.srv = httptest.NewServer(mux)
	return is
}

// Close stops the server; requests held by [FailHang] are released first.
func (is *Issuer) Close() {
	is.mu.Lock()
	select {
	case <-is.hangStop:
	default:
		close(is.hangStop)
	}
	is.mu.Unlock()
	is.srv.Close()
}

// URL returns the issuer identifier, the value of "iss" in its tokens.
func (is *Issuer) URL() string { return is.srv.URL + is.path }

// JWKSURL returns the URL of the JWK Set.
func (is *Issuer) JWKSURL() string { return is.URL() + "/jwks" }

// JWKSHits returns how many JWK Set requests the issuer has received.
func (is *Issuer) JWKSHits() int { return int(is.jwksHits.Load()) }

// HTTPClient returns a client for the issuer's server.
func (is *Issuer) HTTPClient() *http.Client { return is.srv.Client() }

// SigningKey returns the key that signs new tokens.
func (is *Issuer) SigningKey() *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[len(is.keys)-1]
}

// Keys returns the published keys, oldest first.
func (is *Issuer) Keys() []*Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]*Key(nil), is.keys...)
}

// JWKS returns the JWK Set document the issuer serves.
func (is *Issuer) JWKS() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.jwksLocked()
}

func (is *Issuer) jwksLocked() []byte {
	var set jose.JSONWebKeySet
	for _, k := range is.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(fmt.Sprintf("grpcjwttest: marshal JWKS: %v", err))
	}
	return b
}

// Rotate publishes a new key of the issuer's algorithm beside the old ones
// and signs new tokens with it (rotation with a grace period). It returns
// the new key.
func (is *Issuer) Rotate() *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	k := is.newKey(is.alg)
	is.keys = append(is.keys, k)
	return k
}

// RetireOldKeys unpublishes every key but the signing one.
func (is *Issuer) RetireOldKeys() {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = is.keys[len(is.keys)-1:]
}

// AddKey publishes an extra key of the given algorithm that signs nothing
// until it is used with [Issuer.MintWith].
func (is *Issuer) AddKey(alg string) *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	k := is.newKey(alg)
	is.keys = append([]*Key{k}, is.keys...)
	return k
}

// SetFailure makes the JWKS endpoint misbehave until set back to FailNone.
func (is *Issuer) SetFailure(f Failure) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.failure = f
}

// NewKey generates a key for alg that the issuer does not publish, for
// signing tokens that must not verify.
func NewKey(alg string) *Key {
	var s crypto.Signer
	var err error
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		s, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA", "Ed25519":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		panic(fmt.Sprintf("grpcjwttest: unsupported algorithm %q", alg))
	}
	if err != nil {
		panic(fmt.Sprintf("grpcjwttest: generate %s key: %v", alg, err))
	}
	var id [8]byte
	rand.Read(id[:])
	return &Key{ID: fmt.Sprintf("%s-%x", strings.ToLower(alg), id), Algorithm: alg, Signer: s}
}

func (is *Issuer) newKey(alg string) *Key { return NewKey(alg) }

func (is *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	alg := is.alg
	is.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                is.URL(),
		"jwks_uri":                              is.JWKSURL(),
		"token_endpoint":                        is.URL() + "/token",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{alg},
		"grant_types_supported":                 []string{"client_credentials"},
	})
}

func (is *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	is.jwksHits.Add(1)
	is.mu.Lock()
	f, body, cc, stop := is.failure, is.jwksLocked(), is.cacheCtl, is.hangStop
	is.mu.Unlock()
	switch f {
	case Fail500:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case FailHang:
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		return
	case FailGarbage:
		body = []byte("<html>this is not a JWK Set</html>")
	case FailEmpty:
		body = []byte(`{"keys":[]}`)
	case FailHuge:
		body = []byte(`{"keys":[],"pad":"` + strings.Repeat("A", 4<<20) + `"}`)
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Write(body)
}

// Claims returns a typical access token's claims from this issuer: "iss",
// "sub", "aud", "client_id", "iat", "exp" one hour from now, "jti" and, if
// scopes are given, "scope". Change the map to build other tokens.
func (is *Issuer) Claims(audience string, scopes ...string) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss":       is.URL(),
		"sub":       "user-123",
		"aud":       audience,
		"client_id": "client-abc",
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"jti":       fmt.Sprintf("jti-%d", now.UnixNano()),
	}
	if len(scopes) > 0 {
		c["scope"] = strings.Join(scopes, " ")
	}
	return c
}

// Mint signs claims (any value that encodes to a JSON object) with the
// current signing key, with header {"alg", "kid", "typ": "at+jwt"}.
func (is *Issuer) Mint(claims any) string {
	return is.MintWith(is.SigningKey(), nil, claims)
}

// MintWith signs claims with key k. header holds extra or replacement header
// members ("alg", "kid" and "typ" default to the key's algorithm, its ID and
// "at+jwt"; a nil value removes a member), for building tokens that must be
// rejected.
func (is *Issuer) MintWith(k *Key, header map[string]any, claims any) string {
	return Sign(k, header, claims)
}

// Sign builds a compact JWS of claims signed by k; see [Issuer.MintWith] for
// header. The signature always uses k's own algorithm, whatever "alg" says.
func Sign(k *Key, header map[string]any, claims any) string {
	h := map[string]any{"alg": k.Algorithm, "kid": k.ID, "typ": "at+jwt"}
	for name, v := range header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		panic(fmt.Sprintf("grpcjwttest: marshal header: %v", err))
	}
	var pb []byte
	if raw, ok := claims.([]byte); ok {
		pb = raw
	} else if pb, err = json.Marshal(claims); err != nil {
		panic(fmt.Sprintf("grpcjwttest: marshal claims: %v", err))
	}
	input := b64(hb) + "." + b64(pb)
	return input + "." + b64(SignBytes(k, []byte(input)))
}

// SignBytes signs data with k as JWS does for k's algorithm (for ECDSA the
// fixed-size R||S form of RFC 7518 §3.4).
func SignBytes(k *Key, data []byte) []byte {
	switch k.Algorithm {
	case "EdDSA", "Ed25519":
		return ed25519.Sign(k.Signer.(ed25519.PrivateKey), data)
	}
	var h crypto.Hash
	switch k.Algorithm[2:] {
	case "256":
		h = crypto.SHA256
	case "384":
		h = crypto.SHA384
	default:
		h = crypto.SHA512
	}
	d := h.New()
	d.Write(data)
	digest := d.Sum(nil)
	var sig []byte
	var err error
	switch k.Algorithm[:2] {
	case "RS":
		sig, err = rsa.SignPKCS1v15(nil, k.Signer.(*rsa.PrivateKey), h, digest)
	case "PS":
		sig, err = rsa.SignPSS(rand.Reader, k.Signer.(*rsa.PrivateKey), h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		priv := k.Signer.(*ecdsa.PrivateKey)
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, priv, digest)
		if err == nil {
			size := (priv.Curve.Params().BitSize + 7) / 8
			sig = make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
		}
	}
	if err != nil {
		panic(fmt.Sprintf("grpcjwttest: sign: %v", err))
	}
	return sig
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
