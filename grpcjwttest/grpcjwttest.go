// Package grpcjwttest provides an in-process token issuer and gRPC test
// helpers for testing services protected by grpcjwt, in the manner of
// net/http/httptest.
//
// An [Issuer] serves a JWK Set and OpenID Connect discovery over
// httptest, mints signed access tokens, rotates its keys and can be told to
// make its JWKS endpoint fail. [NewVerifier] returns a grpcjwt verifier
// that trusts it, in one call. The helpers panic, or fail the test, instead
// of returning errors: they are meant for tests, where a failure to sign is
// a bug in the test.
package grpcjwttest

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"google.golang.org/grpc"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// Algorithms lists the signing algorithms an Issuer supports, which are the
// ones grpcjwt verifies. "Ed25519" is EdDSA with Ed25519 by its
// fully-specified name (RFC 9864).
var Algorithms = append([]string(nil), testkit.Algorithms...)

// Failure is how the issuer's JWKS endpoint misbehaves; see [Issuer.SetFailure].
type Failure = testkit.Failure

const (
	// FailNone serves the JWK Set normally.
	FailNone = testkit.FailNone
	// Fail500 answers HTTP 500.
	Fail500 = testkit.Fail500
	// FailHang holds the request open until the client gives up or the
	// issuer is closed.
	FailHang = testkit.FailHang
	// FailGarbage answers HTTP 200 with a body that is not JSON.
	FailGarbage = testkit.FailGarbage
	// FailEmpty answers HTTP 200 with a JWK Set holding no keys.
	FailEmpty = testkit.FailEmpty
	// FailHuge answers HTTP 200 with a body of 4 MiB.
	FailHuge = testkit.FailHuge
)

// Key is one signing key of an Issuer: its "kid" (ID), the JWA name it
// signs with (Algorithm) and the private key (Signer). Its Public method
// returns the public JWK, with "kid", "alg" and "use": "sig".
type Key = testkit.Key

// An Option configures [NewIssuer].
type Option = testkit.Option

// WithAlgorithm sets the signing algorithm (one of [Algorithms]). The
// default is ES256.
func WithAlgorithm(alg string) Option { return testkit.WithAlgorithm(alg) }

// WithPath serves the issuer under a path, as Logto's
// "https://tenant.example/oidc" issuers are. The default is the root.
func WithPath(path string) Option { return testkit.WithPath(path) }

// WithCacheControl sets the Cache-Control header of JWKS responses. The
// default sends none.
func WithCacheControl(v string) Option { return testkit.WithCacheControl(v) }

// Issuer is an in-process OpenID Connect issuer for tests: discovery at
// URL() + "/.well-known/openid-configuration", its JWK Set at JWKSURL().
// Create it with [NewIssuer] and stop it with Close. It is safe for
// concurrent use.
type Issuer struct {
	is *testkit.Issuer
}

// NewIssuer starts an issuer with one fresh signing key.
func NewIssuer(opts ...Option) *Issuer { return &Issuer{testkit.NewIssuer(opts...)} }

// Close stops the server; requests held by [FailHang] are released first.
func (is *Issuer) Close() { is.is.Close() }

// URL returns the issuer identifier, the value of "iss" in its tokens.
func (is *Issuer) URL() string { return is.is.URL() }

// JWKSURL returns the URL of the JWK Set.
func (is *Issuer) JWKSURL() string { return is.is.JWKSURL() }

// JWKSHits returns how many JWK Set requests the issuer has received.
func (is *Issuer) JWKSHits() int { return is.is.JWKSHits() }

// HTTPClient returns a client for the issuer's server.
func (is *Issuer) HTTPClient() *http.Client { return is.is.HTTPClient() }

// SigningKey returns the key that signs new tokens.
func (is *Issuer) SigningKey() *Key { return is.is.SigningKey() }

// Keys returns the published keys, oldest first.
func (is *Issuer) Keys() []*Key { return is.is.Keys() }

// JWKS returns the JWK Set document the issuer serves.
func (is *Issuer) JWKS() []byte { return is.is.JWKS() }

