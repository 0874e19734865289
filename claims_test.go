package grpcjwt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// ctParse runs parseClaims on a literal claims set with the given scope
// claims ("scope" when none).
func ctParse(t *testing.T, payload string, scopeClaims ...string) (*Claims, error) {
	t.Helper()
	if len(scopeClaims) == 0 {
		scopeClaims = []string{"scope"}
	}
	c := new(Claims)
	if _, err := parseClaims(c, payload, scopeClaims, nil); err != nil {
		return nil, err
	}
	return c, nil
}

func ctMustParse(t *testing.T, payload string, scopeClaims ...string) *Claims {
	t.Helper()
	c, err := ctParse(t, payload, scopeClaims...)
	if err != nil {
		t.Fatalf("parseClaims(%s): %v", payload, err)
	}
	return c
}

func TestParseClaimsFields(t *testing.T) {
	c := ctMustParse(t, `{
		"iss": "https://issuer.example",
		"sub": "user-1",
		"aud": ["https://api.example", "https://other.example"],
		"exp": 1900000000,
		"nbf": 1899990000,
		"iat": 1899996400,
		"jti": "id-1",
		"client_id": "client-1",
		"azp": "azp-1",
		"scope": "read write",
		"tenant": "t-1"
	}`)
	want := Claims{
		Issuer:    "https://issuer.example",
		Subject:   "user-1",
		Audience:  []string{"https://api.example", "https://other.example"},
		Expiry:    time.Unix(1900000000, 0).UTC(),
		NotBefore: time.Unix(1899990000, 0).UTC(),
		IssuedAt:  time.Unix(1899996400, 0).UTC(),
		ID:        "id-1",
		ClientID:  "client-1",
		Scopes:    []string{"read", "write"},
	}
	if c.Issuer != want.Issuer || c.Subject != want.Subject || c.ID != want.ID || c.ClientID != want.ClientID {
		t.Errorf("strings: got %+v", c)
	}
	if !slices.Equal(c.Audience, want.Audience) || !slices.Equal(c.Scopes, want.Scopes) {
		t.Errorf("lists: got aud %q scopes %q", c.Audience, c.Scopes)
	}
	if !c.Expiry.Equal(want.Expiry) || !c.NotBefore.Equal(want.NotBefore) || !c.IssuedAt.Equal(want.IssuedAt) {
		t.Errorf("dates: got %v %v %v", c.Expiry, c.NotBefore, c.IssuedAt)
	}
	if c.Expiry.Location() != time.UTC {
		t.Errorf("Expiry location = %v, want UTC", c.Expiry.Location())
	}

	// Absent optional claims are zero values.
	c = ctMustParse(t, `{"exp": 1}`)
	if c.Issuer != "" || c.Subject != "" || c.Audience != nil || c.Scopes != nil ||
		!c.NotBefore.IsZero() || !c.IssuedAt.IsZero() || c.ID != "" || c.ClientID != "" {
		t.Errorf("absent claims: got %+v", c)
	}
}

func TestParseClaimsAudience(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    []string
	}{
		{`{"aud":"a"}`, []string{"a"}},
		{`{"aud":"a b"}`, []string{"a b"}}, // aud is never split
		{`{"aud":["a","b"]}`, []string{"a", "b"}},
		{`{"aud":[]}`, []string{}},
		{`{"aud":""}`, []string{""}},
	} {
		c := ctMustParse(t, tc.payload)
		if !slices.Equal(c.Audience, tc.want) {
			t.Errorf("%s: Audience = %q, want %q", tc.payload, c.Audience, tc.want)
		}
	}
}

