package grpcjwt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// TestTroubleshooting reproduces each row of the README's Troubleshooting
// table, in the table's order: it builds the pitfall with real parts (an
// identity provider's metadata and JWK Set over httptest, a token shaped as
// the provider issues it, a gRPC server with the interceptors), checks that
// the error or log line the row shows appears and names the values that
// decided, and then that the row's fix works. Helpers carry a "ts" prefix;
// the "it" helpers come from interceptor_test.go.
func TestTroubleshooting(t *testing.T) {
	t.Run("issuer spelled without the trailing slash (Auth0, Ory Hydra)", tsTrailingSlash)
	t.Run("http issuer of a provider behind a TLS proxy (Keycloak)", tsHTTPIssuer)
	t.Run("aud account (Keycloak without an Audience mapper)", tsKeycloakAccount)
	t.Run("Entra ID v1.0 issuer", tsEntraV1)
	t.Run("opaque access token, not a JWT", tsOpaqueToken)
	t.Run("nbf in the future or expired right after issue (clock skew)", tsClockSkew)
	t.Run("grpcurl list and health probes get missing bearer token", tsHealthAndReflection)
	t.Run("grpc-gateway RegisterXHandlerServer bypasses the interceptors", tsGateway)
	t.Run("discovery URL given to NewRemoteKeyset", tsDiscoveryURLAsJWKS)
	t.Run("JWK Set URL given to NewIssuerKeyset", tsJWKSURLAsIssuer)
	t.Run("ID token sent as the access token", tsIDToken)
	t.Run("WithAlgorithms narrower than the provider signs with", tsAlgorithms)
	t.Run("token signed by an unknown key after a rotation", tsUnknownKey)
}

// tsTrailingSlash: Auth0's metadata names "https://tenant.auth0.com/", and
// the service was configured without the slash.
func tsTrailingSlash(t *testing.T) {
	k := grpcjwttest.NewKey("RS256")
	client := tsSite(t, map[string]any{
		"/.well-known/openid-configuration": map[string]any{
			"issuer":                                "https://tenant.auth0.com/",
			"authorization_endpoint":                "https://tenant.auth0.com/authorize",
			"token_endpoint":                        "https://tenant.auth0.com/oauth/token",
			"userinfo_endpoint":                     "https://tenant.auth0.com/userinfo",
			"jwks_uri":                              "https://tenant.auth0.com/.well-known/jwks.json",
			"response_types_supported":              []string{"code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"HS256", "RS256", "PS256"},
		},
		"/.well-known/jwks.json": tsJWKS(k),
	})

	_, err := grpcjwt.NewIssuerKeyset(t.Context(), "https://tenant.auth0.com",
		grpcjwt.WithHTTPClient(client), grpcjwt.WithKeysetLogger(itDiscard))
	tsWantText(t, err, `grpcjwt: Discover: the metadata document at https://tenant.auth0.com/.well-known/openid-configuration `+
		`names the issuer "https://tenant.auth0.com/", not the configured "https://tenant.auth0.com"; they must match exactly `+
		`(the trailing slash differs: use the document's spelling, as the tokens' iss has it)`)

	// The fix: the document's spelling, which is also the tokens' iss.
	ks := tsIssuerKeyset(t, "https://tenant.auth0.com/", client)
	v := tsVerifier(t, ks, grpcjwt.WithAudience("https://api.example.com/orders"))
	now := time.Now().Unix()
	tok := grpcjwttest.Sign(k, map[string]any{"typ": "JWT"}, map[string]any{
		"iss":   "https://tenant.auth0.com/",
		"sub":   "auth0|64f1c2a9e4b0a1b2c3d4e5f6",
		"aud":   []string{"https://api.example.com/orders", "https://tenant.auth0.com/userinfo"},
		"iat":   now,
		"exp":   now + 86400,
		"scope": "openid profile read:orders",
		"azp":   "8hDgYk3QzLr2WnVb6uTc9XsPa1Ej7MoN",
	})
	c, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("Verify of an Auth0 token with the document's issuer: %v", err)
	}
	if c.Issuer != "https://tenant.auth0.com/" {
		t.Errorf("Issuer = %q, want the slash-terminated spelling", c.Issuer)
	}
}

