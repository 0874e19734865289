package grpcjwt

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

func TestMultiIssuerVerifier(t *testing.T) {
	quiet := WithKeysetLogger(slog.New(slog.DiscardHandler))
	a := testkit.NewIssuer(testkit.WithAlgorithm("ES256"), testkit.WithPath("/tenant-a"))
	defer a.Close()
	b := testkit.NewIssuer(testkit.WithAlgorithm("RS256"), testkit.WithPath("/tenant-b"))
	defer b.Close()
	verifierFor := func(is *testkit.Issuer, aud string) *Verifier {
		ks, err := NewRemoteKeyset(t.Context(), is.JWKSURL(), quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ks.Close() })
		v, err := NewVerifier(ks, WithIssuer(is.URL()), WithAudience(aud))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	m, err := NewMultiIssuerVerifier(verifierFor(a, "api-a"), verifierFor(b, "api-b"))
	if err != nil {
		t.Fatal(err)
	}
	hitsA, hitsB := a.JWKSHits(), b.JWKSHits()

	// A token signed by A's key that claims to come from B.
	forged := b.Claims("api-b")
	cases := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"issuer A", a.Mint(a.Claims("api-a")), nil},
		{"issuer B", b.Mint(b.Claims("api-b")), nil},
		{"A's key claiming issuer B", a.Mint(forged), ErrUnknownKey},
		{"A's token for B's audience", a.Mint(a.Claims("api-b")), ErrAudience},
		{"unknown issuer", a.Mint(func() map[string]any { c := a.Claims("api-a"); c["iss"] = "https://evil.example"; return c }()), ErrIssuer},
		{"no iss", a.Mint(func() map[string]any { c := a.Claims("api-a"); delete(c, "iss"); return c }()), ErrIssuer},
		{"iss not a string", a.Mint(func() map[string]any { c := a.Claims("api-a"); c["iss"] = 7; return c }()), ErrMalformed},
		{"garbage", "a.b.c", ErrMalformed},
		{"one segment", "abc", ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := m.Verify(t.Context(), tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if c.Subject != "user-123" {
					t.Errorf("claims %+v", c)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	// The forged token made B's keyset look for A's kid (one rate-limited
	// refresh of B's own JWKS); the unknown issuer cost no request at all.
	if got := a.JWKSHits() - hitsA; got != 0 {
		t.Errorf("issuer A's JWKS got %d requests, want 0", got)
	}
	if got := b.JWKSHits() - hitsB; got > 2 {
		t.Errorf("issuer B's JWKS got %d requests, want at most 2", got)
	}

	for name, vs := range map[string][]*Verifier{
		"none":           nil,
		"nil":            {nil},
		"duplicate":      {verifierFor(a, "x"), verifierFor(a, "y")},
		"nested":         {m},
		"two issuers":    {func() *Verifier { v := verifierFor(a, "x"); v.o.issuers = append(v.o.issuers, "other"); return v }()},
		"issuer skipped": {func() *Verifier { v := verifierFor(a, "x"); v.o.skipIssuer = true; return v }()},
	} {
		if _, err := NewMultiIssuerVerifier(vs...); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// TestDecisionCacheHit: the decision hook reports whether the token came
// from the verified-token cache.
func TestDecisionCacheHit(t *testing.T) {
	is := testkit.NewIssuer()
	defer is.Close()
	var mu sync.Mutex
	var hits []bool
	c := obsClient(t, obsVerifier(t, is), WithDecisionHook(func(_ context.Context, d Decision) {
		mu.Lock()
		hits = append(hits, d.CacheHit)
		mu.Unlock()
	}))
	ctx := testkit.WithBearer(t.Context(), is.Mint(is.Claims("api")))
	for range 2 {
		if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 2 || hits[0] || !hits[1] {
		t.Errorf("cache hits %v, want [false true]", hits)
	}
}