func TestParseClaimsScopes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		claims  []string
		want    []string
	}{
		{"space separated", `{"scope":"a b c"}`, nil, []string{"a", "b", "c"}},
		{"runs of spaces", `{"scope":"  a   b c  "}`, nil, []string{"a", "b", "c"}},
		// Only U+0020 delimits (RFC 6749 §3.3): other white space stays
		// inside its scope-token.
		{"other white space", `{"scope":"a \t b\nc "}`, nil, []string{"a", "\t", "b\nc"}},
		{"empty", `{"scope":""}`, nil, []string{}},
		{"array", `{"scope":["a","b c"]}`, nil, []string{"a", "b c"}},
		{"scp ignored by default", `{"scope":"a","scp":"b"}`, nil, []string{"a"}},
		{"scp string", `{"scp":"x y"}`, []string{"scope", "scp", "permissions"}, []string{"x", "y"}},
		{"scp array", `{"scp":["x","y"]}`, []string{"scope", "scp", "permissions"}, []string{"x", "y"}},
		{"permissions array", `{"permissions":["read:orders","write:orders"]}`, []string{"scope", "scp", "permissions"}, []string{"read:orders", "write:orders"}},
		{"all three, in option order", `{"permissions":["p"],"scp":["s1","s2"],"scope":"a b"}`, []string{"scope", "scp", "permissions"}, []string{"a", "b", "s1", "s2", "p"}},
		{"other order", `{"permissions":["p"],"scp":"s","scope":"a"}`, []string{"permissions", "scope"}, []string{"p", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ctMustParse(t, tc.payload, tc.claims...)
			if len(c.Scopes) != len(tc.want) || (len(tc.want) > 0 && !slices.Equal(c.Scopes, tc.want)) {
				t.Errorf("Scopes = %q, want %q", c.Scopes, tc.want)
			}
		})
	}
}

func TestParseClaimsClientID(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{`{"client_id":"c","azp":"a"}`, "c"},
		{`{"azp":"a"}`, "a"},
		{`{"client_id":"","azp":"a"}`, "a"},
		{`{"appid":"e"}`, "e"},               // Entra ID v1
		{`{"cid":"o"}`, "o"},                 // Okta
		{`{"cid":"o","azp":"a"}`, "a"},       // azp first
		{`{"cid":"o","appid":"e"}`, "e"},     // appid before cid
		{`{"client_id":"c","cid":"o"}`, "c"}, // client_id first
		{`{}`, ""},
	} {
		if c := ctMustParse(t, tc.payload); c.ClientID != tc.want {
			t.Errorf("%s: ClientID = %q, want %q", tc.payload, c.ClientID, tc.want)
		}
	}
}

func TestParseClaimsNumericDate(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    time.Time
	}{
		{`{"exp":1700000000}`, time.Unix(1700000000, 0)},
		{`{"exp":1700000000.5}`, time.Unix(1700000000, 500_000_000)},
		{`{"exp":1700000000.25}`, time.Unix(1700000000, 250_000_000)},
		{`{"exp":1.7e9}`, time.Unix(1700000000, 0)},
		{`{"exp":0}`, time.Unix(0, 0)},
		{`{"exp":-1.5}`, time.Unix(-2, 500_000_000)},
		{`{"exp":253402300799}`, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{`{"exp":-62135596799}`, time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)},
	} {
		c := ctMustParse(t, tc.payload)
		if !c.Expiry.Equal(tc.want) {
			t.Errorf("%s: Expiry = %v, want %v", tc.payload, c.Expiry, tc.want)
		}
	}
	for _, payload := range []string{
		`{"exp":253402300800}`, // year 10000
		`{"exp":-62135596801}`, // before year 1
		`{"exp":1e400}`,
		`{"exp":-1e400}`,
		`{"exp":"1700000000"}`,
		`{"exp":null}`,
		`{"exp":true}`,
		`{"exp":[1]}`,
		`{"exp":{}}`,
		`{"nbf":"x"}`,
		`{"iat":[]}`,
	} {
		if _, err := ctParse(t, payload); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", payload, err)
		}
	}
}

