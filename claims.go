package grpcjwt

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Claims is the verified claims set of an access token (RFC 7519, RFC 9068).
//
// A *Claims returned by [Verifier.Verify] or found by [ClaimsFromContext] is
// shared: the verifier's cache hands the same value to every call that
// presents the same token. Treat it as read-only.
type Claims struct {
	// Issuer is "iss".
	Issuer string
	// Subject is "sub": the user, or the client for client-credentials tokens.
	Subject string
	// Audience is "aud", a one-element slice when the token holds a string.
	Audience []string
	// Expiry is "exp"; NotBefore is "nbf" and IssuedAt is "iat", zero when absent.
	Expiry, NotBefore, IssuedAt time.Time
	// ID is "jti".
	ID string
	// ClientID is "client_id" (RFC 9068); when it is absent, "azp" (OpenID
	// Connect, Keycloak, Entra ID v2), "appid" (Entra ID v1) or "cid"
	// (Okta), the first that is present and not empty.
	ClientID string
	// Scopes are the granted scopes, from "scope" (space-separated, RFC 8693
	// §4.2) and the other claims named by [WithScopeClaims], in token order.
	Scopes []string
	// CertificateThumbprint is "x5t#S256" of the "cnf" claim (RFC 8705
	// §3.1): the base64url SHA-256 thumbprint of the client certificate the
	// token is bound to, empty for a token not bound to one. The
	// interceptors require such a token to come over mutual TLS with that
	// certificate.
	CertificateThumbprint string

	// payload is the claims set as signed. The string fields above are
	// substrings of it (unless the JSON escapes them), which is why it is
	// a string: one conversion of the decoded claims set serves them all.
	payload string
	// unsupportedCnf names the first member of "cnf" other than
	// "x5t#S256": a binding the verifier cannot check.
	unsupportedCnf string
}

// NewClaims parses claimsSet, a JWT claims set (a JSON object), into Claims
// as the verifier reads a token's: each registered claim held to its JSON
// type, scopes read from scopeClaims ("scope" when none is given), and a
// repeated name, or two names that differ only in case, refused with
// [ErrMalformed]. Nothing is verified: no signature, issuer, audience or
// time is checked.
//
// It is for tests of handlers: with [ContextWithClaims] a handler gets
// claims that [Claims.Decode] and [Claims.DecodeClaim] read, as they read
// a real token's.
func NewClaims(claimsSet []byte, scopeClaims ...string) (*Claims, error) {
	if len(scopeClaims) == 0 {
		scopeClaims = []string{"scope"}
	}
	c := new(Claims)
	if _, err := parseClaims(c, string(claimsSet), scopeClaims, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// HasScope reports whether the token grants scope s (exact, case-sensitive).
func (c *Claims) HasScope(s string) bool {
	return c != nil && slices.Contains(c.Scopes, s)
}

// HasAudience reports whether the token's audience includes aud.
func (c *Claims) HasAudience(aud string) bool {
	return c != nil && slices.Contains(c.Audience, aud)
}

// Decode unmarshals the whole claims set into v with encoding/json, for
// claims that Claims does not name (roles, tenant, email, ...). Claims
// built by hand, without a claims set, decode as an empty object.
//
// encoding/json matches member names case-insensitively and takes the
// last of repeated names, where the verifier matches exactly and refuses
// repeats. So that Decode never reads a member in place of the one the
// verifier read, the verifier refuses a claims set whose names repeat or
// differ only in case, and Decode refuses one with such names at any depth.
func (c *Claims) Decode(v any) error {
	doc := c.payload
	if doc == "" {
		doc = "{}"
	}
	if err := unambiguousJSON(doc, 1); err != nil {
		return fmt.Errorf("grpcjwt: decoding claims: %w", err)
	}
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return fmt.Errorf("grpcjwt: decoding claims: %w", err)
	}
	return nil
}

// DecodeClaim unmarshals the claim called name (matched exactly) into v.
// It returns an error wrapping [ErrMissingClaim] when the claims set has no
// such claim, and refuses, as [Claims.Decode] does, a value holding an
// object whose member names repeat or differ only in case.
func (c *Claims) DecodeClaim(name string, v any) error {
	m, err := parseJSONObject(c.payload, nil)
	if c.payload == "" {
		m, err = nil, nil // a Claims built by hand holds no claim
	}
	if err != nil {
		return fmt.Errorf("grpcjwt: decoding claims: %w", err)
	}
	raw, ok := m.get(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrMissingClaim, name)
	}
	if err := unambiguousJSON(raw, 2); err != nil {
		return fmt.Errorf("grpcjwt: decoding claim %q: %w", name, err)
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return fmt.Errorf("grpcjwt: decoding claim %q: %w", name, err)
	}
	return nil
}

