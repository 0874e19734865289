package grpcjwt_test

// Provider fixtures: for each identity provider the README's "Identity
// providers" table names, a JWK Set, a discovery document and access tokens
// shaped exactly as that provider publishes them (JOSE header members and
// their order, claim names and JSON types, JWK members), served over
// httptest, verified with the settings the table gives, through
// Verifier.Verify and through the gRPC interceptors on examples/orderpb.
// Where each shape comes from is cited above each provider's function.
//
// Every check is a subtest; TestProviderFixtures prints one summary line per
// provider ("keycloak: 11 passed, 0 failed"). For CI:
//
//	go test -count=1 -v -run '^TestProviderFixtures$' . | grep -E '^[a-z0-9-]+: [0-9]+ passed, [0-9]+ failed$'

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/examples/orderpb"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// TestProviderFixtures runs every provider's checks (providers in parallel,
// each provider's checks in order) and prints a summary line per provider.
func TestProviderFixtures(t *testing.T) {
	providers := []struct {
		name string
		run  func(*testing.T, *pfChecks)
	}{
		{"logto", pfLogto},
		{"auth0", pfAuth0},
		{"keycloak", pfKeycloak},
		{"okta", pfOkta},
		{"entra-v1", pfEntraV1},
		{"entra-v2", pfEntraV2},
		{"zitadel", pfZitadel},
		{"dex", pfDex},
	}
	results := make([]*pfChecks, len(providers))
	t.Run("providers", func(t *testing.T) {
		for i, p := range providers {
			results[i] = &pfChecks{}
			t.Run(p.name, func(t *testing.T) {
				t.Parallel()
				p.run(t, results[i])
			})
		}
	})
	for i, p := range providers {
		fmt.Printf("%s: %d passed, %d failed\n", p.name, results[i].passed, results[i].failed)
	}
}