// tsHTTPIssuer: Keycloak behind a TLS-terminating proxy, without its
// hostname setting, announces (and stamps into tokens) its internal http URL.
func tsHTTPIssuer(t *testing.T) {
	const (
		public   = "https://idp.example/realms/r"
		internal = "http://idp.example/realms/r"
		api      = "orders-api"
	)
	k := grpcjwttest.NewKey("RS256")
	keycloak := func(announced string) *http.Client {
		return tsSite(t, map[string]any{
			"/realms/r/.well-known/openid-configuration": map[string]any{
				"issuer":                 announced,
				"authorization_endpoint": announced + "/protocol/openid-connect/auth",
				"token_endpoint":         announced + "/protocol/openid-connect/token",
				"jwks_uri":               announced + "/protocol/openid-connect/certs",
			},
			"/realms/r/protocol/openid-connect/certs": tsJWKS(k),
		})
	}
	token := func(iss string) string {
		now := time.Now().Unix()
		return grpcjwttest.Sign(k, map[string]any{"typ": "JWT"}, map[string]any{
			"iss": iss, "sub": "b7afc098-30ce-43c7-abfa-043ab484a779", "aud": api, "typ": "Bearer",
			"azp": "orders-web", "iat": now, "exp": now + 300, "scope": "openid profile",
		})
	}

	// From Discover: the document names the http issuer.
	misconfigured := keycloak(internal)
	_, err := grpcjwt.NewIssuerKeyset(t.Context(), public,
		grpcjwt.WithHTTPClient(misconfigured), grpcjwt.WithKeysetLogger(itDiscard))
	tsWantText(t, err, `grpcjwt: Discover: the metadata document at https://idp.example/realms/r/.well-known/openid-configuration `+
		`names the issuer "http://idp.example/realms/r", not the configured "https://idp.example/realms/r"; they must match exactly `+
		`(the scheme differs: a provider behind a proxy may announce http; fix its public URL setting)`)

	// From the verifier: keys from the JWK Set URL, the public issuer
	// configured, and a token whose iss is the http one.
	ks := tsKeyset(t, public+"/protocol/openid-connect/certs", misconfigured)
	v := tsVerifier(t, ks, grpcjwt.WithIssuer(public), grpcjwt.WithAudience(api))
	_, err = v.Verify(t.Context(), token(internal))
	tsWantCheck(t, err, grpcjwt.ErrIssuer, "iss", `"http://idp.example/realms/r"`, `one of ["https://idp.example/realms/r"]`)
	tsWantText(t, err, `grpcjwt: token issuer not trusted: iss is "http://idp.example/realms/r", want one of ["https://idp.example/realms/r"]`)

	// The fix: the provider's public URL set (KC_HOSTNAME, proxy headers),
	// so that discovery and tokens say https.
	fixed := tsIssuerKeyset(t, public, keycloak(public))
	v = tsVerifier(t, fixed, grpcjwt.WithAudience(api))
	if _, err := v.Verify(t.Context(), token(public)); err != nil {
		t.Fatalf("Verify of a token with the public issuer: %v", err)
	}
	// And the http issuer is never trusted.
	_, err = v.Verify(t.Context(), token(internal))
	tsWantCheck(t, err, grpcjwt.ErrIssuer, "iss", `"http://idp.example/realms/r"`, `one of ["https://idp.example/realms/r"]`)
}

// tsKeycloakAccount: a Keycloak access token whose aud is "account" only,
// refused through a real gRPC server; the log line is the README's.
func tsKeycloakAccount(t *testing.T) {
	const api = "orders-api"
	is := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("RS256"), grpcjwttest.WithPath("realms/r"))
	t.Cleanup(is.Close)
	token := func(aud any) string {
		now := time.Now().Unix()
		return is.MintWith(is.SigningKey(), map[string]any{"typ": "JWT"}, map[string]any{
			"exp": now + 300, "iat": now, "jti": "onrtac:0c9e4b5e-2f7d-4a4a-9d1c-3f3b2f8b7a61",
			"iss": is.URL(), "aud": aud, "sub": "b7afc098-30ce-43c7-abfa-043ab484a779",
			"typ": "Bearer", "azp": "orders-web", "sid": "ded04dec-4bc2-482e-9cd2-c875365639dd", "acr": "1",
			"realm_access":       map[string]any{"roles": []string{"default-roles-r", "offline_access", "uma_authorization"}},
			"resource_access":    map[string]any{"account": map[string]any{"roles": []string{"manage-account", "view-profile"}}},
			"scope":              "openid profile email",
			"email_verified":     true,
			"preferred_username": "alice",
		})
	}
	v := tsIssuerVerifier(t, is, api)

	// The verifier's own error.
	_, err := v.Verify(t.Context(), token("account"))
	tsWantText(t, err, `grpcjwt: token audience not accepted: aud is ["account"], want one of ["orders-api"]`)

	// What the client and the operator see.
	logs := &itLogs{}
	policy := itPolicy(t, map[string]grpcjwt.Rule{itService: {}})
	client, _, srv := itProtect(t, v, grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(slog.New(logs)))
	out := itCallUnary(itBearer(t.Context(), token("account")), client)
	if out.code != codes.Unauthenticated || out.msg != "token audience not accepted" {
		t.Errorf("client got %v %q, want Unauthenticated %q", out.code, out.msg, "token audience not accepted")
	}
	tsWantLog(t, logs, slog.LevelWarn, map[string]string{
		"method": itUnary, "rule": itService, "code": "Unauthenticated",
		"reason": "grpcjwt: token audience not accepted",
		"check":  "aud", "got": `["account"]`, "want": `one of ["orders-api"]`,
	})
	if n := srv.calls.Load(); n != 0 {
		t.Errorf("handler ran %d times for a refused call", n)
	}

	// The fix: an Audience mapper for orders-api on the client, so that aud
	// names the API (Keycloak then sends an array).
	out = itCallUnary(itBearer(t.Context(), token([]string{api, "account"})), client)
	if out.code != codes.OK {
		t.Fatalf("with an Audience mapper: %v %q, want OK", out.code, out.msg)
	}
	if got := strings.Join(out.header.Get("x-aud"), ","); got != "orders-api account" {
		t.Errorf("handler saw aud %q, want %q", got, "orders-api account")
	}
}

