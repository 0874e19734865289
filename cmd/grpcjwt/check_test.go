package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

const (
	testAudience = "https://api.example.com"
	orderService = "/grpcjwt.examples.orders.v1.OrderService/"
)

// testPolicy makes ServerInfo public, CreateOrder need write:orders, and
// the rest of OrderService need the API's audience.
const testPolicy = `{"rules": {
  "/grpcjwt.examples.orders.v1.OrderService/ServerInfo":  {"public": true},
  "/grpcjwt.examples.orders.v1.OrderService/CreateOrder": {"scopes": ["write:orders"]},
  "/grpcjwt.examples.orders.v1.OrderService/*":           {"audiences": ["https://api.example.com"]}
}}`

// result is the outcome of one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command with args (without the program name) and returns
// its exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runCmd runs the command in-process with stdin and args.
func runCmd(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	t.Logf("grpcjwt %s\nexit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// expect checks the exit status and that stdout and stderr hold the given
// lines (substrings).
func (r result) expect(t *testing.T, code int, stdout []string, stderr ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d", r.code, code)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q", s)
		}
	}
}

// row checks that stdout has a line that, with runs of white space made
// one space, holds want: a row of a table.
func (r result) row(t *testing.T, want string) {
	t.Helper()
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(strings.Join(strings.Fields(line), " "), want) {
			return
		}
	}
	t.Errorf("stdout has no row %q", want)
}

// absent checks that stdout holds none of the given strings.
func (r result) absent(t *testing.T, stdout ...string) {
	t.Helper()
	for _, s := range stdout {
		if strings.Contains(r.stdout, s) {
			t.Errorf("stdout holds %q", s)
		}
	}
}

func newIssuer(t *testing.T, opts ...grpcjwttest.Option) *grpcjwttest.Issuer {
	t.Helper()
	is := grpcjwttest.NewIssuer(opts...)
	t.Cleanup(is.Close)
	return is
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckValid(t *testing.T) {
	is := newIssuer(t)
	tok := is.Mint(is.Claims(testAudience, "read:orders", "write:orders"))
	r := runCmd(t, "", "check", "-issuer", is.URL(), "-audience", testAudience, tok)
	r.expect(t, exitOK, []string{
		"VALID\n",
		`  subject:   "user-123"`,
		`  client_id: "client-abc"`,
		`  scopes:    ["read:orders" "write:orders"] (from scope)`,
		"\nverified claims:\n{\n",
		`  "sub": "user-123"`,
		`  "scope": "read:orders write:orders"`,
		"  keys:      " + is.JWKSURL() + " (jwks_uri of " + is.URL() + "'s discovery document), 1 usable key",
		fmt.Sprintf("  issuers:   [%q] (discovered)", is.URL()),
		fmt.Sprintf("  audiences: [%q]", testAudience),
	})
	r.absent(t, "UNVERIFIED", "REFUSED")
	if !strings.HasPrefix(r.stdout, "VALID\n") {
		t.Errorf("stdout does not start with the verdict")
	}
}

// TestCheckTokenSources reads the token from an argument (before or after
// the flags, with "Bearer " and white space), a file and stdin.
func TestCheckTokenSources(t *testing.T) {
	is := newIssuer(t)
	tok := is.Mint(is.Claims(testAudience))
	file := writeFile(t, "token.txt", "\n  "+tok+"\n")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"argument", "", []string{"-jwks", is.JWKSURL(), "-iss", is.URL(), "-audience", testAudience, tok}},
		{"argument before the flags", "", []string{tok, "-jwks", is.JWKSURL(), "-iss", is.URL(), "-audience", testAudience}},
		{"bearer argument", "", []string{"-issuer", is.URL(), "-audience", testAudience, "Bearer " + tok}},
		{"file", "", []string{"-issuer", is.URL(), "-audience", testAudience, "@" + file}},
		{"stdin", "bearer " + tok + "\r\n", []string{"-issuer", is.URL(), "-audience", testAudience, "-"}},
		{"audiences comma-separated", "", []string{"-issuer", is.URL(), "-audience", "https://a.example," + testAudience, tok}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, tc.stdin, append([]string{"check"}, tc.args...)...)
			r.expect(t, exitOK, []string{"VALID\n", `"sub": "user-123"`})
		})
	}
}