func TestParseClaimsTypes(t *testing.T) {
	for _, payload := range []string{
		`null`, `[]`, `"x"`, `1`, `{`, `{"iss":"a"}x`,
		`{"iss":["a"]}`, `{"iss":1}`, `{"iss":null}`, `{"iss":{}}`,
		`{"sub":1}`, `{"jti":true}`, `{"client_id":[]}`, `{"client_id":null}`,
		`{"azp":1}`, `{"appid":1}`, `{"cid":[]}`,
		`{"aud":1}`, `{"aud":null}`, `{"aud":[1]}`, `{"aud":["a",null]}`, `{"aud":[["a"]]}`, `{"aud":{}}`,
		`{"scope":1}`, `{"scope":null}`, `{"scope":[1]}`, `{"scope":["a",null]}`, `{"scope":{"a":1}}`,
	} {
		if _, err := ctParse(t, payload); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", payload, err)
		}
	}
	if _, err := ctParse(t, `{"scp":[1]}`, "scope", "scp"); !errors.Is(err, ErrMalformed) {
		t.Errorf("scp [1]: got %v, want ErrMalformed", err)
	}
	// A claim that is not a scope claim may have any type.
	if _, err := ctParse(t, `{"scp":[1],"roles":null}`); err != nil {
		t.Errorf("unread claims of odd types: %v", err)
	}
}

func TestParseClaimsNames(t *testing.T) {
	// A repeated name is refused, registered or not, and so are two names
	// that differ only in case (encoding/json, and so Decode, would read
	// one in place of the other). Simple case folding counts: "ſ" folds
	// to "s", the Kelvin sign to "k".
	for _, payload := range []string{
		`{"iss":"a","iss":"b"}`, `{"aud":"x","aud":["y","z"]}`, `{"exp":1,"exp":2}`,
		`{"scope":"read","scope":"admin"}`, `{"tenant":"a","tenant":"b"}`,
		`{"iss":"a","iss":1}`, `{"\u0069ss":"a","iss":"b"}`,
		`{"scope":"read","SCOPE":"admin"}`, `{"aud":"x","Aud":"y"}`, `{"roles":[],"ROLES":["admin"]}`,
		`{"sub":"a","ſub":"b"}`, `{"kid":"a","\u212aid":"b"}`,
	} {
		if _, err := ctParse(t, payload); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", payload, err)
		}
	}
	// Many members take the map path of the check.
	var b strings.Builder
	b.WriteString(`{"exp":1`)
	for i := range 40 {
		fmt.Fprintf(&b, `,"c%d":%d`, i, i)
	}
	if _, err := ctParse(t, b.String()+`}`); err != nil {
		t.Errorf("40 distinct names: %v", err)
	}
	if _, err := ctParse(t, b.String()+`,"C7":1}`); !errors.Is(err, ErrMalformed) {
		t.Errorf("40 names and a case variant: got %v, want ErrMalformed", err)
	}
	// Names are case-sensitive.
	c := ctMustParse(t, `{"ISS":"x","Sub":"y","AUD":"z","EXP":1,"Scope":"a","CLIENT_ID":"c"}`)
	if c.Issuer != "" || c.Subject != "" || c.Audience != nil || !c.Expiry.IsZero() || c.Scopes != nil || c.ClientID != "" {
		t.Errorf("case-insensitive match: got %+v", c)
	}
	// Escaped names are the same names.
	c = ctMustParse(t, `{"\u0069ss":"escaped"}`)
	if c.Issuer != "escaped" {
		t.Errorf(`"\u0069ss": Issuer = %q`, c.Issuer)
	}
}

