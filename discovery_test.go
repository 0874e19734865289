package grpcjwt_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

var quiet = grpcjwt.WithKeysetLogger(slog.New(slog.DiscardHandler))

func TestNewIssuerKeyset(t *testing.T) {
	for _, path := range []string{"", "/oidc"} { // root and Logto's path-style issuers
		t.Run("path="+path, func(t *testing.T) {
			is := grpcjwttest.NewIssuer(grpcjwttest.WithAlgorithm("ES384"), grpcjwttest.WithPath(path))
			defer is.Close()
			ks, err := grpcjwt.NewIssuerKeyset(t.Context(), is.URL(), quiet)
			if err != nil {
				t.Fatalf("NewIssuerKeyset: %v", err)
			}
			defer ks.Close()
			// No WithIssuer: the discovered issuer is trusted, and only it.
			v, err := grpcjwt.NewVerifier(ks, grpcjwt.WithAudience("api"))
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			if _, err := v.Verify(t.Context(), is.Mint(is.Claims("api"))); err != nil {
				t.Errorf("token of the discovered issuer: %v", err)
			}
			other := is.Claims("api")
			other["iss"] = is.URL() + "/other"
			if _, err := v.Verify(t.Context(), is.Mint(other)); !errors.Is(err, grpcjwt.ErrIssuer) {
				t.Errorf("token of another issuer: got %v, want ErrIssuer", err)
			}
			// The metadata advertises ES384 for ID tokens; a key of another
			// algorithm published later (an issuer moving its access tokens
			// to a new algorithm) verifies on its first request, after one
			// refetch of the JWK Set (issue: Hydra's access-token key set).
			hits := is.JWKSHits()
			rsa := is.AddKey("RS256")
			if _, err := v.Verify(t.Context(), is.MintWith(rsa, nil, is.Claims("api"))); err != nil {
				t.Errorf("RS256 token of a key published after discovery advertised ES384: %v", err)
			}
			if got := is.JWKSHits() - hits; got != 1 {
				t.Errorf("JWK Set fetches for the new key = %d, want 1", got)
			}
			// An explicit WithAlgorithms narrows the list, and the refusal
			// names the token's algorithm and the allowed ones.
			v2, err := grpcjwt.NewVerifier(ks, grpcjwt.WithAudience("api"), grpcjwt.WithAlgorithms("ES384"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = v2.Verify(t.Context(), is.MintWith(rsa, nil, is.Claims("api")))
			if !errors.Is(err, grpcjwt.ErrAlgorithm) || !strings.Contains(err.Error(), "RS256") || !strings.Contains(err.Error(), "[ES384]") {
				t.Errorf("RS256 token with WithAlgorithms(ES384): got %v, want ErrAlgorithm naming RS256 and [ES384]", err)
			}
		})
	}
}

// metadataServer serves a metadata document at the given paths only.
func metadataServer(t *testing.T, docs map[string]func(base string) any) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(f(srv.URL))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscover(t *testing.T) {
	// RFC 8414 fallback: the OIDC location answers 404, the RFC 8414 one
	// (inserted between host and path) serves the document.
	srv := metadataServer(t, map[string]func(string) any{
		"/.well-known/oauth-authorization-server/tenant": func(base string) any {
			return map[string]any{"issuer": base + "/tenant", "jwks_uri": base + "/tenant/jwks",
				"id_token_signing_alg_values_supported": []string{"RS256", "HS256", "none", "ES256", "Ed25519", "Ed448"}}
		},
	})
	md, err := grpcjwt.Discover(t.Context(), srv.URL+"/tenant")
	if err != nil {
		t.Fatalf("RFC 8414 fallback: %v", err)
	}
	if md.JWKSURI != srv.URL+"/tenant/jwks" || strings.Join(md.SigningAlgorithms, ",") != "RS256,ES256,Ed25519" {
		t.Errorf("got %+v, want jwks_uri %s and algorithms RS256,ES256,Ed25519 (HS256, none and Ed448 dropped)", md, srv.URL+"/tenant/jwks")
	}

	cases := []struct {
		name     string
		doc      func(base string) any
		wantText []string
	}{
		{"issuer differs", func(base string) any { return map[string]any{"issuer": base + "/evil", "jwks_uri": base + "/jwks"} },
			[]string{`names the issuer "BASE/evil", not the configured "BASE/t"`}},
		{"issuer with trailing slash differs", func(base string) any { return map[string]any{"issuer": base + "/t/", "jwks_uri": base + "/jwks"} },
			[]string{`names the issuer "BASE/t/", not the configured "BASE/t"`, "trailing slash"}},
		{"no issuer", func(base string) any { return map[string]any{"jwks_uri": base + "/jwks"} }, []string{"has no issuer"}},
		{"no jwks_uri", func(base string) any { return map[string]any{"issuer": base + "/t"} }, []string{"has no jwks_uri"}},
		{"relative jwks_uri", func(base string) any { return map[string]any{"issuer": base + "/t", "jwks_uri": "/jwks"} },
			[]string{`jwks_uri "/jwks" of the metadata document at`}},
		{"issuer not a string", func(base string) any { return map[string]any{"issuer": 7, "jwks_uri": base + "/jwks"} }, nil},
		{"not an object", func(base string) any { return []string{"x"} }, nil},
		{"oversized", func(base string) any {
			return map[string]any{"issuer": base + "/t", "jwks_uri": base + "/jwks", "pad": strings.Repeat("x", 2<<20)}
		}, []string{"larger than"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := metadataServer(t, map[string]func(string) any{"/t/.well-known/openid-configuration": tc.doc})
			md, err := grpcjwt.Discover(t.Context(), srv.URL+"/t")
			if err == nil {
				t.Fatalf("got %+v, want an error", md)
			}
			// A configuration error names what to fix: the document's
			// address, and both issuers when they differ.
			if !strings.Contains(err.Error(), srv.URL+"/t") {
				t.Errorf("error %q does not name the document's address", err)
			}
			for _, want := range tc.wantText {
				if !strings.Contains(err.Error(), strings.ReplaceAll(want, "BASE", srv.URL)) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
	for _, bad := range []string{"", "issuer.example", "ftp://issuer.example", "https://issuer.example?x=1", "https://issuer.example#f"} {
		if _, err := grpcjwt.Discover(t.Context(), bad); err == nil {
			t.Errorf("Discover(%q): want an error", bad)
		}
	}
}

// TestDiscoverIssuerShapes discovers issuers shaped like real providers':
// a root with a trailing slash (Auth0), a path (Logto, Keycloak, Okta) and
// a path with a trailing slash; the document is found at the OpenID
// location and its issuer must equal the one asked for, slash included.
func TestDiscoverIssuerShapes(t *testing.T) {
	for _, tc := range []struct{ name, path, docPath string }{
		{"root with trailing slash", "/", "/.well-known/openid-configuration"},
		{"path", "/realms/acme", "/realms/acme/.well-known/openid-configuration"},
		{"path with a version", "/tenant-id/v2.0", "/tenant-id/v2.0/.well-known/openid-configuration"},
		{"path with trailing slash", "/oauth2/default/", "/oauth2/default/.well-known/openid-configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := metadataServer(t, map[string]func(string) any{
				tc.docPath: func(base string) any {
					return map[string]any{"issuer": base + tc.path, "jwks_uri": base + "/keys"}
				},
			})
			md, err := grpcjwt.Discover(t.Context(), srv.URL+tc.path)
			if err != nil {
				t.Fatalf("Discover(%q): %v", srv.URL+tc.path, err)
			}
			if md.Issuer != srv.URL+tc.path || md.JWKSURI != srv.URL+"/keys" {
				t.Errorf("got issuer %q and jwks_uri %q, want %q and %q", md.Issuer, md.JWKSURI, srv.URL+tc.path, srv.URL+"/keys")
			}
		})
	}
}

// TestDiscoverMetadataURL: a metadata document's URL given as the issuer is
// refused before any request, with the issuer to pass instead, however the
// URL escapes the suffix.
func TestDiscoverMetadataURL(t *testing.T) {
	for _, tc := range []struct{ name, url, want string }{
		{"OIDC", "https://idp.example/realms/r/.well-known/openid-configuration", "https://idp.example/realms/r"},
		{"OIDC at the root", "https://idp.example/.well-known/openid-configuration", "https://idp.example"},
		{"RFC 8414", "https://idp.example/.well-known/oauth-authorization-server/tenant", "https://idp.example"},
		{"escaped dot", "https://idp.example/t/%2Ewell-known/openid-configuration", "https://idp.example/t"},
		{"escaped slash", "https://idp.example/t/.well-known%2Fopenid-configuration", "https://idp.example/t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No server: a request would fail with another error.
			_, err := grpcjwt.Discover(t.Context(), tc.url)
			want := fmt.Sprintf("is a metadata URL; pass the issuer itself, %q", tc.want)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Discover(%q) = %v, want an error containing %s", tc.url, err, want)
			}
		})
	}
}

// TestDiscoverHTTPSDowngrade: an https issuer may not point at a plain-http
// JWK Set.
func TestDiscoverHTTPSDowngrade(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "jwks_uri": "http://" + strings.TrimPrefix(srv.URL, "https://") + "/jwks"})
	}))
	defer srv.Close()
	_, err := grpcjwt.Discover(t.Context(), srv.URL, grpcjwt.WithHTTPClient(srv.Client()))
	if err == nil || !strings.Contains(err.Error(), "plain-http") {
		t.Fatalf("got %v, want the downgrade refused", err)
	}
}

