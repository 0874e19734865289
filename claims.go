package grpcjwt

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
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
	// ClientID is "client_id" (RFC 9068), or "azp" when client_id is absent.
	ClientID string
	// Scopes are the granted scopes, from "scope" (space-separated, RFC 8693
	// §4.2) and the other claims named by [WithScopeClaims], in token order.
	Scopes []string

	payload []byte // the claims set as signed
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
// claims that Claims does not name (roles, tenant, email, ...).
func (c *Claims) Decode(v any) error {
	if err := json.Unmarshal(c.payload, v); err != nil {
		return fmt.Errorf("grpcjwt: decoding claims: %w", err)
	}
	return nil
}

// DecodeClaim unmarshals the claim called name into v. It returns an error
// wrapping [ErrMissingClaim] when the token has no such claim.
func (c *Claims) DecodeClaim(name string, v any) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(c.payload, &all); err != nil {
		return fmt.Errorf("grpcjwt: decoding claims: %w", err)
	}
	raw, ok := all[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrMissingClaim, name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("grpcjwt: decoding claim %q: %w", name, err)
	}
	return nil
}

// Raw returns a copy of the claims set's JSON as the issuer signed it.
func (c *Claims) Raw() []byte {
	return slices.Clone(c.payload)
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
// accepted value converts to time.Time exactly.
const maxNumericDate = 253402300799

// parseClaims decodes and type-checks the claims set. Every member is held
// to its RFC 7519 type; a wrong type is ErrMalformed, never a zero value.
// Duplicate names resolve to the last one (RFC 7519 §4, as ECMAScript's
// JSON.parse does), and names match exactly, case-sensitively.
func parseClaims(payload []byte, scopeClaims []string) (*Claims, map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		return nil, nil, fmt.Errorf("%w: the claims set is not a JSON object", ErrMalformed)
	}
	c := &Claims{payload: payload}
	var err error
	if c.Issuer, err = stringClaim(m, "iss"); err != nil {
		return nil, nil, err
	}
	if c.Subject, err = stringClaim(m, "sub"); err != nil {
		return nil, nil, err
	}
	if c.ID, err = stringClaim(m, "jti"); err != nil {
		return nil, nil, err
	}
	if c.ClientID, err = stringClaim(m, "client_id"); err != nil {
		return nil, nil, err
	}
	if c.ClientID == "" {
		if c.ClientID, err = stringClaim(m, "azp"); err != nil {
			return nil, nil, err
		}
	}
	if c.Audience, err = stringsClaim(m, "aud", false); err != nil {
		return nil, nil, err
	}
	if c.Expiry, err = dateClaim(m, "exp"); err != nil {
		return nil, nil, err
	}
	if c.NotBefore, err = dateClaim(m, "nbf"); err != nil {
		return nil, nil, err
	}
	if c.IssuedAt, err = dateClaim(m, "iat"); err != nil {
		return nil, nil, err
	}
	for _, name := range scopeClaims {
		s, err := stringsClaim(m, name, true)
		if err != nil {
			return nil, nil, err
		}
		c.Scopes = append(c.Scopes, s...)
	}
	return c, m, nil
}

func stringClaim(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok {
		return "", nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%w: claim %q is not a string", ErrMalformed, name)
	}
	return s, nil
}

// stringsClaim reads a claim that is a string or an array of strings. With
// split, a string is a space-separated list (as "scope" is).
func stringsClaim(m map[string]json.RawMessage, name string, split bool) ([]string, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, fmt.Errorf("%w: claim %q is not a string", ErrMalformed, name)
		}
		if split {
			return strings.Fields(s), nil
		}
		return []string{s}, nil
	}
	// Decode the members one by one: into a []string, encoding/json turns a
	// null member into "" instead of failing.
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, fmt.Errorf("%w: claim %q is not a string or an array of strings", ErrMalformed, name)
	}
	list := make([]string, len(items))
	for i, item := range items {
		if len(item) == 0 || item[0] != '"' || json.Unmarshal(item, &list[i]) != nil {
			return nil, fmt.Errorf("%w: claim %q is not a string or an array of strings", ErrMalformed, name)
		}
	}
	return list, nil
}

// dateClaim reads a NumericDate (RFC 7519 §2): a JSON number of seconds,
// possibly fractional, within year 1 to 9999.
func dateClaim(m map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, nil
	}
	var f float64
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || json.Unmarshal(raw, &f) != nil ||
		math.IsNaN(f) || math.IsInf(f, 0) || f > maxNumericDate || f < -62135596800 {
		return time.Time{}, fmt.Errorf("%w: claim %q is not a NumericDate", ErrMalformed, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
