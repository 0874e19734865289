package grpcjwt_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// Rules say, as data, what each method needs: audiences, issuers, scopes
// (all of, or any of) and claim values such as roles.
func ExampleParsePolicy() {
	policy, err := grpcjwt.ParsePolicy([]byte(`{"rules": {
		"/orders.v1.OrderService/ServerInfo":  {"public": true},
		"/orders.v1.OrderService/GetOrder":    {"any_scopes": ["read:orders", "admin"]},
		"/orders.v1.OrderService/DeleteOrder": {"claims": {"realm_access.roles": ["orders-admin"]}},
		"/orders.v1.OrderService/*":          {"scopes": ["write:orders"]}
	}}`))
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []string{"ServerInfo", "GetOrder", "DeleteOrder", "CreateOrder"} {
		key, rule := policy.Match("/orders.v1.OrderService/" + m)
		fmt.Printf("%-11s %s public=%v scopes=%v any=%v claims=%v\n", m, key, rule.Public, rule.Scopes, rule.AnyScopes, rule.Claims)
	}

	// A typo never relaxes a rule: names match exactly.
	_, err = grpcjwt.ParsePolicy([]byte(`{"rules": {"/orders.v1.OrderService/GetOrder": {"Public": true}}}`))
	fmt.Println(err)
	// Output:
	// ServerInfo  /orders.v1.OrderService/ServerInfo public=true scopes=[] any=[] claims=map[]
	// GetOrder    /orders.v1.OrderService/GetOrder public=false scopes=[] any=[read:orders admin] claims=map[]
	// DeleteOrder /orders.v1.OrderService/DeleteOrder public=false scopes=[] any=[] claims=map[realm_access.roles:[orders-admin]]
	// CreateOrder /orders.v1.OrderService/* public=false scopes=[write:orders] any=[] claims=map[]
	// grpcjwt: policy rule "/orders.v1.OrderService/GetOrder": unknown member "Public" (names match exactly: "public")
}

// PublicHealthAndReflection makes health checks and server reflection
// (grpcurl list) work without a token, beside the application's rules.
func ExamplePublicHealthAndReflection() {
	policy, err := grpcjwt.NewPolicy(grpcjwt.PublicHealthAndReflection(), map[string]grpcjwt.Rule{
		"/orders.v1.OrderService/CreateOrder": {Scopes: []string{"write:orders"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []string{"/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/orders.v1.OrderService/GetOrder"} {
		_, rule := policy.Match(m)
		fmt.Println(m, rule.Public)
	}
	// Output:
	// /grpc.health.v1.Health/Check true
	// /grpc.reflection.v1.ServerReflection/ServerReflectionInfo true
	// /orders.v1.OrderService/GetOrder false
}

// A refusal of a token whose signature verified names the check, the
// token's value and the accepted ones: what an operator needs to fix a
// configuration.
func ExampleCheckError() {
	issuer := grpcjwttest.NewIssuer()
	defer issuer.Close()
	keys, err := grpcjwt.NewStaticKeyset(issuer.JWKS())
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := grpcjwt.NewVerifier(keys, grpcjwt.WithIssuer(issuer.URL()), grpcjwt.WithAudience("orders-api"))
	if err != nil {
		log.Fatal(err)
	}
	// Keycloak's default audience, without an audience mapper.
	_, err = verifier.Verify(context.Background(), issuer.Mint(issuer.Claims("account")))
	var ce *grpcjwt.CheckError
	if errors.As(err, &ce) {
		fmt.Println(errors.Is(err, grpcjwt.ErrAudience), ce.Check, ce.Got, ce.Want)
	}
	// Output: true aud ["account"] one of ["orders-api"]
}

// WithClaimsCheck runs the application's own check after the rule. An
// error refuses the call with PermissionDenied, or with the code of a
// status error.
func ExampleWithClaimsCheck() {
	issuer := grpcjwttest.NewIssuer()
	defer issuer.Close()
	keys, err := grpcjwt.NewStaticKeyset(issuer.JWKS())
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := grpcjwt.NewVerifier(keys, grpcjwt.WithIssuer(issuer.URL()), grpcjwt.WithAudience("api"))
	if err != nil {
		log.Fatal(err)
	}
	suspended := map[string]bool{"tenant-9": true}
	authz := grpcjwt.NewAuthorizer(verifier, grpcjwt.WithClaimsCheck(func(ctx context.Context, method string, c *grpcjwt.Claims) error {
		var t struct{ Tenant string }
		if err := c.Decode(&t); err != nil || t.Tenant == "" {
			return errors.New("no tenant in the token")
		}
		if suspended[t.Tenant] {
			return status.Error(codes.FailedPrecondition, "tenant suspended")
		}
		return nil
	}))
	for _, tenant := range []string{"tenant-1", "tenant-9", ""} {
		claims := issuer.Claims("api")
		if tenant != "" {
			claims["tenant"] = tenant
		}
		_, _, err := authz.Authorize(context.Background(), grpcjwt.Call{
			Method:        "/orders.v1.OrderService/GetOrder",
			Authorization: []string{"Bearer " + issuer.Mint(claims)},
		})
		fmt.Printf("%q: %v\n", tenant, status.Code(err))
	}
	// Output:
	// "tenant-1": OK
	// "tenant-9": FailedPrecondition
	// "": PermissionDenied
}

// NewClaims gives a handler test the claims a token would carry, which
// Decode and DecodeClaim read.
func ExampleNewClaims() {
	claims, err := grpcjwt.NewClaims([]byte(`{"sub":"user-1","scope":"orders:read","realm_access":{"roles":["admin"]}}`))
	if err != nil {
		log.Fatal(err)
	}
	ctx := grpcjwt.ContextWithClaims(context.Background(), claims)

	// In the handler:
	c, _ := grpcjwt.ClaimsFromContext(ctx)
	var access struct{ Roles []string }
	err = c.DecodeClaim("realm_access", &access)
	fmt.Println(c.Subject, c.Scopes, access.Roles, err)
	// Output: user-1 [orders:read] [admin] <nil>
}