// Raw returns a copy of the claims set's JSON as the issuer signed it.
func (c *Claims) Raw() []byte {
	if c.payload == "" {
		return nil // a Claims built by hand has no claims set
	}
	return []byte(c.payload)
}

type claimsKey struct{}

// ContextWithClaims returns a copy of ctx carrying c. The interceptors use
// it; handler tests can too, to call a handler without a token.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the claims the interceptor attached to ctx. ok is
// false for a call that carried no verified token (a public method).
func ClaimsFromContext(ctx context.Context) (c *Claims, ok bool) {
	c, ok = ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// maxNumericDate bounds NumericDate values to the year 9999, so that every
// accepted value converts to time.Time exactly; minNumericDate is year 1.
const (
	maxNumericDate = 253402300799
	minNumericDate = -62135596800
)

// parseClaims decodes and type-checks the claims set. Every member is held
// to its RFC 7519 type; a wrong type is ErrMalformed, never a zero value.
// Names match exactly, case-sensitively; a repeated name is refused (RFC
// 7519 §4 allows either that or taking the last one: two readers must
// never see different "aud" or "scope"), and so are two names that differ
// only in case, which encoding/json, and so Claims.Decode, would match to
// the same field.
//
// It fills in c, and returns the claims set's members too, for the
// presence checks of checkClaims, appended to members: a buffer of the
// caller's (nil will do) that spares a typical claims set an allocation.
func parseClaims(c *Claims, payload string, scopeClaims []string, members jsonObject) (jsonObject, error) {
	if !utf8.ValidString(payload) {
		return nil, fmt.Errorf("%w: claims set is not valid UTF-8", ErrMalformed)
	}
	m, err := parseJSONObject(payload, members[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: the claims set is not a JSON object", ErrMalformed)
	}
	if a, b, ok := m.ambiguousNames(); ok {
		if a == b {
			return nil, fmt.Errorf("%w: the claims set repeats the name %s", ErrMalformed, quoted(a))
		}
		return nil, fmt.Errorf("%w: the claims set's names %s and %s differ only in case", ErrMalformed, quoted(a), quoted(b))
	}
	// The strings are substrings of payload unless they hold escapes, so
	// the claims set costs one slice for Audience and Scopes.
	*c = Claims{payload: payload}
	if c.Issuer, err = stringClaim(m, "iss"); err != nil {
		return nil, err
	}
	if c.Subject, err = stringClaim(m, "sub"); err != nil {
		return nil, err
	}
	if c.ID, err = stringClaim(m, "jti"); err != nil {
		return nil, err
	}
	if c.ClientID, err = stringClaim(m, "client_id"); err != nil {
		return nil, err
	}
	for _, name := range [...]string{"azp", "appid", "cid"} {
		if c.ClientID != "" {
			break
		}
		if c.ClientID, err = stringClaim(m, name); err != nil {
			return nil, err
		}
	}
	if cnf, ok := m.get("cnf"); ok {
		if c.CertificateThumbprint, c.unsupportedCnf, err = confirmation(cnf); err != nil {
			return nil, err
		}
	}
	// Count the strings of "aud" and of the scope claims (which checks
	// their types), then fill one slice with them.
	aud, hasAud := m.get("aud")
	nAud, nScopes := 0, 0
	if hasAud && !eachString(aud, false, func(string) { nAud++ }) {
		return nil, fmt.Errorf("%w: claim %q is not a string or an array of strings", ErrMalformed, "aud")
	}
	if c.Expiry, err = dateClaim(m, "exp"); err != nil {
		return nil, err
	}
	if c.NotBefore, err = dateClaim(m, "nbf"); err != nil {
		return nil, err
	}
	if c.IssuedAt, err = dateClaim(m, "iat"); err != nil {
		return nil, err
	}
	for _, name := range scopeClaims {
		if v, ok := m.get(name); ok && !eachString(v, true, func(string) { nScopes++ }) {
			return nil, fmt.Errorf("%w: claim %q is not a string or an array of strings", ErrMalformed, name)
		}
	}
	if !hasAud && nScopes == 0 {
		return m, nil
	}
	strs := make([]string, 0, nAud+nScopes)
	add := func(s string) { strs = append(strs, s) }
	if hasAud {
		eachString(aud, false, add)
		// Audience is non-nil when the claim is present, even if empty
		// ("aud": []), as encoding/json made it; the full slice
		// expression keeps an append to Audience off Scopes.
		c.Audience = strs[:nAud:nAud]
	}
	for _, name := range scopeClaims {
		if v, ok := m.get(name); ok {
			eachString(v, true, add)
		}
	}
	if nScopes > 0 {
		c.Scopes = strs[nAud:]
	}
	return m, nil
}

func stringClaim(m jsonObject, name string) (string, error) {
	v, ok := m.get(name)
	if !ok {
		return "", nil
	}
	s, ok := jsonString(v)
	if !ok {
		return "", fmt.Errorf("%w: claim %q is not a string", ErrMalformed, name)
	}
	return s, nil
}

// eachString calls fn with each string of a claim that is a string or an
// array of strings, and reports whether it is one. With split, a string is
// a list delimited by spaces (as "scope" is, RFC 6749 §3.3, RFC 8693
// §4.2) and fn gets its items; the elements of an array are taken whole. A
// null element is not a string.
func eachString(v string, split bool, fn func(string)) bool {
	if len(v) > 0 && v[0] == '[' {
		return jsonEachString(v, fn)
	}
	s, ok := jsonString(v)
	if !ok {
		return false
	}
	if split {
		eachField(s, fn)
	} else {
		fn(s)
	}
	return true
}

// eachField calls fn with each scope-token of s, a list delimited by
// U+0020 SPACE alone (RFC 6749 §3.3, RFC 9068 §2.2.3); runs of spaces
// delimit no empty token. Every other character, white space included
// (TAB, LF, CR, VT, FF, NBSP, NEL, U+2028, U+3000), belongs to its token,
// so a scope granted as "reports:tenant-7<NBSP>admin" stays one scope and
// never equals "admin". (strings.Split would allocate the slice.)
func eachField(s string, fn func(string)) {
	for s != "" {
		tok, rest, _ := strings.Cut(s, " ")
		if tok != "" {
			fn(tok)
		}
		s = rest
	}
}

// dateClaim reads a NumericDate (RFC 7519 §2): a JSON number of seconds,
// possibly fractional, within year 1 to 9999.
func dateClaim(m jsonObject, name string) (time.Time, error) {
	v, ok := m.get(name)
	if !ok {
		return time.Time{}, nil
	}
	// jsonNumber refuses what overflows a float64, so f is finite.
	f, ok := jsonNumber(v)
	if !ok || f > maxNumericDate || f < minNumericDate {
		return time.Time{}, fmt.Errorf("%w: claim %q is not a NumericDate", ErrMalformed, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// confirmation reads the "cnf" claim's object (RFC 7800 §3.1): its
// "x5t#S256" (RFC 8705 §3.1), "" when absent, and the name of its first
// other member, a binding this library cannot check ("jkt" of DPoP, "jwk",
// "kid", ...), "" when there is none. A "cnf" that is not an object, whose
// member names repeat or differ only in case, or whose "x5t#S256" is not a
// canonical base64url SHA-256 digest (a string of another kind, or not a
// string at all) is malformed.
func confirmation(cnf string) (thumbprint, other string, err error) {
	var members [8]jsonMember
	obj, err := parseJSONObject(cnf, members[:0])
	if err != nil {
		return "", "", fmt.Errorf("%w: claim \"cnf\" is not an object", ErrMalformed)
	}
	if _, _, ok := obj.ambiguousNames(); ok {
		return "", "", fmt.Errorf("%w: claim \"cnf\" repeats a member name, or has two that differ only in case", ErrMalformed)
	}
	for _, m := range obj {
		if m.name != "x5t#S256" {
			other = m.name
			break
		}
	}
	raw, ok := obj.get("x5t#S256")
	if !ok {
		return "", other, nil
	}
	tp, ok := jsonString(raw)
	if d, err := b64.DecodeString(tp); !ok || err != nil || len(d) != 32 {
		return "", "", fmt.Errorf("%w: cnf x5t#S256 is not a base64url SHA-256 thumbprint", ErrMalformed)
	}
	return tp, other, nil
}