// tsEntraV1: the app registration issues v1.0 tokens (iss
// sts.windows.net) while the service trusts the v2.0 issuer it discovered.
func tsEntraV1(t *testing.T) {
	const (
		tenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		clientID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
		appIDURI = "api://" + clientID
		v1       = "https://sts.windows.net/" + tenant + "/"
		v2       = "https://login.microsoftonline.com/" + tenant + "/v2.0"
	)
	k := grpcjwttest.NewKey("RS256")
	client := tsSite(t, map[string]any{
		"/" + tenant + "/v2.0/.well-known/openid-configuration": map[string]any{
			"issuer":                                v2,
			"token_endpoint":                        "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token",
			"jwks_uri":                              "https://login.microsoftonline.com/" + tenant + "/discovery/v2.0/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"cloud_instance_name":                   "microsoftonline.com",
		},
		"/" + tenant + "/discovery/v2.0/keys": tsJWKS(k),
	})
	token := func(iss, aud, ver string) string {
		now := time.Now().Unix()
		c := map[string]any{
			"aud": aud, "iss": iss, "iat": now, "nbf": now, "exp": now + 3899,
			"oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474", "scp": "Orders.Read",
			"sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", "tid": tenant, "ver": ver,
		}
		if ver == "1.0" {
			c["appid"] = "75dbe77f-10a3-4e59-85fd-8c127544f17c"
		} else {
			c["azp"] = "75dbe77f-10a3-4e59-85fd-8c127544f17c"
		}
		return grpcjwttest.Sign(k, map[string]any{"typ": "JWT"}, c)
	}
	ks := tsIssuerKeyset(t, v2, client)
	v := tsVerifier(t, ks, grpcjwt.WithAudience(appIDURI, clientID), grpcjwt.WithScopeClaims("scp", "roles"))
	_, err := v.Verify(t.Context(), token(v1, appIDURI, "1.0"))
	tsWantCheck(t, err, grpcjwt.ErrIssuer, "iss", `"`+v1+`"`, `one of ["`+v2+`"]`)
	tsWantText(t, err, `grpcjwt: token issuer not trusted: iss is "https://sts.windows.net/`+tenant+`/", `+
		`want one of ["https://login.microsoftonline.com/`+tenant+`/v2.0"]`)

	// Fix 1: accessTokenAcceptedVersion 2, so that tokens carry the v2 issuer.
	if _, err := v.Verify(t.Context(), token(v2, clientID, "2.0")); err != nil {
		t.Errorf("Verify of a v2.0 token: %v", err)
	}
	// Fix 2: trust the v1 issuer too, as the provider table says.
	v = tsVerifier(t, ks, grpcjwt.WithIssuer(v1, v2), grpcjwt.WithAudience(appIDURI, clientID), grpcjwt.WithScopeClaims("scp", "roles"))
	c, err := v.Verify(t.Context(), token(v1, appIDURI, "1.0"))
	if err != nil {
		t.Fatalf("Verify of a v1.0 token with WithIssuer(v1, v2): %v", err)
	}
	if !c.HasScope("Orders.Read") || c.ClientID != "75dbe77f-10a3-4e59-85fd-8c127544f17c" {
		t.Errorf("v1.0 claims: scopes %q, client %q", c.Scopes, c.ClientID)
	}
	if _, err := v.Verify(t.Context(), token(v2, clientID, "2.0")); err != nil {
		t.Errorf("Verify of a v2.0 token with WithIssuer(v1, v2): %v", err)
	}
}

// tsOpaqueToken: Logto issues an opaque access token when the token
// request names no resource.
func tsOpaqueToken(t *testing.T) {
	const resource = "https://api.example.com/orders"
	is := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("ES384"), grpcjwttest.WithPath("oidc"))
	t.Cleanup(is.Close)
	v := tsIssuerVerifier(t, is, resource)
	const opaque = "pvpu8yxvaqpT0yJGlzCW0wHzTb8b_VOpPUwBKiKFrDo" // oidc-provider's 43 characters
	const want = "grpcjwt: malformed token: not a JWT (no dots): an opaque access token? " +
		"Logto, Auth0 and Zitadel issue opaque tokens when the token request names no API " +
		"(Logto: resource=, Auth0: audience=; Zitadel: choose JWT access tokens in the app)"

	_, err := v.Verify(t.Context(), opaque)
	if !errors.Is(err, grpcjwt.ErrMalformed) {
		t.Errorf("Verify: %v, want ErrMalformed", err)
	}
	tsWantText(t, err, want)
	// A verifier of several issuers gives the same hint.
	other := grpcjwttest.NewIssuer()
	t.Cleanup(other.Close)
	multi, err := grpcjwt.NewMultiIssuerVerifier(v, tsIssuerVerifier(t, other, resource))
	if err != nil {
		t.Fatal(err)
	}
	_, err = multi.Verify(t.Context(), opaque)
	tsWantText(t, err, want)

	logs := &itLogs{}
	client, _, _ := itProtect(t, v, grpcjwt.WithLogger(slog.New(logs)))
	out := itCallUnary(itBearer(t.Context(), opaque), client)
	if out.code != codes.Unauthenticated || out.msg != "malformed token" {
		t.Errorf("client got %v %q, want Unauthenticated %q", out.code, out.msg, "malformed token")
	}
	rec := tsWantLog(t, logs, slog.LevelWarn, map[string]string{
		"method": itUnary, "code": "Unauthenticated", "reason": "grpcjwt: malformed token", "error": want,
	})
	if strings.Contains(fmt.Sprint(rec.attrs), opaque) {
		t.Errorf("the log names the unverified token: %v", rec.attrs)
	}

	// The fix: the token request names the API (resource=), and Logto
	// issues a JWT for it.
	out = itCallUnary(itBearer(t.Context(), is.Mint(is.Claims(resource, "read:orders"))), client)
	if out.code != codes.OK {
		t.Errorf("a JWT for the resource: %v %q, want OK", out.code, out.msg)
	}
}