// TestFetchRedirects: the JWKS and metadata fetches follow a redirect that
// keeps https (at most 5), and refuse one from https to http, so that a 30x
// cannot undo the check that an https issuer names an https jwks_uri.
func TestFetchRedirects(t *testing.T) {
	is := grpcjwttest.NewIssuer()
	defer is.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(is.JWKS())
	}))
	defer plain.Close()
	var tlsSrv *httptest.Server
	tlsSrv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/jwks":
			w.Write(is.JWKS())
		case r.URL.Path == "/to-https":
			http.Redirect(w, r, tlsSrv.URL+"/jwks", http.StatusFound)
		case r.URL.Path == "/to-http":
			http.Redirect(w, r, plain.URL+"/jwks", http.StatusMovedPermanently)
		case r.URL.Path == "/via-https-to-http":
			http.Redirect(w, r, tlsSrv.URL+"/to-http", http.StatusTemporaryRedirect)
		case strings.HasPrefix(r.URL.Path, "/hop/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
			if n == 0 {
				w.Write(is.JWKS())
				return
			}
			http.Redirect(w, r, fmt.Sprintf("%s/hop/%d", tlsSrv.URL, n-1), http.StatusFound)
		case r.URL.Path == "/.well-known/openid-configuration":
			http.Redirect(w, r, plain.URL+"/.well-known/openid-configuration", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer tlsSrv.Close()
	client := grpcjwt.WithHTTPClient(tlsSrv.Client())
	for _, tc := range []struct {
		path    string
		wantErr string // "" for success
	}{
		{"/to-https", ""},
		{"/hop/5", ""},
		{"/hop/6", "stopped after 5 redirects"},
		{"/to-http", "refused a redirect from https to http"},
		{"/via-https-to-http", "refused a redirect from https to http"},
	} {
		ks, err := grpcjwt.NewRemoteKeyset(t.Context(), tlsSrv.URL+tc.path, client, quiet)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: got %v, want an error saying %q", tc.path, err, tc.wantErr)
		}
		if ks != nil {
			ks.Close()
		}
	}
	// http to http is followed (an http issuer is for tests anyway).
	redirector := httptest.NewServer(http.RedirectHandler(plain.URL+"/jwks", http.StatusFound))
	defer redirector.Close()
	if ks, err := grpcjwt.NewRemoteKeyset(t.Context(), redirector.URL, quiet); err != nil {
		t.Errorf("http to http: %v", err)
	} else {
		ks.Close()
	}
	// Discovery of an https issuer is refused a redirect to http too.
	if _, err := grpcjwt.Discover(t.Context(), tlsSrv.URL, client); err == nil || !strings.Contains(err.Error(), "refused a redirect from https to http") {
		t.Errorf("Discover with a redirect to http: got %v", err)
	}
	// The caller's own CheckRedirect still applies.
	own := tlsSrv.Client()
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return errors.New("no redirects here") }
	if _, err := grpcjwt.NewRemoteKeyset(t.Context(), tlsSrv.URL+"/to-https", grpcjwt.WithHTTPClient(own), quiet); err == nil ||
		!strings.Contains(err.Error(), "no redirects here") {
		t.Errorf("client's CheckRedirect: got %v", err)
	}
	if own.CheckRedirect == nil {
		t.Error("the keyset changed the caller's client")
	}
}