// Rotate publishes a new key of the issuer's algorithm beside the old ones
// and signs new tokens with it (rotation with a grace period). It returns
// the new key.
func (is *Issuer) Rotate() *Key { return is.is.Rotate() }

// RetireOldKeys unpublishes every key but the signing one.
func (is *Issuer) RetireOldKeys() { is.is.RetireOldKeys() }

// AddKey publishes an extra key of the given algorithm that signs nothing
// until it is used with [Issuer.MintWith].
func (is *Issuer) AddKey(alg string) *Key { return is.is.AddKey(alg) }

// SetFailure makes the JWKS endpoint misbehave until set back to FailNone.
func (is *Issuer) SetFailure(f Failure) { is.is.SetFailure(f) }

// Claims returns a typical access token's claims from this issuer: "iss",
// "sub", "aud", "client_id", "iat", "exp" one hour from now, "jti" and, if
// scopes are given, "scope". Change the map to build other tokens.
func (is *Issuer) Claims(audience string, scopes ...string) map[string]any {
	return is.is.Claims(audience, scopes...)
}

// Mint signs claims (any value that encodes to a JSON object, or its JSON
// as a []byte) with the current signing key, with header {"alg", "kid",
// "typ": "at+jwt"}.
func (is *Issuer) Mint(claims any) string { return is.is.Mint(claims) }

// MintWith signs claims with key k. header holds extra or replacement header
// members ("alg", "kid" and "typ" default to the key's algorithm, its ID and
// "at+jwt"; a nil value removes a member), for building tokens that must be
// rejected.
func (is *Issuer) MintWith(k *Key, header map[string]any, claims any) string {
	return is.is.MintWith(k, header, claims)
}

// NewKey generates a key for alg that no issuer publishes, for signing
// tokens that must not verify.
func NewKey(alg string) *Key { return testkit.NewKey(alg) }

// Sign builds a compact JWS of claims signed by k; see [Issuer.MintWith] for
// header. The signature always uses k's own algorithm, whatever "alg" says.
func Sign(k *Key, header map[string]any, claims any) string { return testkit.Sign(k, header, claims) }

// SignBytes signs data with k as JWS does for k's algorithm (for ECDSA the
// fixed-size R||S form of RFC 7518 §3.4).
func SignBytes(k *Key, data []byte) []byte { return testkit.SignBytes(k, data) }

// Serve starts srv on an in-memory bufconn listener and returns a client
// connection to it. Both are stopped when tb's test ends. Register services
// on srv before calling Serve.
func Serve(tb testing.TB, srv *grpc.Server, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	return testkit.Serve(tb, srv, opts...)
}

// WithBearer returns ctx with outgoing metadata "authorization: Bearer
// token", as a client sends it.
func WithBearer(ctx context.Context, token string) context.Context {
	return testkit.WithBearer(ctx, token)
}

// NewVerifier returns a verifier that trusts is: a remote keyset on its
// JWK Set (fetched at once, through is's HTTP client, closed when tb's test
// ends, logging nothing), its issuer, and audience. opts are applied after
// those: WithScopeClaims, WithClock, WithLeeway and the like; a further
// WithAudience or WithIssuer adds to the list. It fails tb on any error.
func NewVerifier(tb testing.TB, is *Issuer, audience string, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	tb.Helper()
	ks, err := grpcjwt.NewRemoteKeyset(context.Background(), is.JWKSURL(),
		grpcjwt.WithHTTPClient(is.HTTPClient()), grpcjwt.WithKeysetLogger(slogDiscard))
	if err != nil {
		tb.Fatalf("grpcjwttest: NewVerifier: %v", err)
	}
	tb.Cleanup(func() { ks.Close() })
	opts = append([]grpcjwt.VerifierOption{grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(audience)}, opts...)
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		tb.Fatalf("grpcjwttest: NewVerifier: %v", err)
	}
	return v
}

var slogDiscard = slog.New(slog.DiscardHandler)