// tsClockSkew: the server's clock, fixed with WithClock, is off from the
// provider's by more than the leeway.
func tsClockSkew(t *testing.T) {
	is := itIssuer(t)
	issued := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) // by the provider's clock
	token := func(lifetime time.Duration) string {
		c := is.Claims(itAudience)
		c["iat"], c["nbf"], c["exp"] = issued.Unix(), issued.Unix(), issued.Add(lifetime).Unix()
		return is.Mint(c)
	}
	at := func(now time.Time, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
		return tsIssuerVerifier(t, is, itAudience, append([]grpcjwt.VerifierOption{grpcjwt.WithClock(func() time.Time { return now })}, opts...)...)
	}

	// The server's clock 2 minutes behind: nbf lies in its future.
	behind := issued.Add(-2 * time.Minute)
	_, err := at(behind).Verify(t.Context(), token(time.Hour))
	tsWantCheck(t, err, grpcjwt.ErrNotYetValid, "nbf", "2026-05-01T12:00:00Z",
		"at most 2026-05-01T11:58:30Z (the server's clock 2026-05-01T11:58:00Z plus the leeway 30s)")
	tsWantText(t, err, "grpcjwt: token not yet valid: nbf is 2026-05-01T12:00:00Z, "+
		"want at most 2026-05-01T11:58:30Z (the server's clock 2026-05-01T11:58:00Z plus the leeway 30s)")

	// The server's clock 6 minutes ahead: Keycloak's 5-minute token is
	// expired right after issue.
	ahead := issued.Add(6 * time.Minute)
	_, err = at(ahead).Verify(t.Context(), token(5*time.Minute))
	tsWantCheck(t, err, grpcjwt.ErrExpired, "exp", "2026-05-01T12:05:00Z",
		"after 2026-05-01T12:05:30Z (the server's clock 2026-05-01T12:06:00Z less the leeway 30s)")
	tsWantText(t, err, "grpcjwt: token expired: exp is 2026-05-01T12:05:00Z, "+
		"want after 2026-05-01T12:05:30Z (the server's clock 2026-05-01T12:06:00Z less the leeway 30s)")

	// The fix: clocks in step (NTP), both tokens pass.
	synced := issued.Add(time.Second)
	if _, err := at(synced).Verify(t.Context(), token(time.Hour)); err != nil {
		t.Errorf("clocks in step, 1-hour token: %v", err)
	}
	if _, err := at(synced).Verify(t.Context(), token(5*time.Minute)); err != nil {
		t.Errorf("clocks in step, 5-minute token: %v", err)
	}
	// Only if you must: a leeway above the skew, at most 5 minutes.
	if _, err := at(behind, grpcjwt.WithLeeway(3*time.Minute)).Verify(t.Context(), token(time.Hour)); err != nil {
		t.Errorf("leeway 3m, clock 2m behind: %v", err)
	}
	ks, err := grpcjwt.NewStaticKeyset(is.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	_, err = grpcjwt.NewVerifier(ks, grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(itAudience), grpcjwt.WithLeeway(6*time.Minute))
	tsWantText(t, err, "grpcjwt: WithLeeway: 6m0s is outside [0, 5m]")
}