// ---------------------------------------------------------------- Logto
//
// Shapes:
//   - Access token: logto-io/node-oidc-provider lib/models/formats/jwt.js
//     (Logto's fork of oidc-provider, https://github.com/logto-io/node-oidc-provider):
//     header {alg, typ: "at+jwt", kid}; claims in the order jti, sub, iat,
//     exp, scope (always present, "LOGTO PATCH(scope-always-present)", so an
//     empty string when nothing is granted), client_id, iss, aud (the
//     resource indicator, a string); sub falls back to client_id for
//     machine-to-machine tokens. Without a resource Logto issues an opaque
//     token (https://docs.logto.io/authorization/validate-access-tokens).
//   - Key: EC by default ("Logto uses EC (Elliptic Curve) algorithm by
//     default", logto-io/docs docs/recipes/signing-keys-rotation/README.md),
//     P-384, so ES384. JWK as logto-io/logto packages/core/src/utils/jwks.ts
//     exports it: jose's exportJWK members (kty, x, y, crv) plus kid, the
//     base64url SHA-256 of JSON.stringify({crv, kty, x, y}); no "use", no
//     "alg".
//   - Discovery: issuer https://<tenant>.logto.app/oidc, jwks_uri
//     https://<tenant>.logto.app/oidc/jwks (Logto docs, "Fetch from OpenID
//     Connect discovery endpoint").
func pfLogto(t *testing.T, c *pfChecks) {
	const api = "https://api.example.com"
	const clientID = "m9wpj7ef3c4m1y0wpj4r5"
	idp := pfNewIdP(t)
	k := grpcjwttest.NewKey("ES384")
	pt, err := k.Signer.Public().(*ecdsa.PublicKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	x, y := pfB64(pt[1:49]), pfB64(pt[49:])
	kid := pfB64(pfSHA256([]byte(`{"crv":"P-384","kty":"EC","x":"` + x + `","y":"` + y + `"}`)))
	idp.serve("/oidc/jwks", "application/json; charset=utf-8", "", pfO("keys", []any{
		pfO("kty", "EC", "x", x, "y", y, "crv", "P-384", "kid", kid),
	}))
	idp.serve("/oidc/.well-known/openid-configuration", "application/json; charset=utf-8", "", pfO(
		"authorization_endpoint", "{base}/oidc/auth",
		"device_authorization_endpoint", "{base}/oidc/device/auth",
		"claims_parameter_supported", false,
		"claims_supported", []string{"sub", "name", "picture", "username", "email", "email_verified", "phone_number", "phone_number_verified", "roles", "organizations", "organization_roles", "custom_data", "identities", "sid", "auth_time", "iss"},
		"code_challenge_methods_supported", []string{"S256"},
		"end_session_endpoint", "{base}/oidc/session/end",
		"grant_types_supported", []string{"implicit", "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"issuer", "{base}/oidc",
		"jwks_uri", "{base}/oidc/jwks",
		"response_modes_supported", []string{"form_post", "fragment", "query"},
		"response_types_supported", []string{"code id_token", "code", "id_token", "none"},
		"scopes_supported", []string{"openid", "offline_access", "profile", "email", "phone", "roles"},
		"subject_types_supported", []string{"public"},
		"token_endpoint", "{base}/oidc/token",
		"token_endpoint_auth_methods_supported", []string{"client_secret_basic", "client_secret_jwt", "client_secret_post", "private_key_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported", []string{"RS256", "PS256", "ES256", "ES384", "ES512"},
		"id_token_signing_alg_values_supported", []string{"RS256", "PS256", "ES256", "ES384", "ES512"},
		"userinfo_endpoint", "{base}/oidc/me",
	))
	iss := idp.base() + "/oidc"
	now := time.Now().Unix()
	header := `{"alg":"ES384","typ":"at+jwt","kid":"` + kid + `"}`
	user := pfO(
		"jti", "Nx8cH1bWq6zT0pLr3vYkA",
		"sub", "yq6zkh3mcp9w",
		"iat", now,
		"exp", now+3600,
		"scope", "read:orders write:orders",
		"client_id", clientID,
		"iss", iss,
		"aud", api,
	)
	token := pfSign(k, header, user)

	// README row: NewIssuerKeyset(issuer), WithAudience(resource indicator),
	// scopes in "scope" (the default).
	ks := pfIssuerKeyset(t, c, iss)
	v := pfVerifier(t, c, ks, grpcjwt.WithAudience(api))

	pfVerify(t, c, "verifies: ES384, typ at+jwt, JWK without use/alg", v, token, pfWant{
		sub: "yq6zkh3mcp9w", aud: []string{api}, scopes: []string{"read:orders", "write:orders"}, client: clientID,
	})
	pfVerify(t, c, "machine-to-machine: sub is the client_id", v,
		pfSign(k, header, user.with("sub", clientID)), pfWant{sub: clientID, aud: []string{api}, scopes: []string{"read:orders", "write:orders"}, client: clientID})
	pfVerify(t, c, `scope "" (nothing granted, the claim always present): no scopes`, v,
		pfSign(k, header, user.with("scope", "")), pfWant{sub: "yq6zkh3mcp9w", aud: []string{api}, client: clientID})
	pfVerify(t, c, "trap: no resource requested, an opaque token: ErrMalformed", v,
		"Vq9yPz3mKc7r1TfWb2Lx8nHd5sJ0aEgU4oYiNlQwXtC", pfWant{err: grpcjwt.ErrMalformed})
	pfVerify(t, c, "another resource's audience: ErrAudience", v,
		pfSign(k, header, user.with("aud", "https://billing.example.com")), pfWant{err: grpcjwt.ErrAudience})
	strict := pfVerifier(t, c, ks, grpcjwt.WithAudience(api), grpcjwt.WithStrictType())
	pfVerify(t, c, "WithStrictType accepts it (typ at+jwt)", strict, token, pfWant{
		sub: "yq6zkh3mcp9w", aud: []string{api}, scopes: []string{"read:orders", "write:orders"}, client: clientID,
	})
	pfRPC(t, c, v, token, "yq6zkh3mcp9w", "write:orders", "admin:orders")
}

// ---------------------------------------------------------------- Auth0
//
// Shapes:
//   - Claims: https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles
//     (Auth0 profile: iss with trailing slash, sub, aud an array of the API
//     and /userinfo when openid was asked, azp, exp, iat, scope; RFC 9068
//     profile: client_id instead of azp, jti, typ at+jwt). Client credentials:
//     sub "<client>@clients", gty "client-credentials", aud a string (a
//     token from a public test of dev-duzyayk4.eu.auth0.com). RBAC
//     "permissions" array:
//     https://auth0.com/docs/get-started/apis/enable-role-based-access-control-for-apis
//   - Header: {"alg":"RS256","typ":"JWT","kid":...} (the same public token).
//   - JWK Set (https://<tenant>/.well-known/jwks.json): members in the order
//     alg, kty, use, n, e, kid, x5t, x5c; kid a 21-character id, x5t the
//     base64url SHA-1 of the self-signed certificate (CN = the tenant
//     domain). Older tenants publish kid = x5t = base64url of the
//     upper-case HEX SHA-1 (54 characters):
//     https://community.auth0.com/t/certificate-thumbprint-is-longer-than-20-bytes/7794
//   - Discovery: issuer "https://<tenant>.auth0.com/" with its trailing slash.
func pfAuth0(t *testing.T, c *pfChecks) {
	const api = "https://orders.example.com/api"
	const azp = "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja"
	idp := pfNewIdP(t)
	k := grpcjwttest.NewKey("RS256")
	legacy := grpcjwttest.NewKey("RS256")
	der := pfCert(t, k, "dev-8mx2qz7k.us.auth0.com", pfSerial(9), 14)
	legacyDER := pfCert(t, legacy, "flownative-dev.eu.auth0.com", pfSerial(9), 14)
	kid := "1Z57d_i7TE6KTY57pKzDy"
	sum := sha1.Sum(legacyDER)
	legacyKID := pfB64([]byte(strings.ToUpper(hex.EncodeToString(sum[:]))))
	n, e := pfRSA(k)
	ln, le := pfRSA(legacy)
	idp.serve("/.well-known/jwks.json", "application/json; charset=utf-8", "public, max-age=15, stale-while-revalidate=15, stale-if-error=86400", pfO("keys", []any{
		pfO("alg", "RS256", "kty", "RSA", "use", "sig", "n", n, "e", e, "kid", kid, "x5t", pfB64(pfSHA1(der)), "x5c", []string{base64.StdEncoding.EncodeToString(der)}),
		pfO("alg", "RS256", "kty", "RSA", "use", "sig", "n", ln, "e", le, "kid", legacyKID, "x5t", legacyKID, "x5c", []string{base64.StdEncoding.EncodeToString(legacyDER)}),
	}))
	idp.serve("/.well-known/openid-configuration", "application/json; charset=utf-8", "", pfO(
		"issuer", "{base}/",
		"authorization_endpoint", "{base}/authorize",
		"token_endpoint", "{base}/oauth/token",
		"device_authorization_endpoint", "{base}/oauth/device/code",
		"userinfo_endpoint", "{base}/userinfo",
		"mfa_challenge_endpoint", "{base}/mfa/challenge",
		"jwks_uri", "{base}/.well-known/jwks.json",
		"registration_endpoint", "{base}/oidc/register",
		"revocation_endpoint", "{base}/oauth/revoke",
		"scopes_supported", []string{"openid", "profile", "offline_access", "name", "given_name", "family_name", "nickname", "email", "email_verified", "picture", "created_at", "identities", "phone", "address"},
		"response_types_supported", []string{"code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token"},
		"code_challenge_methods_supported", []string{"S256", "plain"},
		"response_modes_supported", []string{"query", "fragment", "form_post"},
		"subject_types_supported", []string{"public"},
		"token_endpoint_auth_methods_supported", []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"claims_supported", []string{"aud", "auth_time", "created_at", "email", "email_verified", "exp", "family_name", "given_name", "iat", "identities", "iss", "name", "nickname", "phone_number", "picture", "sub"},
		"request_uri_parameter_supported", false,
		"request_parameter_supported", false,
		"id_token_signing_alg_values_supported", []string{"HS256", "RS256", "PS256"},
		"token_endpoint_auth_signing_alg_values_supported", []string{"RS256", "RS384", "PS256"},
		"end_session_endpoint", "{base}/oidc/logout",
	))
	iss := idp.base() + "/"
	now := time.Now().Unix()
	header := `{"alg":"RS256","typ":"JWT","kid":"` + kid + `"}`
	user := pfO(
		"iss", iss,
		"sub", "auth0|6553da60a54af58e29493993",
		"aud", []string{api, iss + "userinfo"},
		"iat", now,
		"exp", now+86400,
		"scope", "openid profile email read:orders",
		"azp", azp,
		"permissions", []string{"read:orders", "write:orders"},
	)
	token := pfSign(k, header, user)
	allScopes := []string{"openid", "profile", "email", "read:orders", "read:orders", "write:orders"}

	// README row: the issuer with its trailing slash, WithAudience(API
	// identifier), WithScopeClaims("scope", "permissions") with RBAC.
	ks := pfIssuerKeyset(t, c, iss)
	v := pfVerifier(t, c, ks, grpcjwt.WithAudience(api), grpcjwt.WithScopeClaims("scope", "permissions"))

	c.run(t, "trap: the issuer without its trailing slash fails discovery", func(t *testing.T) {
		ks, err := grpcjwt.NewIssuerKeyset(t.Context(), idp.base(), pfQuiet)
		if err == nil {
			ks.Close()
			t.Fatal("NewIssuerKeyset without the trailing slash succeeded")
		}
	})
	pfVerify(t, c, "verifies: aud [API, /userinfo], scope + RBAC permissions", v, token, pfWant{
		sub: "auth0|6553da60a54af58e29493993", aud: []string{api, iss + "userinfo"}, scopes: allScopes, client: azp,
	})
	pfVerify(t, c, "client credentials: sub <client>@clients, aud a string, gty", v,
		pfSign(k, header, pfO("iss", iss, "sub", azp+"@clients", "aud", api, "iat", now, "exp", now+86400, "azp", azp, "scope", "read:orders write:orders", "gty", "client-credentials")),
		pfWant{sub: azp + "@clients", aud: []string{api}, scopes: []string{"read:orders", "write:orders"}, client: azp})
	rfc9068 := pfSign(k, `{"alg":"RS256","typ":"at+jwt","kid":"`+kid+`"}`, pfO(
		"iss", iss, "sub", "auth0|6553da60a54af58e29493993", "aud", []string{api, iss + "userinfo"},
		"client_id", azp, "exp", now+86400, "iat", now, "jti", "73WakrfVbNJBaAmhQtEeDv",
		"scope", "openid profile read:orders", "permissions", []string{"read:orders", "write:orders"}))
	pfVerify(t, c, "RFC 9068 profile: typ at+jwt, client_id, jti", v, rfc9068, pfWant{
		sub: "auth0|6553da60a54af58e29493993", aud: []string{api, iss + "userinfo"},
		scopes: []string{"openid", "profile", "read:orders", "read:orders", "write:orders"}, client: azp,
	})
	pfVerify(t, c, "older tenant's key: kid = x5t = base64url(hex SHA-1)", v,
		pfSign(legacy, `{"alg":"RS256","typ":"JWT","kid":"`+legacyKID+`"}`, user), pfWant{
			sub: "auth0|6553da60a54af58e29493993", aud: []string{api, iss + "userinfo"}, scopes: allScopes, client: azp,
		})
	c.run(t, `without WithScopeClaims("scope", "permissions") RBAC permissions are not scopes`, func(t *testing.T) {
		plain := pfVerifier(t, nil, ks, grpcjwt.WithAudience(api))
		cl, err := plain.Verify(t.Context(), token)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if cl.HasScope("write:orders") {
			t.Errorf("write:orders granted from permissions without WithScopeClaims: %v", cl.Scopes)
		}
	})
	pfVerify(t, c, "a token for the Management API: ErrAudience", v,
		pfSign(k, header, user.with("aud", iss+"api/v2/")), pfWant{err: grpcjwt.ErrAudience})
	strict := pfVerifier(t, c, ks, grpcjwt.WithAudience(api), grpcjwt.WithStrictType())
	pfVerify(t, c, "WithStrictType: the default profile (typ JWT) is refused", strict, token, pfWant{err: grpcjwt.ErrTokenType})
	pfVerify(t, c, "WithStrictType: the RFC 9068 profile is accepted", strict, rfc9068, pfWant{
		sub: "auth0|6553da60a54af58e29493993", aud: []string{api, iss + "userinfo"}, scopes: []string{"openid", "profile", "read:orders"}, client: azp,
	})
	pfRPC(t, c, v, token, "auth0|6553da60a54af58e29493993", "write:orders", "delete:orders")
}

// ---------------------------------------------------------------- Keycloak
//
// Shapes:
//   - Header: {"alg":"RS256","typ" : "JWT","kid" : "..."}, with Keycloak's
//     spaces around the colons after typ and kid, from a real token in
//     https://github.com/keycloak/keycloak/issues/22146 ; kid =
//     base64url(SHA-256(SubjectPublicKeyInfo)), KeyUtils.createKeyId in
//     keycloak/keycloak.
//   - Claims: exp, iat, auth_time, jti, iss .../realms/<realm>, aud
//     "account" (a string) unless an audience mapper adds the API (then an
//     array), sub, typ "Bearer", azp, session_state, acr, allowed-origins,
//     realm_access.roles, resource_access.<client>.roles, scope, and the
//     profile claims: https://github.com/simov/grant/issues/257 (a real
//     Keycloak token). Keycloak 25+ drops session_state (the session is
//     "sid") and puts nonce only in the ID token
//     (https://www.keycloak.org/docs/latest/upgrading/ , "Migrating to
//     25.0.0"); 26.2 encodes context in jti ("onrtac:<uuid>",
//     https://github.com/keycloak/keycloak/pull/37634). ID tokens say typ
//     "ID" and carry at_hash; refresh tokens say typ "Refresh" and are
//     HS512 (https://github.com/keycloak/keycloak/issues/22146 thread).
//   - JWK Set (/protocol/openid-connect/certs): members kid, kty, alg, use,
//     n, e, x5c (self-signed, CN = realm, serial = creation millis), x5t,
//     x5t#S256, and beside the RS256 signing key an RSA-OAEP "use":"enc"
//     key (public captures of realm certs endpoints).
func pfKeycloak(t *testing.T, c *pfChecks) {
	const api = "orders-api"
	idp := pfNewIdP(t)
	sig := grpcjwttest.NewKey("RS256")
	enc := grpcjwttest.NewKey("RS256") // the rsa-enc-generated provider's key
	keycloakKID := func(k *grpcjwttest.Key) string {
		spki, err := x509.MarshalPKIXPublicKey(k.Signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		return pfB64(pfSHA256(spki))
	}
	kid, encKID := keycloakKID(sig), keycloakKID(enc)
	serial := big.NewInt(time.Now().UnixMilli())
	sigDER := pfCert(t, sig, "orders", serial, 10)
	encDER := pfCert(t, enc, "orders", new(big.Int).Add(serial, big.NewInt(1)), 10)
	jwk := func(kid, alg, use string, k *grpcjwttest.Key, der []byte) pfObj {
		n, e := pfRSA(k)
		return pfO("kid", kid, "kty", "RSA", "alg", alg, "use", use, "n", n, "e", e,
			"x5c", []string{base64.StdEncoding.EncodeToString(der)}, "x5t", pfB64(pfSHA1(der)), "x5t#S256", pfB64(pfSHA256(der)))
	}
	idp.serve("/realms/orders/protocol/openid-connect/certs", "application/json", "no-cache", pfO("keys", []any{
		jwk(encKID, "RSA-OAEP", "enc", enc, encDER),
		jwk(kid, "RS256", "sig", sig, sigDER),
	}))
	idp.serve("/realms/orders/.well-known/openid-configuration", "application/json", "", pfO(
		"issuer", "{base}/realms/orders",
		"authorization_endpoint", "{base}/realms/orders/protocol/openid-connect/auth",
		"token_endpoint", "{base}/realms/orders/protocol/openid-connect/token",
		"introspection_endpoint", "{base}/realms/orders/protocol/openid-connect/token/introspect",
		"userinfo_endpoint", "{base}/realms/orders/protocol/openid-connect/userinfo",
		"end_session_endpoint", "{base}/realms/orders/protocol/openid-connect/logout",
		"frontchannel_logout_session_supported", true,
		"frontchannel_logout_supported", true,
		"jwks_uri", "{base}/realms/orders/protocol/openid-connect/certs",
		"check_session_iframe", "{base}/realms/orders/protocol/openid-connect/login-status-iframe.html",
		"grant_types_supported", []string{"authorization_code", "implicit", "refresh_token", "password", "client_credentials", "urn:openid:params:grant-type:ciba", "urn:ietf:params:oauth:grant-type:device_code"},
		"acr_values_supported", []string{"0", "1"},
		"response_types_supported", []string{"code", "none", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"},
		"subject_types_supported", []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported", []string{"PS384", "RS384", "EdDSA", "ES384", "HS256", "HS512", "ES256", "RS256", "HS384", "ES512", "PS256", "PS512", "RS512"},
		"id_token_encryption_alg_values_supported", []string{"ECDH-ES+A256KW", "ECDH-ES+A192KW", "ECDH-ES+A128KW", "RSA-OAEP", "RSA-OAEP-256", "RSA1_5", "ECDH-ES"},
		"userinfo_signing_alg_values_supported", []string{"PS384", "RS384", "EdDSA", "ES384", "HS256", "HS512", "ES256", "RS256", "HS384", "ES512", "PS256", "PS512", "RS512", "none"},
		"scopes_supported", []string{"openid", "roles", "profile", "acr", "email", "basic", "web-origins", "address", "organization", "phone", "offline_access", "microprofile-jwt"},
		"code_challenge_methods_supported", []string{"plain", "S256"},
		"tls_client_certificate_bound_access_tokens", true,
	))
	iss := idp.base() + "/realms/orders"
	now := time.Now().Unix()
	header := `{"alg":"RS256","typ" : "JWT","kid" : "` + kid + `"}`
	const sub = "b7afc098-30ce-43c7-abfa-043ab484a779"
	const sid = "ded04dec-4bc2-482e-9cd2-c875365639dd"
	// Keycloak 26, with an audience mapper for orders-api.
	at := pfO(
		"exp", now+300,
		"iat", now,
		"auth_time", now-20,
		"jti", "onrtac:1f65761e-1c69-40a2-82da-2d8aa5e39a8a",
		"iss", iss,
		"aud", []string{api, "account"},
		"sub", sub,
		"typ", "Bearer",
		"azp", "orders-web",
		"sid", sid,
		"acr", "1",
		"allowed-origins", []string{"https://app.example.com"},
		"realm_access", pfO("roles", []string{"default-roles-orders", "offline_access", "uma_authorization", "order-admin"}),
		"resource_access", pfO(
			api, pfO("roles", []string{"orders.write"}),
			"account", pfO("roles", []string{"manage-account", "manage-account-links", "view-profile"}),
		),
		"scope", "openid email profile orders:write",
		"email_verified", false,
		"name", "Admin Orders",
		"preferred_username", "admin",
		"given_name", "Admin",
		"family_name", "Orders",
		"email", "admin@orders.example.com",
	)
	token := pfSign(sig, header, at)
	want := pfWant{sub: sub, aud: []string{api, "account"}, scopes: []string{"openid", "email", "profile", "orders:write"}, client: "orders-web"}

	// README row: NewIssuerKeyset(.../realms/<realm>), WithAudience(the API,
	// added by an audience mapper), scopes in "scope".
	rec := &pfLogRecorder{}
	var ks *grpcjwt.Keyset
	c.run(t, "NewIssuerKeyset(.../realms/orders), the enc key skipped at Debug only", func(t *testing.T) {
		var err error
		ks, err = grpcjwt.NewIssuerKeyset(t.Context(), iss, grpcjwt.WithKeysetLogger(slog.New(rec)))
		if err != nil {
			t.Fatalf("NewIssuerKeyset: %v", err)
		}
		var quietSkip bool
		for _, r := range rec.records() {
			if r.level >= slog.LevelWarn {
				t.Errorf("logged at %v: %s kid=%s reason=%s", r.level, r.msg, r.kid, r.reason)
			}
			if r.kid == encKID && r.level == slog.LevelDebug {
				quietSkip = true
			}
		}
		if !quietSkip {
			t.Errorf("no Debug record for the RSA-OAEP key %s: %+v", encKID, rec.records())
		}
	})
	if ks == nil {
		t.FailNow()
	}
	t.Cleanup(func() { ks.Close() })
	v := pfVerifier(t, c, ks, grpcjwt.WithAudience(api))

	pfVerify(t, c, "verifies: Keycloak 26 token with an audience mapper", v, token, want)
	pfVerify(t, c, `trap: the default aud "account" (no audience mapper): ErrAudience`, v,
		pfSign(sig, header, at.with("aud", "account", "resource_access", pfO("account", pfO("roles", []string{"manage-account", "view-profile"})))),
		pfWant{err: grpcjwt.ErrAudience})
	pfVerify(t, c, "Keycloak <= 24 shape: session_state, sid and nonce in the access token", v,
		pfSign(sig, header, at.with("jti", "17b94735-025f-4e87-a74e-83c315d1827f", "nonce", "n-0S6_WzA2Mj", "session_state", sid)), want)
	pfVerify(t, c, "service account (client credentials): client_id, clientHost, no sid", v,
		pfSign(sig, header, pfO("exp", now+300, "iat", now, "jti", "trrtcc:52a1cbe5-4f6a-4a4b-8d5c-0a6f0bb2b1e1", "iss", iss,
			"aud", []string{api, "account"}, "sub", "5c2ad5a6-9a0c-4bbf-a8a7-7b0e6f1f7f31", "typ", "Bearer", "azp", "orders-worker",
			"acr", "1", "realm_access", pfO("roles", []string{"default-roles-orders"}),
			"resource_access", pfO(api, pfO("roles", []string{"orders.write"})),
			"scope", "profile email orders:write", "clientHost", "10.0.0.7", "email_verified", false,
			"preferred_username", "service-account-orders-worker", "clientAddress", "10.0.0.7", "client_id", "orders-worker")),
		pfWant{sub: "5c2ad5a6-9a0c-4bbf-a8a7-7b0e6f1f7f31", aud: []string{api, "account"}, scopes: []string{"profile", "email", "orders:write"}, client: "orders-worker"})
	pfVerify(t, c, `its ID token (typ "ID", at_hash) is refused: ErrTokenType`, v,
		pfSign(sig, header, pfO("exp", now+300, "iat", now, "auth_time", now-20, "jti", "0c6cf5c5-5a4f-4b55-a0a5-6a9b0a1b8f2e",
			"iss", iss, "aud", api, "sub", sub, "typ", "ID", "azp", "orders-web", "nonce", "n-0S6_WzA2Mj", "sid", sid,
			"at_hash", "fPlsvVszI29LU2UhDyJ9vg", "acr", "1", "email_verified", false, "preferred_username", "admin")),
		pfWant{err: grpcjwt.ErrTokenType})
	refresh := func() string {
		h := `{"alg":"HS512","typ" : "JWT","kid" : "6d1b2b8e-3f0a-4a7e-9a43-1d0f0c1f6a2b"}`
		in := pfB64([]byte(h)) + "." + pfB64(pfO("exp", now+1800, "iat", now, "jti", "4b0b5c1e-8e37-4b6f-9a6d-5f8d8a1c9f41",
			"iss", iss, "aud", iss, "sub", sub, "typ", "Refresh", "azp", "orders-web", "sid", sid, "scope", "openid email profile").json())
		mac := hmac.New(sha512.New, []byte("keycloak-hmac-generated-secret-of-the-realm-0123456789"))
		mac.Write([]byte(in))
		return in + "." + pfB64(mac.Sum(nil))
	}()
	pfVerify(t, c, "its refresh token (HS512) is refused: ErrAlgorithm", v, refresh, pfWant{err: grpcjwt.ErrAlgorithm})
	c.run(t, "realm_access.roles and resource_access read with DecodeClaim", func(t *testing.T) {
		cl, err := v.Verify(t.Context(), token)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		var realm struct {
			Roles []string `json:"roles"`
		}
		if err := cl.DecodeClaim("realm_access", &realm); err != nil || !slices.Contains(realm.Roles, "order-admin") {
			t.Errorf("realm_access: %+v, %v", realm, err)
		}
		var res map[string]struct {
			Roles []string `json:"roles"`
		}
		if err := cl.DecodeClaim("resource_access", &res); err != nil || !slices.Contains(res[api].Roles, "orders.write") {
			t.Errorf("resource_access: %+v, %v", res, err)
		}
	})
	strict := pfVerifier(t, c, ks, grpcjwt.WithAudience(api), grpcjwt.WithStrictType())
	pfVerify(t, c, "WithStrictType refuses it (typ JWT)", strict, token, pfWant{err: grpcjwt.ErrTokenType})
	pfRPC(t, c, v, token, sub, "orders:write", "orders:admin")
}

// ---------------------------------------------------------------- Okta
//
// Shapes:
//   - A real access token of a custom authorization server, decoded in
//     https://groups.google.com/g/rabbitmq-users/c/O3GdCKf8soM/m/ZsjMcizrAgAJ :
//     header {"kid": <43 characters>, "alg": "RS256"} (no typ); claims ver
//     (the number 1), jti "AT.<...>", iss, aud (a string), sub, iat, exp,
//     cid, uid, scp (an ARRAY), auth_time.
//   - https://developer.okta.com/docs/guides/validate-access-tokens/go/overview/ :
//     tokens of the org authorization server (issuer https://<org>.okta.com)
//     are for Okta only; custom servers are https://<org>.okta.com/oauth2/<id>,
//     the default one's audience is api://default.
//   - JWK Set (/oauth2/<id>/v1/keys): members kty, alg, kid, use, e, n.
func pfOkta(t *testing.T, c *pfChecks) {
	const api = "api://default"
	const cid = "0oa8f5j3ecb5w3dF35d7"
	idp := pfNewIdP(t)
	k := grpcjwttest.NewKey("RS256")
	orgKey := grpcjwttest.NewKey("RS256")
	kid := "ZkvelLN_seik7w4pc_prCcfUf-h2hFfiwkDeCrs0iUc"
	n, e := pfRSA(k)
	idp.serve("/oauth2/default/v1/keys", "application/json", "max-age=5236829, must-revalidate", pfO("keys", []any{
		pfO("kty", "RSA", "alg", "RS256", "kid", kid, "use", "sig", "e", e, "n", n),
	}))
	idp.serve("/oauth2/default/.well-known/openid-configuration", "application/json", "", pfO(
		"issuer", "{base}/oauth2/default",
		"authorization_endpoint", "{base}/oauth2/default/v1/authorize",
		"token_endpoint", "{base}/oauth2/default/v1/token",
		"userinfo_endpoint", "{base}/oauth2/default/v1/userinfo",
		"registration_endpoint", "{base}/oauth2/v1/clients",
		"jwks_uri", "{base}/oauth2/default/v1/keys",
		"response_types_supported", []string{"code", "id_token", "code id_token", "code token", "id_token token", "code id_token token"},
		"response_modes_supported", []string{"query", "fragment", "form_post", "okta_post_message"},
		"grant_types_supported", []string{"authorization_code", "implicit", "refresh_token", "password", "urn:ietf:params:oauth:grant-type:device_code"},
		"subject_types_supported", []string{"public"},
		"id_token_signing_alg_values_supported", []string{"RS256"},
		"scopes_supported", []string{"openid", "profile", "email", "address", "phone", "offline_access", "device_sso"},
		"token_endpoint_auth_methods_supported", []string{"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"},
		"claims_supported", []string{"iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr", "idp", "nonce", "name", "nickname", "preferred_username", "given_name", "middle_name", "family_name", "email", "email_verified", "profile", "zoneinfo", "locale", "address", "phone_number", "picture", "website", "gender", "birthdate", "updated_at", "at_hash", "c_hash"},
		"code_challenge_methods_supported", []string{"S256"},
		"introspection_endpoint", "{base}/oauth2/default/v1/introspect",
		"revocation_endpoint", "{base}/oauth2/default/v1/revoke",
		"end_session_endpoint", "{base}/oauth2/default/v1/logout",
		"request_parameter_supported", true,
		"request_object_signing_alg_values_supported", []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"},
	))
	iss := idp.base() + "/oauth2/default"
	now := time.Now().Unix()
	header := `{"kid":"` + kid + `","alg":"RS256"}`
	at := pfO(
		"ver", 1,
		"jti", "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
		"iss", iss,
		"aud", api,
		"sub", "alice@example.com",
		"iat", now,
		"exp", now+3600,
		"cid", cid,
		"uid", "00ub0oNGTSWTBKOLGLNR",
		"scp", []string{"openid", "orders:read", "orders:write"},
		"auth_time", now-60,
	)
	token := pfSign(k, header, at)

	// README row: NewIssuerKeyset(.../oauth2/<server>),
	// WithAudience("api://default"), WithScopeClaims("scp").
	ks := pfIssuerKeyset(t, c, iss)
	v := pfVerifier(t, c, ks, grpcjwt.WithAudience(api), grpcjwt.WithScopeClaims("scp"))

	pfVerify(t, c, "verifies: no typ, scp an array, ver a number", v, token, pfWant{
		sub: "alice@example.com", aud: []string{api}, scopes: []string{"openid", "orders:read", "orders:write"}, client: cid,
	})
	pfVerify(t, c, "client credentials: sub = cid, no uid", v,
		pfSign(k, header, pfO("ver", 1, "jti", "AT.p0y4Y6kqV8uJcS3Cwz2e9a4HnQb1TlRk7Gx5Fv0dZsE", "iss", iss, "aud", api, "iat", now, "exp", now+3600,
			"cid", cid, "scp", []string{"orders:write"}, "sub", cid)),
		pfWant{sub: cid, aud: []string{api}, scopes: []string{"orders:write"}, client: cid})
	c.run(t, `without WithScopeClaims("scp") no scope is granted`, func(t *testing.T) {
		plain := pfVerifier(t, nil, ks, grpcjwt.WithAudience(api))
		cl, err := plain.Verify(t.Context(), token)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if len(cl.Scopes) != 0 {
			t.Errorf("scopes %v from a token whose scopes are in scp", cl.Scopes)
		}
	})
	pfVerify(t, c, "trap: a token of the org authorization server (another key): ErrUnknownKey", v,
		pfSign(orgKey, `{"kid":"fAomAvsWyAWDlnBuJbHoqqCRcRdmsg4vri0OICxbIgs","alg":"RS256"}`,
			at.with("iss", idp.base(), "aud", idp.base())), pfWant{err: grpcjwt.ErrUnknownKey})
	strict := pfVerifier(t, c, ks, grpcjwt.WithAudience(api), grpcjwt.WithScopeClaims("scp"), grpcjwt.WithStrictType())
	pfVerify(t, c, "WithStrictType refuses it (no typ)", strict, token, pfWant{err: grpcjwt.ErrTokenType})
	pfRPC(t, c, v, token, "alice@example.com", "orders:write", "orders:admin")
}

// ---------------------------------------------------------------- Entra ID
//
// Shapes (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference
// and https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens):
//   - Header {"typ":"JWT","alg":"RS256","kid":...}; v1.0 tokens also carry
//     "x5t", equal to kid (x5t "emitted only in v1.0 access tokens").
//   - v2.0 claims: aud (the client ID), iss
//     https://login.microsoftonline.com/<tid>/v2.0, iat, nbf, exp, aio, azp,
//     azpacr, name, oid, preferred_username, rh, scp (a SPACE-SEPARATED
//     string), sub, tid, uti, ver "2.0"; app-only tokens have roles (an
//     array) and no scp.
//   - v1.0 claims: aud (the App ID URI or the client ID, as requested), iss
//     https://sts.windows.net/<tid>/, iat, nbf, exp, acr, aio, amr, appid,
//     appidacr, family_name, given_name, ipaddr, name, oid, rh, scp, sub,
//     tid, unique_name, upn, uti, ver "1.0".
//   - Keys (https://login.microsoftonline.com/<tid>/discovery/v2.0/keys):
//     kty, use, kid, x5t (= kid, the base64url SHA-1 of the certificate),
//     n, e, x5c, cloud_instance_name, issuer (per key; the "issuer" member
//     is documented in
//     https://learn.microsoft.com/en-us/entra/identity-platform/claims-validation);
//     no "alg". The v1 keys (/<tid>/discovery/keys) have no issuer member
//     (AadSupport's Get-AadDiscoveryKeys output, PowerShell Gallery).
//   - Discovery: v2 at /<tid>/v2.0/.well-known/openid-configuration, issuer
//     .../<tid>/v2.0, jwks_uri .../<tid>/discovery/v2.0/keys (recorded Azure
//     SDK sessions); v1 at /<tid>/.well-known/openid-configuration with
//     issuer https://sts.windows.net/<tid>/; /common/v2.0 answers the
//     template issuer https://login.microsoftonline.com/{tenantid}/v2.0.
const (
	pfTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	pfEntraApp = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
	pfAppIDURI = "api://" + pfEntraApp
	pfV1Issuer = "https://sts.windows.net/" + pfTenant + "/"
)

// pfEntraIdP serves one tenant's v1 and v2 metadata and keys, and the
// common endpoint, signed by one key.
func pfEntraIdP(t *testing.T) (*pfIdP, *grpcjwttest.Key, string) {
	idp := pfNewIdP(t)
	k := grpcjwttest.NewKey("RS256")
	der := pfCert(t, k, "accounts.accesscontrol.windows.net", pfSerial(16), 5)
	kid := pfB64(pfSHA1(der))
	n, e := pfRSA(k)
	x5c := []string{base64.StdEncoding.EncodeToString(der)}
	v2keys := func(issuer string) pfObj {
		return pfO("keys", []any{pfO("kty", "RSA", "use", "sig", "kid", kid, "x5t", kid, "n", n, "e", e, "x5c", x5c,
			"cloud_instance_name", "microsoftonline.com", "issuer", issuer)})
	}
	idp.serve("/"+pfTenant+"/discovery/v2.0/keys", "application/json; charset=utf-8", "max-age=86400, private", v2keys("{base}/"+pfTenant+"/v2.0"))
	idp.serve("/common/discovery/v2.0/keys", "application/json; charset=utf-8", "max-age=86400, private", v2keys("{base}/{tenantid}/v2.0"))
	idp.serve("/"+pfTenant+"/discovery/keys", "application/json; charset=utf-8", "max-age=86400, private", pfO("keys", []any{
		pfO("kty", "RSA", "use", "sig", "kid", kid, "x5t", kid, "n", n, "e", e, "x5c", x5c),
	}))
	v2doc := func(tenant, issuer string) pfObj {
		return pfO(
			"token_endpoint", "{base}/"+tenant+"/oauth2/v2.0/token",
			"token_endpoint_auth_methods_supported", []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"jwks_uri", "{base}/"+tenant+"/discovery/v2.0/keys",
			"response_modes_supported", []string{"query", "fragment", "form_post"},
			"subject_types_supported", []string{"pairwise"},
			"id_token_signing_alg_values_supported", []string{"RS256"},
			"response_types_supported", []string{"code", "id_token", "code id_token", "id_token token"},
			"scopes_supported", []string{"openid", "profile", "email", "offline_access"},
			"issuer", issuer,
			"request_uri_parameter_supported", false,
			"userinfo_endpoint", "https://graph.microsoft.com/oidc/userinfo",
			"authorization_endpoint", "{base}/"+tenant+"/oauth2/v2.0/authorize",
			"device_authorization_endpoint", "{base}/"+tenant+"/oauth2/v2.0/devicecode",
			"http_logout_supported", true,
			"frontchannel_logout_supported", true,
			"end_session_endpoint", "{base}/"+tenant+"/oauth2/v2.0/logout",
			"claims_supported", []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
			"kerberos_endpoint", "{base}/"+tenant+"/kerberos",
			"tenant_region_scope", "WW",
			"cloud_instance_name", "microsoftonline.com",
			"cloud_graph_host_name", "graph.windows.net",
			"msgraph_host", "graph.microsoft.com",
			"rbac_url", "https://pas.windows.net",
		)
	}
	idp.serve("/"+pfTenant+"/v2.0/.well-known/openid-configuration", "application/json; charset=utf-8", "max-age=86400, private", v2doc(pfTenant, "{base}/"+pfTenant+"/v2.0"))
	idp.serve("/common/v2.0/.well-known/openid-configuration", "application/json; charset=utf-8", "max-age=86400, private", v2doc("common", "{base}/{tenantid}/v2.0"))
	idp.serve("/"+pfTenant+"/.well-known/openid-configuration", "application/json; charset=utf-8", "max-age=86400, private", pfO(
		"token_endpoint", "{base}/"+pfTenant+"/oauth2/token",
		"token_endpoint_auth_methods_supported", []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri", "{base}/"+pfTenant+"/discovery/keys",
		"response_modes_supported", []string{"query", "fragment", "form_post"},
		"subject_types_supported", []string{"pairwise"},
		"id_token_signing_alg_values_supported", []string{"RS256"},
		"http_logout_supported", true,
		"frontchannel_logout_supported", true,
		"end_session_endpoint", "{base}/"+pfTenant+"/oauth2/logout",
		"response_types_supported", []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"scopes_supported", []string{"openid"},
		"issuer", pfV1Issuer,
		"claims_supported", []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"},
		"microsoft_multi_refresh_token", true,
		"check_session_iframe", "{base}/"+pfTenant+"/oauth2/checksession",
		"userinfo_endpoint", "{base}/"+pfTenant+"/openid/userinfo",
		"tenant_region_scope", "WW",
		"cloud_instance_name", "microsoftonline.com",
		"cloud_graph_host_name", "graph.windows.net",
	))
	return idp, k, kid
}

// pfEntraV1Claims is a delegated v1.0 access token for aud.
func pfEntraV1Claims(aud string, now int64) pfObj {
	return pfO(
		"aud", aud,
		"iss", pfV1Issuer,
		"iat", now,
		"nbf", now,
		"exp", now+3899,
		"acr", "1",
		"aio", "AVQAq/8TAAAAs0TyZdC9pX2mr5nR3l0bE8Q1U8wKcUuP3tG2f8vJt9w=",
		"amr", []string{"pwd", "mfa"},
		"appid", "75dbe77f-10a3-4e59-85fd-8c127544f17c",
		"appidacr", "0",
		"family_name", "Lincoln",
		"given_name", "Abe",
		"ipaddr", "203.0.113.7",
		"name", "Abe Lincoln",
		"oid", "690222be-ff1a-4d56-abd1-7e4f7d38e474",
		"rh", "0.AScAv4j5cvGGr0GRqy180BHbR9QqHW53_z5Mp9N4DD-DB0VQAOI.",
		"scp", "Orders.Read Orders.Write",
		"sub", "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
		"tid", pfTenant,
		"unique_name", "abeli@microsoft.com",
		"upn", "abeli@microsoft.com",
		"uti", "fqiBqXLPj0eQa82S-IYFAA",
		"ver", "1.0",
	)
}

func pfEntraV2(t *testing.T, c *pfChecks) {
	idp, k, kid := pfEntraIdP(t)
	iss := idp.base() + "/" + pfTenant + "/v2.0"
	now := time.Now().Unix()
	header := `{"typ":"JWT","alg":"RS256","kid":"` + kid + `"}`
	delegated := pfO(
		"aud", pfEntraApp,
		"iss", iss,
		"iat", now,
		"nbf", now,
		"exp", now+3899,
		"aio", "AXQAi/8IAAAAtAaZLo3ChMif6KOnttRB7eBq4/DccQzjcJGxPYy/C3jDaNGxXd6wNIIVGRghNRnwJ1lOcAnNZcjvkoyrFxCttv33140RioOFJ4bCCGVuoCag1uOTT22222gHwLPYQ/uf79QX+0KIijdrmp69RctzmQ==",
		"azp", "75dbe77f-10a3-4e59-85fd-8c127544f17c",
		"azpacr", "0",
		"name", "Abe Lincoln",
		"oid", "690222be-ff1a-4d56-abd1-7e4f7d38e474",
		"preferred_username", "abeli@microsoft.com",
		"rh", "I",
		"scp", "Orders.Read Orders.Write",
		"sub", "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
		"tid", pfTenant,
		"uti", "fqiBqXLPj0eQa82S-IYFAA",
		"ver", "2.0",
	)
	token := pfSign(k, header, delegated)

	// README row: NewIssuerKeyset(.../<tenant-id>/v2.0), WithAudience(the
	// API's client ID), WithScopeClaims("scp", "roles").
	ks := pfIssuerKeyset(t, c, iss)
	v := pfVerifier(t, c, ks, grpcjwt.WithAudience(pfEntraApp), grpcjwt.WithScopeClaims("scp", "roles"))

	pfVerify(t, c, "verifies: delegated v2.0 token, scp space-separated", v, token, pfWant{
		sub: "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", aud: []string{pfEntraApp},
		scopes: []string{"Orders.Read", "Orders.Write"}, client: "75dbe77f-10a3-4e59-85fd-8c127544f17c",
	})
	pfVerify(t, c, "app-only v2.0 token: roles array, no scp", v,
		pfSign(k, header, pfO("aud", pfEntraApp, "iss", iss, "iat", now, "nbf", now, "exp", now+3599,
			"aio", "k2BgYLj0vO3ma1r6xZ2n0+W4s5b0ACg=", "azp", "c4b1b6a8-6a1e-4b5e-9f0c-3f4a2d1e0b9c", "azpacr", "1",
			"idtyp", "app", "oid", "0e2f5c66-8b54-4a7a-9a61-2d8a6c1c4f10", "rh", "I",
			"roles", []string{"Orders.ReadWrite.All"}, "sub", "0e2f5c66-8b54-4a7a-9a61-2d8a6c1c4f10",
			"tid", pfTenant, "uti", "Zr3bN2lqU0qd7vJp3m8BAA", "ver", "2.0")),
		pfWant{sub: "0e2f5c66-8b54-4a7a-9a61-2d8a6c1c4f10", aud: []string{pfEntraApp},
			scopes: []string{"Orders.ReadWrite.All"}, client: "c4b1b6a8-6a1e-4b5e-9f0c-3f4a2d1e0b9c"})
	c.run(t, "trap: the common endpoint fails discovery (its issuer is a {tenantid} template)", func(t *testing.T) {
		ks, err := grpcjwt.NewIssuerKeyset(t.Context(), idp.base()+"/common/v2.0", pfQuiet)
		if err == nil {
			ks.Close()
			t.Fatal("NewIssuerKeyset(.../common/v2.0) succeeded")
		}
	})
	pfVerify(t, c, "trap: a v1.0 token (accessTokenAcceptedVersion not 2): ErrIssuer", v,
		pfSign(k, `{"typ":"JWT","alg":"RS256","x5t":"`+kid+`","kid":"`+kid+`"}`, pfEntraV1Claims(pfEntraApp, now)),
		pfWant{err: grpcjwt.ErrIssuer})
	pfVerify(t, c, "a token of another tenant, signed by the shared keys: ErrIssuer", v,
		pfSign(k, header, delegated.with("iss", idp.base()+"/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0", "tid", "9188040d-6c67-4c5b-b112-36a304b66dad")),
		pfWant{err: grpcjwt.ErrIssuer})
	strict := pfVerifier(t, c, ks, grpcjwt.WithAudience(pfEntraApp), grpcjwt.WithScopeClaims("scp", "roles"), grpcjwt.WithStrictType())
	pfVerify(t, c, "WithStrictType refuses it (typ JWT)", strict, token, pfWant{err: grpcjwt.ErrTokenType})
	pfRPC(t, c, v, token, "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", "Orders.Write", "Orders.Admin")
}

func pfEntraV1(t *testing.T, c *pfChecks) {
	idp, k, kid := pfEntraIdP(t)
	v2iss := idp.base() + "/" + pfTenant + "/v2.0"
	now := time.Now().Unix()
	header := `{"typ":"JWT","alg":"RS256","x5t":"` + kid + `","kid":"` + kid + `"}`
	token := pfSign(k, header, pfEntraV1Claims(pfAppIDURI, now))
	const appid = "75dbe77f-10a3-4e59-85fd-8c127544f17c"
	want := pfWant{sub: "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", aud: []string{pfAppIDURI}, scopes: []string{"Orders.Read", "Orders.Write"}, client: appid}

	ks := pfIssuerKeyset(t, c, v2iss)
	// The README row's settings (discovery on the v2.0 URL, the client ID)
	// refuse v1.0 tokens: their issuer is sts.windows.net.
	readme := pfVerifier(t, c, ks, grpcjwt.WithAudience(pfEntraApp), grpcjwt.WithScopeClaims("scp", "roles"))
	pfVerify(t, c, "README settings refuse a v1.0 token: ErrIssuer", readme, token, pfWant{err: grpcjwt.ErrIssuer})
	// What works for v1.0 tokens: the same keys (discovered on the v2.0
	// URL), the v1 issuer named with WithIssuer, and the audience as the
	// client asked for it (App ID URI or client ID).
	v := pfVerifier(t, c, ks, grpcjwt.WithIssuer(pfV1Issuer, v2iss), grpcjwt.WithAudience(pfAppIDURI, pfEntraApp),
		grpcjwt.WithScopeClaims("scp", "roles"))
	pfVerify(t, c, "v2.0 keys + WithIssuer(sts.windows.net) verify: aud App ID URI, x5t header", v, token, want)
	pfVerify(t, c, "v1.0 token whose aud is the client ID", v,
		pfSign(k, header, pfEntraV1Claims(pfEntraApp, now)), pfWant{sub: want.sub, aud: []string{pfEntraApp}, scopes: want.scopes, client: appid})
	pfVerify(t, c, "v2.0 token through the same verifier", v,
		pfSign(k, `{"typ":"JWT","alg":"RS256","kid":"`+kid+`"}`, pfEntraV1Claims(pfEntraApp, now).with("iss", v2iss, "ver", "2.0")),
		pfWant{sub: want.sub, aud: []string{pfEntraApp}, scopes: want.scopes, client: appid})
	pfVerify(t, c, "app-only v1.0 token: roles", v,
		pfSign(k, header, pfO("aud", pfAppIDURI, "iss", pfV1Issuer, "iat", now, "nbf", now, "exp", now+3599,
			"aio", "E2ZgYDi0eP3f0mTn2K0R7u3oBwA=", "appid", "c4b1b6a8-6a1e-4b5e-9f0c-3f4a2d1e0b9c", "appidacr", "1",
			"idp", pfV1Issuer, "oid", "0e2f5c66-8b54-4a7a-9a61-2d8a6c1c4f10", "rh", "0.AScA.", "roles", []string{"Orders.ReadWrite.All"},
			"sub", "0e2f5c66-8b54-4a7a-9a61-2d8a6c1c4f10", "tid", pfTenant, "uti", "Zr3bN2lqU0qd7vJp3m8BAA", "ver", "1.0")),
		pfWant{sub: "0e2f5c66-8b54-4a7a-9a61-2d8a6c1c4f10", aud: []string{pfAppIDURI}, scopes: []string{"Orders.ReadWrite.All"},
			client: "c4b1b6a8-6a1e-4b5e-9f0c-3f4a2d1e0b9c"})
	pfVerify(t, c, "trap: aud App ID URI against WithAudience(client ID) only: ErrAudience",
		pfVerifier(t, c, ks, grpcjwt.WithIssuer(pfV1Issuer), grpcjwt.WithAudience(pfEntraApp), grpcjwt.WithScopeClaims("scp", "roles")),
		token, pfWant{err: grpcjwt.ErrAudience})
	c.run(t, "trap: the v1 metadata URL fails discovery (its issuer is on sts.windows.net)", func(t *testing.T) {
		ks, err := grpcjwt.NewIssuerKeyset(t.Context(), idp.base()+"/"+pfTenant, pfQuiet)
		if err == nil {
			ks.Close()
			t.Fatal("NewIssuerKeyset(login.../<tid>) succeeded")
		}
	})
	c.run(t, "alternative: NewRemoteKeyset(.../<tid>/discovery/keys) + WithIssuer(sts.windows.net)", func(t *testing.T) {
		rks, err := grpcjwt.NewRemoteKeyset(t.Context(), idp.base()+"/"+pfTenant+"/discovery/keys", pfQuiet)
		if err != nil {
			t.Fatalf("NewRemoteKeyset: %v", err)
		}
		t.Cleanup(func() { rks.Close() })
		rv := pfVerifier(t, nil, rks, grpcjwt.WithIssuer(pfV1Issuer), grpcjwt.WithAudience(pfAppIDURI), grpcjwt.WithScopeClaims("scp", "roles"))
		pfCheckClaims(t, rv, token, want)
	})
	pfRPC(t, c, v, token, want.sub, "Orders.Write", "Orders.Admin")
}

// ---------------------------------------------------------------- Zitadel
//
// Shapes:
//   - Claims: zitadel/oidc v3 pkg/oidc/token.go (AccessTokenClaims:
//     TokenClaims in the order iss, sub, aud (an array), exp, iat, nbf,
//     client_id, jti, then scope (SpaceDelimitedArray: a space-separated
//     string), then private claims) and zitadel/zitadel
//     docs/docs/apis/openidoauth/claims.md (aud: "by default all client
//     id's and the project id"; urn:zitadel:iam:org:project:roles and
//     urn:zitadel:iam:org:project:{projectid}:roles: role -> {org id: org
//     domain}; urn:zitadel:iam:user:resourceowner:*; access tokens are JWTs
//     only "When JWT" is chosen, opaque otherwise).
//   - Header: go-jose's signer with the key ID and no typ: {"alg","kid"}; kid
//     a numeric ID.
//   - JWK Set (/oauth/v2/keys) and Cache-Control: zitadel/zitadel docs
//     "OpenID Connect and Oauth2 web keys": members use, kty, kid, alg, n, e;
//     "Cache-Control: max-age=300, must-revalidate"; RS256 by default.
//   - Discovery: issuer = the instance URL (no path, no trailing slash).
func pfZitadel(t *testing.T, c *pfChecks) {
	const project = "280543383892525082"
	const client = "280543518928732186"
	const org = "280543383892459546"
	idp := pfNewIdP(t)
	k := grpcjwttest.NewKey("RS256")
	kid := "280543383892525058"
	n, e := pfRSA(k)
	idp.serve("/oauth/v2/keys", "application/json", "max-age=300, must-revalidate", pfO("keys", []any{
		pfO("use", "sig", "kty", "RSA", "kid", kid, "alg", "RS256", "n", n, "e", e),
	}))
	idp.serve("/.well-known/openid-configuration", "application/json", "", pfO(
		"issuer", "{base}",
		"authorization_endpoint", "{base}/oauth/v2/authorize",
		"token_endpoint", "{base}/oauth/v2/token",
		"introspection_endpoint", "{base}/oauth/v2/introspect",
		"userinfo_endpoint", "{base}/oidc/v1/userinfo",
		"revocation_endpoint", "{base}/oauth/v2/revoke",
		"end_session_endpoint", "{base}/oidc/v1/end_session",
		"device_authorization_endpoint", "{base}/oauth/v2/device_authorization",
		"jwks_uri", "{base}/oauth/v2/keys",
		"scopes_supported", []string{"openid", "profile", "email", "phone", "address", "offline_access"},
		"response_types_supported", []string{"code", "id_token", "id_token token"},
		"grant_types_supported", []string{"authorization_code", "implicit", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:device_code"},
		"subject_types_supported", []string{"public"},
		"id_token_signing_alg_values_supported", []string{"EdDSA", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"},
		"request_object_signing_alg_values_supported", []string{"RS256"},
		"token_endpoint_auth_methods_supported", []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"},
		"claims_supported", []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "c_hash", "at_hash", "act", "scopes", "client_id", "azp", "preferred_username", "name", "family_name", "given_name", "locale", "email", "email_verified", "phone_number", "phone_number_verified"},
		"code_challenge_methods_supported", []string{"S256"},
		"ui_locales_supported", []string{"bg", "cs", "de", "en", "es", "fr", "hu", "id", "it", "ja", "ko", "mk", "nl", "pl", "pt", "ru", "sv", "zh"},
		"request_parameter_supported", true,
		"request_uri_parameter_supported", false,
	))
	iss := idp.base()
	now := time.Now().Unix()
	header := `{"alg":"RS256","kid":"` + kid + `"}`
	roles := pfO("orders.writer", pfO(org, "acme.zitadel.cloud"))
	at := pfO(
		"iss", iss,
		"sub", "280543627103215642",
		"aud", []string{project, client},
		"exp", now+43200,
		"iat", now,
		"nbf", now,
		"client_id", client,
		"jti", "V2_280543712345678901-at_280543798765432101",
		"scope", "openid profile urn:zitadel:iam:org:project:id:"+project+":aud urn:zitadel:iam:org:projects:roles",
		"urn:zitadel:iam:org:project:"+project+":roles", roles,
		"urn:zitadel:iam:org:project:roles", roles,
		"urn:zitadel:iam:user:resourceowner:id", org,
		"urn:zitadel:iam:user:resourceowner:name", "ACME",
		"urn:zitadel:iam:user:resourceowner:primary_domain", "acme.zitadel.cloud",
	)
	token := pfSign(k, header, at)

	// README row: NewIssuerKeyset(instance URL), WithAudience(project ID),
	// roles read with Claims.Decode.
	ks := pfIssuerKeyset(t, c, iss)
	v := pfVerifier(t, c, ks, grpcjwt.WithAudience(project))

	pfVerify(t, c, "verifies: JWT access token, aud [project, client]", v, token, pfWant{
		sub: "280543627103215642", aud: []string{project, client}, client: client,
		scopes: []string{"openid", "profile", "urn:zitadel:iam:org:project:id:" + project + ":aud", "urn:zitadel:iam:org:projects:roles"},
	})
	c.run(t, "roles: urn:zitadel:iam:org:project:roles and ...:<project>:roles (objects) via Decode", func(t *testing.T) {
		cl, err := v.Verify(t.Context(), token)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		var all struct {
			Roles        map[string]map[string]string `json:"urn:zitadel:iam:org:project:roles"`
			ProjectRoles map[string]map[string]string `json:"urn:zitadel:iam:org:project:280543383892525082:roles"`
		}
		if err := cl.Decode(&all); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if all.Roles["orders.writer"][org] != "acme.zitadel.cloud" || all.ProjectRoles["orders.writer"][org] != "acme.zitadel.cloud" {
			t.Errorf("roles %+v, project roles %+v", all.Roles, all.ProjectRoles)
		}
	})
	pfVerify(t, c, "trap: the default opaque access token: ErrMalformed", v,
		"Fqd6qW0Xo7Ckp7k9vRVk9sD3Kxp0b5K9kqGqjv2RZlq5tYyP9yqKZ8wM3Qy6nH1bJc4a7L2eU0sX5rT8vW1yZ3", pfWant{err: grpcjwt.ErrMalformed})
	pfVerify(t, c, "a token of another project (aud without the project ID): ErrAudience", v,
		pfSign(k, header, at.with("aud", []string{"280543383892525999", client})), pfWant{err: grpcjwt.ErrAudience})
	strict := pfVerifier(t, c, ks, grpcjwt.WithAudience(project), grpcjwt.WithStrictType())
	pfVerify(t, c, "WithStrictType refuses it (no typ)", strict, token, pfWant{err: grpcjwt.ErrTokenType})
	pfRPC(t, c, v, token, "280543627103215642", "profile", "orders.admin")
}

// ---------------------------------------------------------------- Dex
//
// Shapes (dexidp/dex, https://github.com/dexidp/dex):
//   - server/oauth2.go: newAccessToken is
//     newIDToken(ctx, clientID, claims, scopes, nonce, storage.NewID(), "", connID):
//     the access token IS an ID token whose at_hash is the hash of a random
//     ID. Claims in idTokenClaims order: iss, sub (base64url protobuf of
//     user ID and connector ID), aud (the client ID; a string when there is
//     one audience), exp, iat, azp (only with several audiences), nonce,
//     at_hash, c_hash, email, email_verified, groups, name,
//     preferred_username, federated_claims. No scope claim.
//   - signPayload: go-jose with empty SignerOptions: header {"alg":"RS256","kid":...}.
//   - server/rotation.go: RSA 2048 keys, kid = hex of 20 random bytes,
//     JWK {use: sig, kty, kid, alg: RS256, n, e} (go-jose's member order).
//   - server/handlers.go: JWKS as json.MarshalIndent with Cache-Control
//     "max-age=<until next rotation>, must-revalidate"; discovery document
//     fields and jwks_uri <issuer>/keys.
func pfDex(t *testing.T, c *pfChecks) {
	const client = "orders-api"
	idp := pfNewIdP(t)
	k := grpcjwttest.NewKey("RS256")
	kidBytes := make([]byte, 20)
	rand.Read(kidBytes)
	kid := hex.EncodeToString(kidBytes)
	n, e := pfRSA(k)
	idp.serveIndented("/dex/keys", "application/json", "max-age=20571, must-revalidate", pfO("keys", []any{
		pfO("use", "sig", "kty", "RSA", "kid", kid, "alg", "RS256", "n", n, "e", e),
	}))
	idp.serveIndented("/dex/.well-known/openid-configuration", "application/json", "", pfO(
		"issuer", "{base}/dex",
		"authorization_endpoint", "{base}/dex/auth",
		"token_endpoint", "{base}/dex/token",
		"jwks_uri", "{base}/dex/keys",
		"userinfo_endpoint", "{base}/dex/userinfo",
		"device_authorization_endpoint", "{base}/dex/device/code",
		"introspection_endpoint", "{base}/dex/token/introspect",
		"grant_types_supported", []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"response_types_supported", []string{"code"},
		"subject_types_supported", []string{"public"},
		"id_token_signing_alg_values_supported", []string{"RS256"},
		"code_challenge_methods_supported", []string{"S256", "plain"},
		"scopes_supported", []string{"openid", "email", "groups", "profile", "offline_access"},
		"token_endpoint_auth_methods_supported", []string{"client_secret_basic", "client_secret_post"},
		"claims_supported", []string{"iss", "sub", "aud", "iat", "exp", "email", "email_verified", "locale", "name", "preferred_username", "at_hash"},
	))
	iss := idp.base() + "/dex"
	now := time.Now().Unix()
	header := `{"alg":"RS256","kid":"` + kid + `"}`
	// sub: internal.Marshal(&IDTokenSubject{UserId, ConnId}), base64url
	// (no padding) of the protobuf: field 1 user ID, field 2 connector ID.
	userID, connID := "08a8684b-db88-4b73-90a9-3cd1661f5466", "local"
	pb := append([]byte{0x0a, byte(len(userID))}, userID...)
	pb = append(append(pb, 0x12, byte(len(connID))), connID...)
	sub := base64.RawURLEncoding.EncodeToString(pb)
	atHash := func(s string) string { // accessTokenHash for RS256
		h := sha256.Sum256([]byte(s))
		return pfB64(h[:16])
	}
	randomID := make([]byte, 16) // storage.NewID: 16 random bytes, lower-case base32, unpadded
	rand.Read(randomID)
	newID := strings.TrimRight(base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").EncodeToString(randomID), "=")
	at := pfO(
		"iss", iss,
		"sub", sub,
		"aud", client,
		"exp", now+86400,
		"iat", now,
		"at_hash", atHash(newID),
		"email", "kilgore@kilgore.trout",
		"email_verified", true,
		"groups", []string{"authors"},
		"name", "Kilgore Trout",
		"preferred_username", "kilgore",
	)
	token := pfSign(k, header, at)

	// README row: NewIssuerKeyset(the configured issuer), WithAudience(the
	// client ID), InsecureAcceptIDTokens(), no scopes. Dex's access tokens
	// are built by its ID-token code and carry at_hash.
	ks := pfIssuerKeyset(t, c, iss)
	strict := pfVerifier(t, c, ks, grpcjwt.WithAudience(client))
	pfVerify(t, c, "without InsecureAcceptIDTokens its access token is refused as an ID token: ErrTokenType", strict, token,
		pfWant{err: grpcjwt.ErrTokenType})
	pfVerify(t, c, "the same claims without at_hash verify (at_hash alone refuses it)", strict,
		pfSign(k, header, at.with("at_hash", pfDelete)), pfWant{sub: sub, aud: []string{client}})

	v := pfVerifier(t, c, ks, grpcjwt.WithAudience(client), grpcjwt.InsecureAcceptIDTokens())
	pfVerify(t, c, "verifies: Dex's genuine access token (README settings)", v, token, pfWant{
		sub: sub, aud: []string{client},
	})
	pfRPC(t, c, v, token, sub, "", "orders:read")
	// What the option gives up: Dex's ID token for the same client is
	// accepted too, and only the audience keeps another client's out.
	idToken := pfSign(k, header, at.with("nonce", "n-0S6_WzA2Mj", "at_hash", atHash(token)))
	pfVerify(t, c, "with InsecureAcceptIDTokens its ID token for the same client verifies too", v, idToken,
		pfWant{sub: sub, aud: []string{client}})
	pfVerify(t, c, "an ID token for another client is refused: ErrAudience", v,
		pfSign(k, header, at.with("aud", "other-client")), pfWant{err: grpcjwt.ErrAudience})
}

// ---------------------------------------------------------------- helpers

// pfChecks counts a provider's checks.
type pfChecks struct {
	passed, failed int
}

// run runs one check as a subtest and counts its outcome.
func (c *pfChecks) run(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if t.Run(name, f) {
		c.passed++
	} else {
		c.failed++
	}
}

var pfQuiet = grpcjwt.WithKeysetLogger(slog.New(slog.DiscardHandler))

// pfIdP is an httptest server playing an identity provider. Documents it
// serves may say "{base}" for the server's URL.
type pfIdP struct {
	srv *httptest.Server
	mux *http.ServeMux
}

func pfNewIdP(t *testing.T) *pfIdP {
	p := &pfIdP{mux: http.NewServeMux()}
	p.srv = httptest.NewServer(p.mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pfIdP) base() string { return p.srv.URL }

func (p *pfIdP) serve(path, contentType, cacheControl string, doc pfObj) {
	p.serveBody(path, contentType, cacheControl, doc.json())
}

// serveIndented serves doc as json.MarshalIndent(doc, "", "  ") writes it.
func (p *pfIdP) serveIndented(path, contentType, cacheControl string, doc pfObj) {
	var b bytes.Buffer
	if err := json.Indent(&b, doc.json(), "", "  "); err != nil {
		panic(err)
	}
	p.serveBody(path, contentType, cacheControl, b.Bytes())
}

func (p *pfIdP) serveBody(path, contentType, cacheControl string, body []byte) {
	p.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		// The URL, with JSON's escaping of "/" not applied, is plain ASCII.
		out := bytes.ReplaceAll(body, []byte("{base}"), []byte(p.srv.URL))
		w.Header().Set("Content-Type", contentType)
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		w.Write(out)
	})
}

// pfIssuerKeyset is the README's NewIssuerKeyset(issuer) as a check.
func pfIssuerKeyset(t *testing.T, c *pfChecks, issuer string) *grpcjwt.Keyset {
	t.Helper()
	var ks *grpcjwt.Keyset
	c.run(t, "NewIssuerKeyset(issuer as the provider spells it)", func(t *testing.T) {
		var err error
		ks, err = grpcjwt.NewIssuerKeyset(t.Context(), issuer, pfQuiet)
		if err != nil {
			t.Fatalf("NewIssuerKeyset(%q): %v", issuer, err)
		}
	})
	if ks == nil {
		t.FailNow()
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// pfVerifier builds a verifier; a failure counts against c (when not nil)
// and ends the provider's test.
func pfVerifier(t *testing.T, c *pfChecks, ks *grpcjwt.Keyset, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	t.Helper()
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		if c != nil {
			c.failed++
		}
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// pfWant is the expected outcome of Verify: an error (errors.Is), or the
// claims.
type pfWant struct {
	err         error
	sub, client string
	aud, scopes []string
}

func pfVerify(t *testing.T, c *pfChecks, name string, v *grpcjwt.Verifier, token string, want pfWant) {
	t.Helper()
	c.run(t, name, func(t *testing.T) { pfCheckClaims(t, v, token, want) })
}

func pfCheckClaims(t *testing.T, v *grpcjwt.Verifier, token string, want pfWant) {
	t.Helper()
	cl, err := v.Verify(t.Context(), token)
	if want.err != nil {
		if !errors.Is(err, want.err) {
			t.Fatalf("Verify: got %v, want %v", err, want.err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if cl.Subject != want.sub || cl.ClientID != want.client || !slices.Equal(cl.Audience, want.aud) || !slices.Equal(cl.Scopes, want.scopes) {
		t.Errorf("claims: sub %q client %q aud %q scopes %q; want sub %q client %q aud %q scopes %q",
			cl.Subject, cl.ClientID, cl.Audience, cl.Scopes, want.sub, want.client, want.aud, want.scopes)
	}
}

const pfMethod = "/grpcjwt.examples.orders.v1.OrderService/"

// pfRPC serves OrderService behind the interceptors with v and checks that
// token passes a rule requiring granted (no scope when empty), is denied
// with PermissionDenied on a rule requiring absent, and opens a stream.
func pfRPC(t *testing.T, c *pfChecks, v *grpcjwt.Verifier, token, sub, granted, absent string) {
	t.Helper()
	create := grpcjwt.Rule{}
	if granted != "" {
		create.Scopes = []string{granted}
	}
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		pfMethod + "ServerInfo":  {Public: true},
		pfMethod + "CreateOrder": create,
		pfMethod + "GetOrder":    {Scopes: []string{absent}},
	})
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	orders := orderpb.NewServer()
	orders.CreatedBy = func(ctx context.Context) string {
		if cl, ok := grpcjwt.ClaimsFromContext(ctx); ok {
			return cl.Subject
		}
		return ""
	}
	opts := []grpcjwt.Option{grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(slog.New(slog.DiscardHandler))}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, opts...)),
		grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(v, opts...)),
	)
	orderpb.RegisterOrderServiceServer(srv, orders)
	if err := policy.CheckServer(srv); err != nil {
		t.Fatalf("CheckServer: %v", err)
	}
	client := orderpb.NewOrderServiceClient(grpcjwttest.Serve(t, srv))

	name := "interceptor: CreateOrder requiring " + granted + ": OK, the subject reaches the handler"
	if granted == "" {
		name = "interceptor: CreateOrder requiring a valid token: OK, the subject reaches the handler"
	}
	c.run(t, name, func(t *testing.T) {
		o, err := client.CreateOrder(grpcjwttest.WithBearer(t.Context(), token), &orderpb.CreateOrderRequest{Item: "widget", Quantity: 1})
		if err != nil {
			t.Fatalf("CreateOrder: %v", err)
		}
		if o.GetCreatedBy() != sub {
			t.Errorf("created_by %q, want %q", o.GetCreatedBy(), sub)
		}
	})
	c.run(t, "interceptor: GetOrder requiring "+absent+": PermissionDenied, insufficient_scope", func(t *testing.T) {
		var trailer metadata.MD
		_, err := client.GetOrder(grpcjwttest.WithBearer(t.Context(), token), &orderpb.GetOrderRequest{Id: "ord-1"}, grpc.Trailer(&trailer))
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("GetOrder: %v, want PermissionDenied", err)
		}
		if wa := strings.Join(trailer.Get("www-authenticate"), " "); !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, absent) {
			t.Errorf("www-authenticate %q", wa)
		}
	})
	c.run(t, "interceptor: WatchOrders stream (default rule): OK", func(t *testing.T) {
		st, err := client.WatchOrders(grpcjwttest.WithBearer(t.Context(), token), &orderpb.WatchOrdersRequest{MaxEvents: 2})
		if err != nil {
			t.Fatalf("WatchOrders: %v", err)
		}
		n := 0
		for {
			_, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			n++
		}
		if n != 2 {
			t.Errorf("%d events, want 2", n)
		}
	})
}

// pfSign signs claims under header, both kept byte for byte as given (so
// that member order and spacing are the provider's).
func pfSign(k *grpcjwttest.Key, header string, claims pfObj) string {
	in := pfB64([]byte(header)) + "." + pfB64(claims.json())
	return in + "." + pfB64(grpcjwttest.SignBytes(k, []byte(in)))
}

// pfObj is a JSON object whose members keep their order.
type pfObj []pfKV

type pfKV struct {
	k string
	v any
}

// pfDelete as a value given to with removes the member.
var pfDelete pfDeleteT

type pfDeleteT struct{}

// pfO builds an object from name, value pairs.
func pfO(kv ...any) pfObj {
	o := make(pfObj, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		o = append(o, pfKV{kv[i].(string), kv[i+1]})
	}
	return o
}

// with returns a copy with members replaced in place, appended when new,
// or removed (pfDelete).
func (o pfObj) with(kv ...any) pfObj {
	out := slices.Clone(o)
	for i := 0; i < len(kv); i += 2 {
		name, val := kv[i].(string), kv[i+1]
		_, del := val.(pfDeleteT)
		j := slices.IndexFunc(out, func(m pfKV) bool { return m.k == name })
		switch {
		case del && j >= 0:
			out = slices.Delete(out, j, j+1)
		case del:
		case j >= 0:
			out[j].v = val
		default:
			out = append(out, pfKV{name, val})
		}
	}
	return out
}

func (o pfObj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(m.k)
		if err != nil {
			return nil, err
		}
		val, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (o pfObj) json() []byte {
	b, err := o.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return b
}

func pfB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func pfSHA1(b []byte) []byte {
	s := sha1.Sum(b)
	return s[:]
}

func pfSHA256(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// pfRSA returns an RSA key's JWK "n" and "e".
func pfRSA(k *grpcjwttest.Key) (n, e string) {
	pub := k.Signer.Public().(*rsa.PublicKey)
	return pfB64(pub.N.Bytes()), pfB64(big.NewInt(int64(pub.E)).Bytes())
}

// pfSerial is a random positive certificate serial number of n bytes.
func pfSerial(n int) *big.Int {
	b := make([]byte, n)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x01
	return new(big.Int).SetBytes(b)
}

// pfCert is a self-signed certificate of k (as providers put in x5c).
func pfCert(t *testing.T, k *grpcjwttest.Key, cn string, serial *big.Int, years int) []byte {
	t.Helper()
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now,
		NotAfter:     now.AddDate(years, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Signer.Public(), k.Signer)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	return der
}

// pfLogRecorder is a slog.Handler that keeps the keyset's records.
type pfLogRecorder struct {
	mu   sync.Mutex
	recs []pfLogRecord
}

type pfLogRecord struct {
	level            slog.Level
	msg, kid, reason string
}

func (h *pfLogRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *pfLogRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := pfLogRecord{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "kid":
			rec.kid = a.Value.String()
		case "reason":
			rec.reason = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *pfLogRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *pfLogRecorder) WithGroup(string) slog.Handler      { return h }

func (h *pfLogRecorder) records() []pfLogRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recs)
}