// TestCheckRefused covers each failing check: the verdict's class, the
// check with the token's value and the wanted one, or the cause.
func TestCheckRefused(t *testing.T) {
	is := newIssuer(t)
	other := newIssuer(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	expired := is.Claims(testAudience)
	expired["iat"] = at.Add(-2 * time.Hour).Unix()
	expired["exp"] = at.Add(-time.Minute).Unix()

	notYet := is.Claims(testAudience)
	notYet["iat"] = at.Unix()
	notYet["nbf"] = at.Add(10 * time.Minute).Unix()
	notYet["exp"] = at.Add(time.Hour).Unix()

	idToken := is.Claims(testAudience)
	idToken["at_hash"] = "x4Zl2sLFq3DX5IYkJo2bTA"

	noExp := is.Claims(testAudience)
	delete(noExp, "exp")

	good := is.Mint(is.Claims(testAudience))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))

	base := []string{"check", "-issuer", is.URL(), "-audience", testAudience}
	for _, tc := range []struct {
		name   string
		args   []string
		token  string
		stdout []string
		absent []string
	}{
		{
			name:  "wrong audience",
			token: is.Mint(is.Claims("https://billing.example.com")),
			stdout: []string{
				"REFUSED: token audience not accepted\n",
				"  check: aud\n",
				`  token: ["https://billing.example.com"]`,
				`  want:  one of ["https://api.example.com"]`,
				"claims (the signature holds; refused by the check above):",
				`"aud": "https://billing.example.com"`,
			},
			absent: []string{"UNVERIFIED", "VALID"},
		},
		{
			name:  "wrong issuer",
			args:  []string{"check", "-jwks", is.JWKSURL(), "-iss", "https://login.example.com", "-audience", testAudience},
			token: good,
			stdout: []string{
				"REFUSED: token issuer not trusted\n",
				"  check: iss\n",
				fmt.Sprintf("  token: %q\n", is.URL()),
				`  want:  one of ["https://login.example.com"]`,
			},
		},
		{
			name:  "expired, at the server's clock with its leeway",
			args:  append(base[:len(base):len(base)], "-time", "2025-06-01T12:00:00Z", "-leeway", "10s"),
			token: is.Mint(expired),
			stdout: []string{
				"REFUSED: token expired\n",
				"  check: exp\n",
				"  token: 2025-06-01T11:59:00Z\n",
				"  want:  after 2025-06-01T11:59:50Z (the server's clock 2025-06-01T12:00:00Z less the leeway 10s)\n",
				"  clock:     2025-06-01T12:00:00Z (-time), leeway 10s",
			},
		},
		{
			name:  "expired token within a larger leeway",
			args:  append(base[:len(base):len(base)], "-time", "2025-06-01T12:00:00Z", "-leeway", "2m"),
			token: is.Mint(expired),
			stdout: []string{
				"VALID\n",
				"  expires:   2025-06-01T11:59:00Z (1m0s ago)",
			},
		},
		{
			name:  "not yet valid",
			args:  append(base[:len(base):len(base)], "-time", "2025-06-01T12:00:00Z"),
			token: is.Mint(notYet),
			stdout: []string{
				"REFUSED: token not yet valid\n",
				"  check: nbf\n",
				"  want:  at most 2025-06-01T12:00:30Z (the server's clock 2025-06-01T12:00:00Z plus the leeway 30s)",
			},
		},
		{
			name:  "ID token",
			token: is.Mint(idToken),
			stdout: []string{
				"REFUSED: token type not accepted\n",
				"  cause: grpcjwt: token type not accepted: an ID token (it carries at_hash), not an access token\n",
				"-accept-id-tokens",
				"UNVERIFIED (read from the token before any check; nothing below is trusted):",
				`  header:  alg "ES256", kid "` + is.SigningKey().ID + `", typ "at+jwt"`,
				`"at_hash": "x4Zl2sLFq3DX5IYkJo2bTA"`,
			},
			absent: []string{"verified claims"},
		},
		{
			name:   "ID token accepted as the server does for Dex",
			args:   append(base[:len(base):len(base)], "-accept-id-tokens"),
			token:  is.Mint(idToken),
			stdout: []string{"VALID\n", `"at_hash"`},
		},
		{
			name:  "opaque token",
			token: "K7pQ2vX9mN4bL1cZ8fR3tY6wH0jD5sA",
			stdout: []string{
				"REFUSED: malformed token\n",
				"not a JWT (no dots): an opaque access token?",
				"Auth0: audience=",
				"  not a JWT: no header or payload to show",
			},
		},
		{
			name:  "unknown key",
			token: is.MintWith(grpcjwttest.NewKey("ES256"), map[string]any{"kid": "retired-2024"}, is.Claims(testAudience)),
			stdout: []string{
				"REFUSED: no key matches the token\n",
				`  hint: the token names the kid "retired-2024" (unverified), which the JWK Set does not hold`,
				`  header:  alg "ES256", kid "retired-2024", typ "at+jwt"`,
			},
		},
		{
			name:  "key of another issuer",
			token: other.Mint(other.Claims(testAudience)),
			stdout: []string{
				"REFUSED: no key matches the token\n",
				fmt.Sprintf(`        its iss (unverified) is %q, not a trusted issuer [%q]`, other.URL(), is.URL()),
				fmt.Sprintf(`"iss": %q`, other.URL()),
			},
		},
		{
			name:  "bad signature",
			token: tampered,
			stdout: []string{
				"REFUSED: invalid token signature\n",
				"  hint: the key the token names did not verify its signature",
				"UNVERIFIED",
				`"sub": "user-123"`,
			},
			absent: []string{"verified claims", "the signature holds"},
		},
		{
			name:  "algorithm not allowed",
			args:  append(base[:len(base):len(base)], "-algorithms", "RS256,PS256"),
			token: good,
			stdout: []string{
				"REFUSED: signing algorithm not accepted\n",
				"  cause: grpcjwt: signing algorithm not accepted: alg ES256 is not on the allow-list",
			},
		},
		{
			name:   "missing exp",
			token:  is.Mint(noExp),
			stdout: []string{"REFUSED: required claim missing\n", "  cause: grpcjwt: required claim missing: exp\n"},
		},
		{
			name:  "lifetime",
			args:  append(base[:len(base):len(base)], "-max-lifetime", "15m"),
			token: good,
			stdout: []string{
				"REFUSED: token lifetime too long\n",
				"  check: exp - iat\n",
				"  token: 1h0m0s\n",
				"  want:  at most 15m0s\n",
			},
		},
		{
			name:   "strict type",
			args:   append(base[:len(base):len(base)], "-strict-type"),
			token:  is.MintWith(is.SigningKey(), map[string]any{"typ": "JWT"}, is.Claims(testAudience)),
			stdout: []string{"REFUSED: token type not accepted\n", "typ header is not an access token type", `typ "JWT"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = base
			}
			r := runCmd(t, "", append(args, tc.token)...)
			want := exitRefused
			if strings.HasPrefix(tc.stdout[0], "VALID") {
				want = exitOK
			}
			r.expect(t, want, tc.stdout)
			r.absent(t, tc.absent...)
			if !strings.HasPrefix(r.stdout, tc.stdout[0]) {
				t.Errorf("stdout does not start with %q", tc.stdout[0])
			}
		})
	}
}

// TestCheckScopeClaims reads scopes from the claims the server names.
func TestCheckScopeClaims(t *testing.T) {
	is := newIssuer(t)
	c := is.Claims(testAudience)
	c["scp"] = []string{"read:orders", "write:orders"}
	tok := is.Mint(c)
	r := runCmd(t, "", "check", "-issuer", is.URL(), "-audience", testAudience, tok)
	r.expect(t, exitOK, []string{
		"  scopes:    [] (from scope)",
		"  hint: the token also carries scp, not read as scopes: add scp to -scope-claims",
	})
	r = runCmd(t, "", "check", "-issuer", is.URL(), "-audience", testAudience, "-scope-claims", "scope,scp", tok)
	r.expect(t, exitOK, []string{`  scopes:    ["read:orders" "write:orders"] (from scope, scp)`})
	r.absent(t, "hint")
}

// TestCheckConfigurationErrors: discovery and JWK Set failures name the
// URLs and values, hint at the right flag, and exit 2.
func TestCheckConfigurationErrors(t *testing.T) {
	is := newIssuer(t, grpcjwttest.WithPath("oidc"))
	tok := is.Mint(is.Claims(testAudience))
	for _, tc := range []struct {
		name   string
		args   []string
		stderr []string
	}{
		{
			name: "discovery names another issuer",
			args: []string{"-issuer", is.URL() + "/"},
			stderr: []string{
				"grpcjwt check: configuration error: grpcjwt: Discover: the metadata document at " + is.URL() + "/.well-known/openid-configuration",
				fmt.Sprintf("names the issuer %q, not the configured %q", is.URL(), is.URL()+"/"),
				"the trailing slash differs",
			},
		},
		{
			name: "JWK Set URL given as -issuer",
			args: []string{"-issuer", is.JWKSURL()},
			stderr: []string{
				fmt.Sprintf("%q is a JWK Set URL, not an issuer", is.JWKSURL()),
				"hint: " + is.JWKSURL() + " serves a JWK Set: use -jwks " + is.JWKSURL() + " -iss ISSUER",
			},
		},
		{
			name: "issuer given as -jwks",
			args: []string{"-jwks", is.URL(), "-iss", is.URL()},
			stderr: []string{
				"grpcjwt check: configuration error: grpcjwt: signing keys unavailable: first JWKS fetch failed:",
				"answered HTTP 404",
				"hint: " + is.URL() + " is an issuer (its discovery document names the jwks_uri " + is.JWKSURL() + "): use -issuer " + is.URL(),
			},
		},
		{
			name: "discovery document given as -jwks",
			args: []string{"-jwks", is.URL() + "/.well-known/openid-configuration", "-iss", is.URL()},
			stderr: []string{
				"this is an issuer's metadata document, not a JWK Set",
				fmt.Sprintf("pass its jwks_uri %q", is.JWKSURL()),
			},
		},
		{
			name:   "discovery document given as -issuer",
			args:   []string{"-issuer", is.URL() + "/.well-known/openid-configuration"},
			stderr: []string{fmt.Sprintf("is a metadata URL; pass the issuer itself, %q", is.URL())},
		},
		{
			name:   "nothing listening",
			args:   []string{"-issuer", "http://127.0.0.1:1/oidc"},
			stderr: []string{"grpcjwt check: configuration error: grpcjwt: Discover:", "http://127.0.0.1:1/oidc/.well-known/openid-configuration"},
		},
		{
			name:   "leeway out of range",
			args:   []string{"-issuer", is.URL(), "-leeway", "10m"},
			stderr: []string{"configuration error: grpcjwt: WithLeeway: 10m0s is outside [0, 5m]"},
		},
		{
			name:   "unsupported algorithm",
			args:   []string{"-issuer", is.URL(), "-algorithms", "HS256"},
			stderr: []string{`configuration error: grpcjwt: WithAlgorithms: "HS256" is not a supported signature algorithm`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"check", "-audience", testAudience}, tc.args...)
			r := runCmd(t, "", append(args, tok)...)
			r.expect(t, exitUsage, nil, tc.stderr...)
			if r.stdout != "" {
				t.Errorf("stdout is not empty")
			}
			if strings.Contains(r.stderr, "level=WARN") {
				t.Errorf("the keyset's log repeats the set-up error")
			}
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	is := newIssuer(t)
	tok := is.Mint(is.Claims(testAudience))
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no command", nil, "Usage:"},
		{"unknown command", []string{"verify"}, `unknown command "verify"`},
		{"no keys", []string{"check", "-audience", testAudience, tok}, "give -issuer URL"},
		{"both", []string{"check", "-issuer", is.URL(), "-jwks", is.JWKSURL(), "-audience", testAudience, tok}, "not both"},
		{"jwks without iss", []string{"check", "-jwks", is.JWKSURL(), "-audience", testAudience, tok}, "-jwks needs -iss ISSUER"},
		{"no audience", []string{"check", "-issuer", is.URL(), tok}, "give -audience"},
		{"no token", []string{"check", "-issuer", is.URL(), "-audience", testAudience}, "give the token"},
		{"two tokens", []string{"check", "-issuer", is.URL(), "-audience", testAudience, tok, tok}, "one token only"},
		{"empty stdin", []string{"check", "-issuer", is.URL(), "-audience", testAudience, "-"}, "the token is empty"},
		{"missing file", []string{"check", "-issuer", is.URL(), "-audience", testAudience, "@/nonexistent/token"}, "no such file"},
		{"policy without method", []string{"check", "-issuer", is.URL(), "-audience", testAudience, "-policy", "p.json", tok}, "-policy needs -method"},
		{"bad method", []string{"check", "-issuer", is.URL(), "-audience", testAudience, "-method", "CreateOrder", tok}, "is not a gRPC method"},
		{"bad time", []string{"check", "-issuer", is.URL(), "-audience", testAudience, "-time", "yesterday", tok}, "not an RFC 3339 instant"},
		{"bad flag", []string{"check", "-audiences", testAudience}, "flag provided but not defined: -audiences"},
		{"strict public tokens without method", []string{"check", "-issuer", is.URL(), "-audience", testAudience, "-strict-public-tokens", tok}, "-strict-public-tokens needs -method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, "", tc.args...)
			r.expect(t, exitUsage, nil, tc.stderr)
		})
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"check", "-h"}, {"policy", "-help"}, {"help", "check"}} {
		r := runCmd(t, "", args...)
		r.expect(t, exitOK, []string{"Usage"})
	}
	r := runCmd(t, "", "check", "-h")
	r.expect(t, exitOK, []string{"-accept-id-tokens", "-scope-claims", "-leeway", "-algorithms", "-policy", "-method", "Exit status"})
}

// TestCheckPolicy prints the rule of a method and the interceptor's
// decision.
func TestCheckPolicy(t *testing.T) {
	is := newIssuer(t)
	policy := writeFile(t, "policy.json", testPolicy)
	reader := is.Mint(is.Claims(testAudience, "read:orders"))
	writer := is.Mint(is.Claims(testAudience, "read:orders", "write:orders"))
	expired := is.Claims(testAudience, "write:orders")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	base := []string{"check", "-issuer", is.URL(), "-audience", testAudience, "-policy", policy}
	createOrder := orderService + "CreateOrder"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
	}{
		{
			name: "missing scope",
			args: []string{"-method", createOrder, reader},
			code: exitRefused,
			stdout: []string{
				"VALID\n",
				"\nmethod: " + createOrder + "\n",
				fmt.Sprintf("rule:   %q {\"scopes\":[\"write:orders\"]} (from %s)\n", createOrder, policy),
				"DENY: PermissionDenied \"token lacks a required scope\"\n",
				`  www-authenticate: Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`,
				"  reason: insufficient scope\n",
				"  check: scope\n",
				`  token: ["read:orders"]`,
				`  want:  all of ["write:orders"], lacking "write:orders"`,
				"\nverified claims:\n",
			},
		},
		{
			name: "allowed",
			args: []string{"-method", createOrder, writer},
			code: exitOK,
			stdout: []string{
				"VALID\n",
				"ALLOW (the handler gets the verified claims)\n",
			},
		},
		{
			name: "method in grpcurl's spelling",
			args: []string{"-method", "grpcjwt.examples.orders.v1.OrderService.CreateOrder", writer},
			code: exitOK,
			stdout: []string{
				"\nmethod: " + createOrder + "\n",
				"ALLOW",
			},
		},
		{
			name: "service rule",
			args: []string{"-method", orderService + "GetOrder", reader},
			code: exitOK,
			stdout: []string{
				fmt.Sprintf("rule:   %q {\"audiences\":[\"https://api.example.com\"]}", orderService+"*"),
				"ALLOW",
			},
		},
		{
			name: "no rule: the built-in default",
			args: []string{"-method", "/billing.v1.Billing/Charge", reader},
			code: exitOK,
			stdout: []string{
				"rule:   (built-in default: valid token required), as no rule of " + policy + " names the method\n",
				"ALLOW",
			},
		},
		{
			name: "expired token",
			args: []string{"-method", createOrder, is.Mint(expired)},
			code: exitRefused,
			stdout: []string{
				"REFUSED: token expired\n",
				"DENY: Unauthenticated \"expired token\"\n",
				`  www-authenticate: Bearer error="invalid_token", error_description="expired token"`,
				"  reason: token expired (the token's refusal above)\n",
			},
		},
		{
			name: "public method, no token",
			args: []string{"-method", orderService + "ServerInfo"},
			code: exitOK,
			stdout: []string{
				"NO TOKEN (the call carries no authorization metadata)\n",
				`{"public":true}`,
				"ALLOW (public method; no token)\n",
			},
		},
		{
			name: "public method, expired token",
			args: []string{"-method", orderService + "ServerInfo", is.Mint(expired)},
			code: exitRefused, // the token itself does not verify
			stdout: []string{
				"REFUSED: token expired\n",
				"ALLOW (public method; the invalid token is ignored and the handler gets no claims)\n",
			},
		},
		{
			name: "public method, expired token, strict",
			args: []string{"-method", orderService + "ServerInfo", "-strict-public-tokens", is.Mint(expired)},
			code: exitRefused,
			stdout: []string{
				"DENY: Unauthenticated \"expired token\"\n",
			},
		},
		{
			name: "protected method, no token",
			args: []string{"-method", createOrder},
			code: exitRefused,
			stdout: []string{
				"NO TOKEN",
				"DENY: Unauthenticated \"missing bearer token\"\n",
				"  www-authenticate: Bearer\n",
				"  reason: missing bearer token\n",
				"  cause: grpcjwt: missing bearer token\n",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, "", append(base, tc.args...)...)
			r.expect(t, tc.code, tc.stdout)
		})
	}

	// Without -policy, -method shows the built-in default.
	r := runCmd(t, "", "check", "-issuer", is.URL(), "-audience", testAudience, "-method", createOrder)
	r.expect(t, exitRefused, []string{
		"rule:   (built-in default: valid token required), as there is no -policy\n",
		"DENY: Unauthenticated \"missing bearer token\"",
	})

	// An invalid policy is a configuration error.
	bad := writeFile(t, "bad.json", `{"rules": {"/pkg.S/M": {"Public": true}}}`)
	r = runCmd(t, "", append(base[:5:5], "-policy", bad, "-method", createOrder, writer)...)
	r.expect(t, exitUsage, nil, "the policy "+bad+" is invalid", `unknown member "Public" (names match exactly: "public")`)
}

// TestPrintable: what a token holds reaches the terminal escaped.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           "plain",
		"a\nb\tc":         "a\nb\tc",
		"esc\x1b[31m":     `esc\x1b[31m`,
		"csi\u009b31m":    `csi\u009b31m`,
		"bad\xffutf8":     `bad\xffutf8`,
		"rtl\u202eevil":   `rtl\u202eevil`,
		"unicode é 日本":    "unicode é 日本",
		"del\x7f":         `del\x7f`,
		"bell\a and more": `bell\a and more`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}

	// An unverified payload carrying a C1 control is shown escaped.
	is := newIssuer(t)
	c := is.Claims(testAudience)
	c["name"] = "x\u009b2Jy"
	k := grpcjwttest.NewKey("ES256")
	r := runCmd(t, "", "check", "-issuer", is.URL(), "-audience", testAudience, is.MintWith(k, nil, c))
	r.expect(t, exitRefused, []string{`"name": "x\u009b2Jy"`})
	r.absent(t, "\u009b")
}

// TestCheckSkipAudienceBesideAudience: -skip-audience-check beside
// -audience still checks those audiences, as the verifier does, and the
// summary says which it accepts.
func TestCheckSkipAudienceBesideAudience(t *testing.T) {
	is := newIssuer(t)
	r := runCmd(t, "", "check", "-issuer", is.URL(), "-audience", testAudience, "-skip-audience-check", is.Mint(is.Claims("https://other.example")))
	r.expect(t, exitRefused, []string{"REFUSED", fmt.Sprintf("  audiences: [%q]", testAudience)})
	r.absent(t, "audiences: any")
	r = runCmd(t, "", "check", "-issuer", is.URL(), "-skip-audience-check", is.Mint(is.Claims("https://other.example")))
	r.expect(t, exitOK, []string{"VALID", "  audiences: any (-skip-audience-check)"})
}

// TestCheckUnknownKeyWithMethod: a token naming a kid the JWK Set does not
// hold is refused alike by the verdict and by the decision, whose reason
// points back to the verdict: the second verification asks the issuer
// again rather than meet the unknown-key rate limit.
func TestCheckUnknownKeyWithMethod(t *testing.T) {
	is := newIssuer(t)
	tok := is.MintWith(grpcjwttest.NewKey("ES256"), map[string]any{"kid": "retired-2024"}, is.Claims(testAudience))
	r := runCmd(t, "", "check", "-issuer", is.URL(), "-audience", testAudience, "-method", "/pkg.S/M", tok)
	r.expect(t, exitRefused, []string{"REFUSED", "DENY: Unauthenticated \"token signed by an unknown key\"", "(the token's refusal above)"})
	r.absent(t, "rate limit")
}