// tsHealthAndReflection: a server with health and reflection whose policy
// leaves them to the built-in default; `grpcurl list` is a reflection
// ListServices call.
func tsHealthAndReflection(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	rules := map[string]grpcjwt.Rule{itService: {}}
	serve := func(policy *grpcjwt.Policy, logs *itLogs) *grpc.ClientConn {
		opts := []grpcjwt.Option{grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(slog.New(logs))}
		srv := grpc.NewServer(
			grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, opts...)),
			grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(v, opts...)))
		testpb.RegisterTestServiceServer(srv, &itServer{})
		healthpb.RegisterHealthServer(srv, health.NewServer())
		reflection.Register(srv) // v1 and v1alpha
		if err := policy.CheckServer(srv); err != nil {
			t.Fatalf("CheckServer: %v", err)
		}
		return grpcjwttest.Serve(t, srv)
	}

	logs := &itLogs{}
	cc := serve(itPolicy(t, rules), logs)
	_, err := rlListServices(t.Context(), cc, "v1")
	tsWantStatus(t, "grpcurl list", err, codes.Unauthenticated, "missing bearer token")
	_, err = healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	tsWantStatus(t, "health probe", err, codes.Unauthenticated, "missing bearer token")
	for _, method := range []string{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", itHealth} {
		if got := logs.find("grpcjwt: call refused", map[string]string{
			"method": method, "rule": "(built-in default: valid token required)", "code": "Unauthenticated",
			"reason": "grpcjwt: missing bearer token", "error": "grpcjwt: missing bearer token",
		}); len(got) != 1 {
			t.Errorf("refusal of %s logged %d times, want once; log:\n%s", method, len(got), logs)
		}
	}

	// The fix: PublicHealthAndReflection beside the rules.
	policy, err := grpcjwt.NewPolicy(grpcjwt.PublicHealthAndReflection(), rules)
	if err != nil {
		t.Fatal(err)
	}
	cc = serve(policy, &itLogs{})
	wantServices := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection", "grpc.testing.TestService"}
	services, err := rlListServices(t.Context(), cc, "v1")
	if err != nil || !slices.Equal(services, wantServices) {
		t.Errorf("grpcurl list (v1): %v, %v; want %v", services, err, wantServices)
	}
	services, err = rlListServices(t.Context(), cc, "v1alpha") // older grpcurl
	if err != nil || !slices.Equal(services, wantServices) {
		t.Errorf("grpcurl list (v1alpha): %v, %v; want %v", services, err, wantServices)
	}
	resp, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health probe: %v, %v; want SERVING", resp.GetStatus(), err)
	}
	// The service itself still needs a token.
	out := itCallUnary(t.Context(), testpb.NewTestServiceClient(cc))
	if out.code != codes.Unauthenticated || out.msg != "missing bearer token" {
		t.Errorf("TestService without a token: %v %q, want Unauthenticated", out.code, out.msg)
	}
}

// tsGateway: grpc-gateway is not a dependency of this module, so the test
// reproduces its two registrations by their mechanism.
// RegisterXHandlerServer(ctx, mux, server) serves an HTTP request by
// calling server's method in process, with a runtime.ServerTransportStream
// in the context and the HTTP headers as incoming metadata: no gRPC server,
// so no interceptor, runs. RegisterXHandlerFromEndpoint (and RegisterXHandler
// on a connection) calls through a gRPC client connection to the server,
// where the interceptors run on the forwarded Authorization header.
func tsGateway(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	logs := &itLogs{}
	client, _, impl := itProtect(t, v, grpcjwt.WithLogger(slog.New(logs)))

	// RegisterXHandlerServer: the registered implementation, called
	// directly. No token, and a token that is not even a JWT: both reach
	// the handler, which finds no claims.
	for _, authz := range [][]string{nil, {"Bearer not-a-token"}} {
		stream := &tsTransportStream{method: itUnary}
		ctx := grpc.NewContextWithServerTransportStream(metadata.NewIncomingContext(t.Context(), metadata.MD{"authorization": authz}), stream)
		before := impl.calls.Load()
		resp, err := impl.UnaryCall(ctx, &testpb.SimpleRequest{})
		if err != nil {
			t.Fatalf("in-process call with authorization %q: %v", authz, err)
		}
		if impl.calls.Load() != before+1 || resp.GetUsername() != itNoClaims || strings.Join(stream.header.Get("x-sub"), ",") != itNoClaims {
			t.Errorf("in-process call with authorization %q: handler ran %d times, subject %q; want once, without claims",
				authz, impl.calls.Load()-before, resp.GetUsername())
		}
	}
	if recs := logs.records(); len(recs) != 0 {
		t.Errorf("in-process calls were seen by grpcjwt: %v", logs)
	}

	// RegisterXHandlerFromEndpoint: through a client connection. Without
	// the Authorization header forwarded, refused before the handler.
	before := impl.calls.Load()
	out := itCallUnary(t.Context(), client)
	if out.code != codes.Unauthenticated || out.msg != "missing bearer token" || impl.calls.Load() != before {
		t.Errorf("through the server without a token: %v %q, handler ran %d times; want Unauthenticated, never",
			out.code, out.msg, impl.calls.Load()-before)
	}
	// With it forwarded as "authorization" metadata: the handler gets the claims.
	out = itCallUnary(grpcjwttest.WithBearer(t.Context(), is.Mint(is.Claims(itAudience))), client)
	if out.code != codes.OK || out.sub() != "user-123" {
		t.Errorf("through the server with the token: %v %q, subject %q; want OK, user-123", out.code, out.msg, out.sub())
	}
}

// tsTransportStream is the grpc.ServerTransportStream that grpc-gateway's
// RegisterXHandlerServer puts in the context (runtime.ServerTransportStream).
type tsTransportStream struct {
	method          string
	mu              sync.Mutex
	header, trailer metadata.MD
}

