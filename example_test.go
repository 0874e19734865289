package grpcjwt_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// This example verifies an access token against the keys an issuer
// publishes. grpcjwttest.NewIssuer stands in for the identity provider; in
// production, pass the provider's jwks_uri and issuer identifier.
func ExampleNewVerifier() {
	ctx := context.Background()
	issuer := grpcjwttest.NewIssuer()
	defer issuer.Close()

	keys, err := grpcjwt.NewRemoteKeyset(ctx, issuer.JWKSURL(), grpcjwt.WithHTTPClient(issuer.HTTPClient()))
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()

	verifier, err := grpcjwt.NewVerifier(keys,
		grpcjwt.WithIssuer(issuer.URL()),
		grpcjwt.WithAudience("https://api.example.com"),
	)
	if err != nil {
		log.Fatal(err)
	}

	token := issuer.Mint(issuer.Claims("https://api.example.com", "orders:read", "orders:write"))
	claims, err := verifier.Verify(ctx, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("subject:", claims.Subject)
	fmt.Println("scopes:", claims.Scopes)
	fmt.Println("may write orders:", claims.HasScope("orders:write"))

	// A token minted for another API is refused.
	other := issuer.Mint(issuer.Claims("https://billing.example.com"))
	_, err = verifier.Verify(ctx, other)
	fmt.Println("other audience refused:", errors.Is(err, grpcjwt.ErrAudience))

	// Output:
	// subject: user-123
	// scopes: [orders:read orders:write]
	// may write orders: true
	// other audience refused: true
}

// This example reads claims that Claims does not name into a struct of
// the caller's.
func ExampleClaims_Decode() {
	ctx := context.Background()
	issuer := grpcjwttest.NewIssuer()
	defer issuer.Close()
	keys, err := grpcjwt.NewStaticKeyset(issuer.JWKS())
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := grpcjwt.NewVerifier(keys, grpcjwt.WithIssuer(issuer.URL()), grpcjwt.WithAudience("orders"))
	if err != nil {
		log.Fatal(err)
	}

	c := issuer.Claims("orders")
	c["tenant"] = "acme"
	c["roles"] = []string{"admin", "support"}
	claims, err := verifier.Verify(ctx, issuer.Mint(c))
	if err != nil {
		log.Fatal(err)
	}

	var custom struct {
		Tenant string   `json:"tenant"`
		Roles  []string `json:"roles"`
	}
	if err := claims.Decode(&custom); err != nil {
		log.Fatal(err)
	}
	fmt.Println("tenant:", custom.Tenant)
	fmt.Println("roles:", custom.Roles)

	var email string
	err = claims.DecodeClaim("email", &email)
	fmt.Println("email present:", !errors.Is(err, grpcjwt.ErrMissingClaim))

	// Output:
	// tenant: acme
	// roles: [admin support]
	// email present: false
}

// This example attaches claims to a context, as the interceptors do before
// calling a handler, and reads them back as a handler does. Handler tests
// can call handlers this way without minting a token.
func ExampleClaimsFromContext() {
	handler := func(ctx context.Context) string {
		claims, ok := grpcjwt.ClaimsFromContext(ctx)
		if !ok {
			return "anonymous"
		}
		return claims.Subject + " " + fmt.Sprint(claims.Scopes)
	}

	ctx := grpcjwt.ContextWithClaims(context.Background(), &grpcjwt.Claims{
		Subject: "user-42",
		Scopes:  []string{"orders:read"},
	})
	fmt.Println(handler(ctx))
	fmt.Println(handler(context.Background()))

	// Output:
	// user-42 [orders:read]
	// anonymous
}

// This example builds a keyset from a JWK Set document held locally, for
// tests or for deployments that cannot reach the issuer. Such a keyset
// never refreshes.
func ExampleNewStaticKeyset() {
	issuer := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("EdDSA"))
	defer issuer.Close()
	jwks := issuer.JWKS() // in production: read from a file or a config map

	keys, err := grpcjwt.NewStaticKeyset(jwks, grpcjwt.WithKeysetLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := grpcjwt.NewVerifier(keys,
		grpcjwt.WithIssuer(issuer.URL()),
		grpcjwt.WithAudience("orders"),
		grpcjwt.WithAlgorithms("EdDSA"),
	)
	if err != nil {
		log.Fatal(err)
	}

	claims, err := verifier.Verify(context.Background(), issuer.Mint(issuer.Claims("orders")))
	fmt.Println(claims.Subject, err)

	// A key the document does not hold is unknown; a static keyset never
	// fetches to look for it.
	stranger := grpcjwttest.NewKey("EdDSA")
	_, err = verifier.Verify(context.Background(), grpcjwttest.Sign(stranger, nil, issuer.Claims("orders")))
	fmt.Println(errors.Is(err, grpcjwt.ErrUnknownKey))

	// Output:
	// user-123 <nil>
	// true
}