func TestClaimsHasScopeHasAudience(t *testing.T) {
	c := ctMustParse(t, `{"aud":["api-1","api-2"],"scope":"orders:read orders:write"}`)
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"orders:read", true}, {"orders:write", true}, {"orders", false},
		{"Orders:read", false}, {"orders:read orders:write", false}, {"", false},
	} {
		if got := c.HasScope(tc.s); got != tc.want {
			t.Errorf("HasScope(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a    string
		want bool
	}{{"api-1", true}, {"api-2", true}, {"api", false}, {"API-1", false}, {"", false}} {
		if got := c.HasAudience(tc.a); got != tc.want {
			t.Errorf("HasAudience(%q) = %v, want %v", tc.a, got, tc.want)
		}
	}
	var nilClaims *Claims
	if nilClaims.HasScope("x") || nilClaims.HasAudience("x") {
		t.Error("nil *Claims has a scope or audience")
	}
}

func TestClaimsDecode(t *testing.T) {
	payload := `{"iss":"i","exp":1900000000,"tenant":"acme","roles":["admin","dev"],"org":{"id":7,"name":"Acme"},"email_verified":true}`
	c := ctMustParse(t, payload)

	var custom struct {
		Tenant string   `json:"tenant"`
		Roles  []string `json:"roles"`
		Org    struct {
			ID   int    `json:"id"`
			Name string `json:"name"`
		} `json:"org"`
		EmailVerified bool   `json:"email_verified"`
		Issuer        string `json:"iss"`
		Missing       string `json:"missing"`
	}
	if err := c.Decode(&custom); err != nil {
		t.Fatal(err)
	}
	if custom.Tenant != "acme" || !slices.Equal(custom.Roles, []string{"admin", "dev"}) || custom.Org.ID != 7 ||
		custom.Org.Name != "Acme" || !custom.EmailVerified || custom.Issuer != "i" || custom.Missing != "" {
		t.Errorf("Decode: got %+v", custom)
	}
	var wrong struct {
		Tenant int `json:"tenant"`
	}
	if err := c.Decode(&wrong); err == nil {
		t.Error("Decode into a mistyped field: no error")
	}

	var tenant string
	if err := c.DecodeClaim("tenant", &tenant); err != nil || tenant != "acme" {
		t.Errorf("DecodeClaim(tenant) = %q, %v", tenant, err)
	}
	var roles []string
	if err := c.DecodeClaim("roles", &roles); err != nil || !slices.Equal(roles, []string{"admin", "dev"}) {
		t.Errorf("DecodeClaim(roles) = %q, %v", roles, err)
	}
	var absent string
	if err := c.DecodeClaim("absent", &absent); !errors.Is(err, ErrMissingClaim) {
		t.Errorf("DecodeClaim(absent): got %v, want ErrMissingClaim", err)
	}
	if err := c.DecodeClaim("TENANT", &absent); !errors.Is(err, ErrMissingClaim) {
		t.Errorf("DecodeClaim(TENANT): got %v, want ErrMissingClaim (names are case-sensitive)", err)
	}
	var n int
	if err := c.DecodeClaim("tenant", &n); err == nil || errors.Is(err, ErrMissingClaim) {
		t.Errorf("DecodeClaim(tenant) into an int: got %v, want a decoding error", err)
	}
}

func TestClaimsRawIsACopy(t *testing.T) {
	payload := `{"iss":"i","exp":1900000000,"tenant":"acme"}`
	c := ctMustParse(t, payload)
	raw := c.Raw()
	if string(raw) != payload {
		t.Fatalf("Raw() = %s, want %s", raw, payload)
	}
	for i := range raw {
		raw[i] = 'X'
	}
	if got := string(c.Raw()); got != payload {
		t.Errorf("after mutating a copy, Raw() = %s", got)
	}
	var tenant string
	if err := c.DecodeClaim("tenant", &tenant); err != nil || tenant != "acme" {
		t.Errorf("after mutating a copy, DecodeClaim = %q, %v", tenant, err)
	}
}

func TestClaimsContext(t *testing.T) {
	ctx := context.Background()
	if c, ok := ClaimsFromContext(ctx); ok || c != nil {
		t.Errorf("empty context: got %v, %v", c, ok)
	}
	if c, ok := ClaimsFromContext(ContextWithClaims(ctx, nil)); ok || c != nil {
		t.Errorf("nil claims: got %v, %v", c, ok)
	}
	want := ctMustParse(t, `{"sub":"u"}`)
	got, ok := ClaimsFromContext(ContextWithClaims(ctx, want))
	if !ok || got != want {
		t.Errorf("got %v, %v; want %v, true", got, ok, want)
	}
	// A value stored under another key of the same shape is not claims.
	type otherKey struct{}
	if _, ok := ClaimsFromContext(context.WithValue(ctx, otherKey{}, want)); ok {
		t.Error("claims found under a foreign key")
	}
	// The innermost claims win.
	inner := ctMustParse(t, `{"sub":"inner"}`)
	if got, _ := ClaimsFromContext(ContextWithClaims(ContextWithClaims(ctx, want), inner)); got != inner {
		t.Errorf("nested: got %v, want the inner claims", got)
	}
}

// TestVerifyClaimsEndToEnd checks that the claims Verify returns are those
// of the token, with WithScopeClaims applied.
func TestVerifyClaimsEndToEnd(t *testing.T) {
	f := newVTFixture(t)
	tok := testkit.Sign(f.ec, nil, f.claims(
		vtSet("scope", "a b"), vtSet("scp", []string{"c"}), vtSet("permissions", []string{"d"}),
		vtDel("client_id"), vtSet("azp", "azp-client"), vtSet("exp", float64(vtEpoch.Unix())+3600.25),
		vtSet("aud", []string{"x", vtAud}), vtSet("tenant", "acme"),
	))
	v := f.verifier(t, vtCase{opts: f.opts(WithScopeClaims("scope", "scp", "permissions"))}, true)
	c, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Scopes, []string{"a", "b", "c", "d"}) {
		t.Errorf("Scopes = %q", c.Scopes)
	}
	if c.ClientID != "azp-client" || c.Issuer != f.is.URL() || c.Subject != "user-123" || c.ID != "jti-1" {
		t.Errorf("claims = %+v", c)
	}
	if !slices.Equal(c.Audience, []string{"x", vtAud}) {
		t.Errorf("Audience = %q", c.Audience)
	}
	if want := vtEpoch.Add(time.Hour + 250*time.Millisecond); !c.Expiry.Equal(want) {
		t.Errorf("Expiry = %v, want %v", c.Expiry, want)
	}
	if !c.IssuedAt.Equal(vtEpoch) || !c.NotBefore.Equal(vtEpoch) {
		t.Errorf("IssuedAt %v NotBefore %v", c.IssuedAt, c.NotBefore)
	}
	var tenant string
	if err := c.DecodeClaim("tenant", &tenant); err != nil || tenant != "acme" {
		t.Errorf("DecodeClaim = %q, %v", tenant, err)
	}
	_, p, _ := vtSplit(tok)
	if got := vtB64(c.Raw()); got != p {
		t.Errorf("Raw() is not the signed payload")
	}
}