func (s *tsTransportStream) Method() string { return s.method }

func (s *tsTransportStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *tsTransportStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *tsTransportStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// tsDiscoveryURLAsJWKS: the metadata URL (or the issuer) given where the
// JWK Set URL belongs. The metadata document and the issuer each get the
// row's hint; "JWK Set holds no usable signing key" is what a JWK Set
// without a usable key gets (checked last here), not this cause.
func tsDiscoveryURLAsJWKS(t *testing.T) {
	is := grpcjwttest.NewIssuer(grpcjwttest.WithPath("oidc"))
	t.Cleanup(is.Close)
	ctx := t.Context()
	opts := []grpcjwt.KeysetOption{grpcjwt.WithHTTPClient(is.HTTPClient()), grpcjwt.WithKeysetLogger(itDiscard)}

	discovery := is.URL() + "/.well-known/openid-configuration"
	_, err := grpcjwt.NewRemoteKeyset(ctx, discovery, opts...)
	if !errors.Is(err, grpcjwt.ErrKeysUnavailable) {
		t.Errorf("NewRemoteKeyset(discovery URL): %v, want ErrKeysUnavailable", err)
	}
	tsWantText(t, err, fmt.Sprintf("grpcjwt: signing keys unavailable: first JWKS fetch failed: "+
		"grpcjwt: this is an issuer's metadata document, not a JWK Set: pass its jwks_uri %q to NewRemoteKeyset, "+
		"or the issuer to NewIssuerKeyset (JWKS URL %s)", is.JWKSURL(), discovery))

	_, err = grpcjwt.NewRemoteKeyset(ctx, is.URL(), opts...)
	tsWantText(t, err, fmt.Sprintf("grpcjwt: signing keys unavailable: first JWKS fetch failed: "+
		"grpcjwt: JWKS endpoint %s answered HTTP 404; %q is an issuer, not a JWK Set URL: use NewIssuerKeyset, or its jwks_uri %q",
		is.URL(), is.URL(), is.JWKSURL()))

	// The fixes: NewIssuerKeyset(issuer), or NewRemoteKeyset(jwks_uri).
	tok := is.Mint(is.Claims(itAudience))
	for name, ks := range map[string]*grpcjwt.Keyset{
		"NewIssuerKeyset(issuer)":   tsIssuerKeyset(t, is.URL(), is.HTTPClient()),
		"NewRemoteKeyset(jwks_uri)": tsKeyset(t, is.JWKSURL(), is.HTTPClient()),
	} {
		v := tsVerifier(t, ks, grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(itAudience))
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Errorf("%s: Verify: %v", name, err)
		}
	}

	// Where "JWK Set holds no usable signing key" does come from.
	is.SetFailure(grpcjwttest.FailEmpty)
	_, err = grpcjwt.NewRemoteKeyset(ctx, is.JWKSURL(), opts...)
	tsWantText(t, err, fmt.Sprintf("grpcjwt: signing keys unavailable: first JWKS fetch failed: "+
		"grpcjwt: JWK Set holds no usable signing key (JWKS URL %s)", is.JWKSURL()))
}

// tsJWKSURLAsIssuer: the JWK Set URL, or a wrong URL (Logto's host without
// its /oidc), given where the issuer belongs.
func tsJWKSURLAsIssuer(t *testing.T) {
	is := grpcjwttest.NewIssuer(grpcjwttest.WithPath("oidc"))
	t.Cleanup(is.Close)
	ctx := t.Context()
	opts := []grpcjwt.KeysetOption{grpcjwt.WithHTTPClient(is.HTTPClient()), grpcjwt.WithKeysetLogger(itDiscard)}

	_, err := grpcjwt.NewIssuerKeyset(ctx, is.JWKSURL(), opts...)
	tsWantText(t, err, fmt.Sprintf("grpcjwt: Discover: %q is a JWK Set URL, not an issuer: "+
		"pass it to NewRemoteKeyset (with WithIssuer), or give NewIssuerKeyset the issuer", is.JWKSURL()))

	host := strings.TrimSuffix(is.URL(), "/oidc")
	_, err = grpcjwt.NewIssuerKeyset(ctx, host, opts...)
	tsWantText(t, err, fmt.Sprintf("grpcjwt: Discover: no metadata document at %s/.well-known/openid-configuration "+
		"or %s/.well-known/oauth-authorization-server (HTTP 404): is %q the issuer, as the tokens' iss spells it?", host, host, host))

	// The fixes: the issuer as the tokens' iss spells it, or the JWK Set
	// URL with NewRemoteKeyset and WithIssuer.
	tok := is.Mint(is.Claims(itAudience))
	v := tsVerifier(t, tsIssuerKeyset(t, is.URL(), is.HTTPClient()), grpcjwt.WithAudience(itAudience))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("NewIssuerKeyset(issuer): Verify: %v", err)
	}
	v = tsVerifier(t, tsKeyset(t, is.JWKSURL(), is.HTTPClient()), grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(itAudience))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("NewRemoteKeyset(jwks) with WithIssuer: Verify: %v", err)
	}
}