// TestFoldKeyOfASCIIIsUpperCase: the verifier's case-variant check folds an
// ASCII name by upper-casing it, which must be what foldKey gives.
func TestFoldKeyOfASCIIIsUpperCase(t *testing.T) {
	for c := 0x20; c < 0x7f; c++ {
		s := string(rune(c))
		if got, want := foldKey(s), strings.ToUpper(s); got != want {
			t.Errorf("foldKey(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestClaimsDecodeSeesWhatTheVerifierSaw: Decode and DecodeClaim use
// encoding/json, which matches names case-insensitively and takes the last
// of repeated names. They refuse a claims set where that could read one
// member in place of another, at any depth.
func TestClaimsDecodeSeesWhatTheVerifierSaw(t *testing.T) {
	type roles struct {
		Roles []string `json:"roles"`
	}
	var got struct {
		Scope       string `json:"scope"`
		RealmAccess roles  `json:"realm_access"`
	}
	for _, payload := range []string{
		`{"realm_access":{"roles":["user"],"ROLES":["admin"]}}`,
		`{"realm_access":{"roles":["user"],"roles":["admin"]}}`,
		`{"x":[{"a":1,"A":2}]}`,
		`{"x":{"y":{"z":{"sub":1,"ſub":2}}}}`,
	} {
		c := ctMustParse(t, payload)
		if err := c.Decode(&got); err == nil {
			t.Errorf("Decode(%s) = nil error, got %+v; want a refusal", payload, got)
		}
		if err := c.DecodeClaim("realm_access", &got.RealmAccess); err == nil && strings.Contains(payload, "realm_access") {
			t.Errorf("DecodeClaim(realm_access) of %s = nil error; want a refusal", payload)
		}
	}
	c := ctMustParse(t, `{"scope":"read","realm_access":{"roles":["user"]},"Tenant":"t"}`)
	if err := c.Decode(&got); err != nil || got.Scope != "read" || !slices.Equal(got.RealmAccess.Roles, []string{"user"}) {
		t.Errorf("Decode = %+v, %v", got, err)
	}
	var r roles
	if err := c.DecodeClaim("realm_access", &r); err != nil || !slices.Equal(r.Roles, []string{"user"}) {
		t.Errorf("DecodeClaim(realm_access) = %+v, %v", r, err)
	}
	// DecodeClaim matches exactly.
	var s string
	if err := c.DecodeClaim("tenant", &s); !errors.Is(err, ErrMissingClaim) {
		t.Errorf("DecodeClaim(tenant) with only Tenant: got %q, %v; want ErrMissingClaim", s, err)
	}
}

// TestNewClaims: claims for handler tests, parsed as the verifier parses a
// token's, which Decode and DecodeClaim read.
func TestNewClaims(t *testing.T) {
	c, err := NewClaims([]byte(`{"iss":"https://idp.example","sub":"u1","aud":["api"],"exp":1900000000,
		"scp":["orders:read"],"realm_access":{"roles":["admin"]}}`), "scope", "scp")
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://idp.example" || c.Subject != "u1" || !c.HasAudience("api") || !c.HasScope("orders:read") || c.Expiry.Unix() != 1900000000 {
		t.Errorf("NewClaims = %+v", c)
	}
	var ra struct{ Roles []string }
	if err := c.DecodeClaim("realm_access", &ra); err != nil || !slices.Equal(ra.Roles, []string{"admin"}) {
		t.Errorf("DecodeClaim(realm_access) = %+v, %v", ra, err)
	}
	if err := c.DecodeClaim("tenant", &ra); !errors.Is(err, ErrMissingClaim) {
		t.Errorf("DecodeClaim(tenant): got %v, want ErrMissingClaim", err)
	}
	if c, err := NewClaims([]byte(`{"scope":"a b"}`)); err != nil || !slices.Equal(c.Scopes, []string{"a", "b"}) {
		t.Errorf(`NewClaims without scope claims reads "scope": %+v, %v`, c, err)
	}
	for _, bad := range []string{`{"exp":"soon"}`, `{"aud":1}`, `{"sub":"a","sub":"b"}`, `[]`, `{`} {
		if _, err := NewClaims([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("NewClaims(%s): got %v, want ErrMalformed", bad, err)
		}
	}
	// Claims built by hand hold no claims set: Decode leaves v as it is,
	// DecodeClaim finds nothing.
	hand := &Claims{Subject: "u2"}
	var v struct{ Sub string }
	if err := hand.Decode(&v); err != nil || v.Sub != "" {
		t.Errorf("Decode of hand-built claims = %+v, %v; want nothing decoded and no error", v, err)
	}
	if err := hand.DecodeClaim("sub", &v.Sub); !errors.Is(err, ErrMissingClaim) {
		t.Errorf("DecodeClaim of hand-built claims: got %v, want ErrMissingClaim", err)
	}
}