// tsIDToken: the client sends its ID token (aud its own client ID,
// at_hash) instead of the access token.
func tsIDToken(t *testing.T) {
	const clientID = "orders-web"
	is := itIssuer(t)
	now := time.Now().Unix()
	idToken := is.MintWith(is.SigningKey(), map[string]any{"typ": "JWT"}, map[string]any{
		"iss": is.URL(), "sub": "user-123", "aud": clientID, "azp": clientID, "exp": now + 300, "iat": now,
		"auth_time": now - 5, "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "email": "alice@example.com",
	})
	v := tsIssuerVerifier(t, is, itAudience)
	_, err := v.Verify(t.Context(), idToken)
	if !errors.Is(err, grpcjwt.ErrTokenType) {
		t.Errorf("Verify(ID token): %v, want ErrTokenType", err)
	}
	tsWantText(t, err, "grpcjwt: token type not accepted: an ID token (it carries at_hash), not an access token")

	// The fix: send the access token.
	if _, err := v.Verify(t.Context(), is.Mint(is.Claims(itAudience))); err != nil {
		t.Errorf("Verify(access token): %v", err)
	}
	// Dex, whose access tokens are built like ID tokens: the provider
	// table's settings accept them.
	dex := tsIssuerVerifier(t, is, clientID, grpcjwt.InsecureAcceptIDTokens())
	if _, err := dex.Verify(t.Context(), idToken); err != nil {
		t.Errorf("Dex settings: Verify: %v", err)
	}
}

// tsAlgorithms: the service pinned RS256; the provider starts signing with
// a new ES256 key.
func tsAlgorithms(t *testing.T) {
	is := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("RS256"))
	t.Cleanup(is.Close)
	ks := tsKeyset(t, is.JWKSURL(), is.HTTPClient())
	opts := []grpcjwt.VerifierOption{grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(itAudience)}
	pinned := tsVerifier(t, ks, append(opts, grpcjwt.WithAlgorithms("RS256"))...)
	if _, err := pinned.Verify(t.Context(), is.Mint(is.Claims(itAudience))); err != nil {
		t.Fatalf("RS256 token: %v", err)
	}

	es := is.AddKey("ES256") // the provider's rotation to a new algorithm
	tok := is.MintWith(es, nil, is.Claims(itAudience))
	_, err := pinned.Verify(t.Context(), tok)
	if !errors.Is(err, grpcjwt.ErrAlgorithm) {
		t.Errorf("Verify: %v, want ErrAlgorithm", err)
	}
	tsWantText(t, err, "grpcjwt: signing algorithm not accepted: alg ES256 is not on the allow-list [RS256]")

	// The fixes: no WithAlgorithms (the new kid is fetched, its key bound
	// to ES256), or the new algorithm added.
	if _, err := tsVerifier(t, ks, opts...).Verify(t.Context(), tok); err != nil {
		t.Errorf("without WithAlgorithms: %v", err)
	}
	if _, err := tsVerifier(t, ks, append(opts, grpcjwt.WithAlgorithms("RS256", "ES256"))...).Verify(t.Context(), tok); err != nil {
		t.Errorf("WithAlgorithms(RS256, ES256): %v", err)
	}
}

// tsUnknownKey: a token with a forged kid spends the keyset's one
// unknown-key refetch of the interval; the issuer then rotates, and its
// first token is refused until the interval (30 s) has passed. The row's
// text is the client's status message; the operator's log line says "no
// key matches the token", with the rate limit and the kids held.
func tsUnknownKey(t *testing.T) {
	is := itIssuer(t)
	oldKID := is.SigningKey().ID
	forged := grpcjwttest.Sign(grpcjwttest.NewKey("ES256"), nil, is.Claims(itAudience))

	run := func(ksOpts ...grpcjwt.KeysetOption) (outcome itOutcome, logs *itLogs, fetches int) {
		is.RetireOldKeys()
		ks := tsKeyset(t, is.JWKSURL(), is.HTTPClient(), ksOpts...)
		v := tsVerifier(t, ks, grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(itAudience))
		logs = &itLogs{}
		client, _, _ := itProtect(t, v, grpcjwt.WithLogger(slog.New(logs)))
		out := itCallUnary(itBearer(t.Context(), forged), client)
		if out.code != codes.Unauthenticated || out.msg != "token signed by an unknown key" {
			t.Errorf("forged kid: %v %q, want Unauthenticated %q", out.code, out.msg, "token signed by an unknown key")
		}
		is.Rotate()
		hits := is.JWKSHits()
		outcome = itCallUnary(itBearer(t.Context(), is.Mint(is.Claims(itAudience))), client)
		return outcome, logs, is.JWKSHits() - hits
	}

	out, logs, fetches := run()
	if out.code != codes.Unauthenticated || out.msg != "token signed by an unknown key" {
		t.Errorf("new key within the interval: %v %q, want Unauthenticated %q", out.code, out.msg, "token signed by an unknown key")
	}
	if fetches != 0 {
		t.Errorf("the refused token fetched the JWK Set %d times, want 0 (rate limited)", fetches)
	}
	// The operator's line names the rate limit and the kids held (the
	// issuer's, not the token's unverified kid).
	tsWantLog(t, logs, slog.LevelDebug, map[string]string{
		"method": itUnary, "code": "Unauthenticated", "reason": "grpcjwt: no key matches the token",
		"error": fmt.Sprintf("grpcjwt: no key matches the token: refresh skipped, unknown-key refresh rate limit in force; "+
			"the keyset holds kids [%q]", oldKID),
	})

	// The fix: a shorter interval (0 here, so that the test needs no
	// sleep): the new key's first token fetches it and passes.
	out, _, fetches = run(grpcjwt.WithUnknownKeyRefreshInterval(0))
	if out.code != codes.OK || out.sub() != "user-123" || fetches != 1 {
		t.Errorf("interval 0: new key's token: %v %q, subject %q, after %d fetches; want OK after 1", out.code, out.msg, out.sub(), fetches)
	}
}

// tsSite serves docs, JSON documents by URL path, over TLS for any host
// name: the client it returns dials the test server whatever host a URL
// names, so that a provider's real issuer URLs can be used, and checks the
// server's certificate (issued to example.com).
func tsSite(t *testing.T, docs map[string]any) *http.Client {
	t.Helper()
	mux := http.NewServeMux()
	for path, doc := range docs {
		body, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		})
	}
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.ServerName = "example.com"
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// tsJWKS is the JWK Set publishing keys.
func tsJWKS(keys ...*grpcjwttest.Key) map[string]any {
	var set []any
	for _, k := range keys {
		set = append(set, k.Public())
	}
	return map[string]any{"keys": set}
}

// tsKeyset is NewRemoteKeyset(jwksURL) through client, closed when the
// test ends.
func tsKeyset(t *testing.T, jwksURL string, client *http.Client, opts ...grpcjwt.KeysetOption) *grpcjwt.Keyset {
	t.Helper()
	ks, err := grpcjwt.NewRemoteKeyset(t.Context(), jwksURL,
		append([]grpcjwt.KeysetOption{grpcjwt.WithHTTPClient(client), grpcjwt.WithKeysetLogger(itDiscard)}, opts...)...)
	if err != nil {
		t.Fatalf("NewRemoteKeyset(%s): %v", jwksURL, err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// tsIssuerKeyset is NewIssuerKeyset(issuer) through client, closed when
// the test ends.
func tsIssuerKeyset(t *testing.T, issuer string, client *http.Client) *grpcjwt.Keyset {
	t.Helper()
	ks, err := grpcjwt.NewIssuerKeyset(t.Context(), issuer, grpcjwt.WithHTTPClient(client), grpcjwt.WithKeysetLogger(itDiscard))
	if err != nil {
		t.Fatalf("NewIssuerKeyset(%s): %v", issuer, err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// tsIssuerVerifier is a verifier for is and aud over a remote keyset on
// is's JWK Set.
func tsIssuerVerifier(t *testing.T, is *grpcjwttest.Issuer, aud string, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	t.Helper()
	ks := tsKeyset(t, is.JWKSURL(), is.HTTPClient())
	return tsVerifier(t, ks, append([]grpcjwt.VerifierOption{grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(aud)}, opts...)...)
}

func tsVerifier(t *testing.T, ks *grpcjwt.Keyset, opts ...grpcjwt.VerifierOption) *grpcjwt.Verifier {
	t.Helper()
	v, err := grpcjwt.NewVerifier(ks, opts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// tsWantText fails unless err's text is want.
func tsWantText(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want %q", want)
	} else if err.Error() != want {
		t.Errorf("error:\n got %q\nwant %q", err, want)
	}
}

// tsWantCheck fails unless err is a CheckError of sentinel with these
// values.
func tsWantCheck(t *testing.T, err, sentinel error, check, got, want string) {
	t.Helper()
	var ce *grpcjwt.CheckError
	if !errors.As(err, &ce) || !errors.Is(err, sentinel) {
		t.Errorf("error %v: want a CheckError of %v", err, sentinel)
		return
	}
	if ce.Check != check || ce.Got != got || ce.Want != want {
		t.Errorf("CheckError{Check: %q, Got: %q, Want: %q}, want {%q, %q, %q}", ce.Check, ce.Got, ce.Want, check, got, want)
	}
}

// tsWantLog fails unless logs hold exactly one refusal with attrs, at
// level, and returns it.
func tsWantLog(t *testing.T, logs *itLogs, level slog.Level, attrs map[string]string) itRecord {
	t.Helper()
	recs := logs.find("grpcjwt: call refused", attrs)
	if len(recs) != 1 {
		t.Fatalf("%d refusals logged with %v, want 1; log:\n%s", len(recs), attrs, logs)
	}
	if recs[0].level != level {
		t.Errorf("refusal logged at %v, want %v", recs[0].level, level)
	}
	return recs[0]
}

func tsWantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if c, m := itStatus(err); c != code || m != msg {
		t.Errorf("%s: %v %q, want %v %q", what, c, m, code, msg)
	}
}
