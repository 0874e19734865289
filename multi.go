package grpcjwt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NewMultiIssuerVerifier returns a verifier that trusts several issuers
// (several tenants, or two providers during a migration), each through its
// own verifier with its own keyset, audiences, algorithms and options.
// Use it wherever a *Verifier goes, in the interceptors too.
//
// A token's "iss" is read before its signature is checked, only to choose
// the verifier; that verifier then checks everything, "iss" included,
// against its own keys. A key published by one issuer therefore never
// verifies a token that claims another. A token whose "iss" names no
// trusted issuer fails with [ErrIssuer] without any network call.
//
// Each verifier must trust exactly one issuer (see [WithIssuer]), and no
// two the same one. The audience check is the chosen verifier's; per-method
// rules that name audiences apply across issuers.
func NewMultiIssuerVerifier(verifiers ...*Verifier) (*Verifier, error) {
	if len(verifiers) == 0 {
		return nil, errors.New("grpcjwt: NewMultiIssuerVerifier: no verifier")
	}
	m := &Verifier{routes: make(map[string]*Verifier, len(verifiers)), o: defaultVerifierOptions()}
	m.o.maxTokenBytes, m.o.leeway = 0, 0 // each issuer has its own (leewayFor)
	for i, v := range verifiers {
		switch {
		case v == nil:
			return nil, fmt.Errorf("grpcjwt: NewMultiIssuerVerifier: verifier %d is nil", i)
		case v.routes != nil:
			return nil, fmt.Errorf("grpcjwt: NewMultiIssuerVerifier: verifier %d trusts several issuers itself", i)
		case v.o.skipIssuer || len(v.o.issuers) != 1:
			return nil, fmt.Errorf("grpcjwt: NewMultiIssuerVerifier: verifier %d must trust exactly one issuer", i)
		}
		iss := v.o.issuers[0]
		if _, dup := m.routes[iss]; dup {
			return nil, fmt.Errorf("grpcjwt: NewMultiIssuerVerifier: two verifiers trust %q", iss)
		}
		m.routes[iss] = v
		m.o.issuers = append(m.o.issuers, iss)
		// The interceptors read the size cap from the verifier they hold:
		// take the largest of any issuer. (The leeway that ends a stream
		// is the issuer's own: see leewayFor.)
		m.o.maxTokenBytes = max(m.o.maxTokenBytes, v.o.maxTokenBytes)
	}
	return m, nil
}

// leewayFor returns the leeway of the verifier that verified c: with
// several issuers, that issuer's own, so that its stream ends at its
// expiry plus its leeway and not another issuer's.
func (v *Verifier) leewayFor(c *Claims) time.Duration {
	if sub, ok := v.routes[c.Issuer]; ok {
		return sub.o.leeway
	}
	return v.o.leeway
}

// route picks the verifier for the issuer the token claims. The claims
// read here are untrusted: they only choose whose keys may verify.
func (v *Verifier) route(raw string) (*Verifier, error) {
	d1 := strings.IndexByte(raw, '.')
	if d1 < 0 {
		// As a verifier of one issuer says: JSON, or an opaque token.
		if isJSONSerialization(raw) {
			return nil, errJSONSerialization
		}
		return nil, errOpaqueToken
	}
	rest := raw[d1+1:]
	d2 := strings.IndexByte(rest, '.')
	if d2 < 0 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	payload, err := b64decodeTo(make([]byte, b64.DecodedLen(d2)), rest[:d2])
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	var members [claimsMembersOnStack]jsonMember
	obj, err := parseJSONObject(string(payload), members[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: the claims set is not a JSON object", ErrMalformed)
	}
	raw, ok := obj.get("iss")
	if !ok {
		return nil, fmt.Errorf("%w: no iss claim", ErrIssuer)
	}
	iss, ok := jsonString(raw)
	if !ok {
		return nil, fmt.Errorf("%w: claim \"iss\" is not a string", ErrMalformed)
	}
	sub, ok := v.routes[iss]
	if !ok {
		return nil, ErrIssuer
	}
	return sub, nil
}

// routedVerifyToken is verifyTokenHit for a verifier of several issuers.
func (v *Verifier) routedVerifyToken(ctx context.Context, raw string) (*Claims, bool, error) {
	if len(raw) > v.o.maxTokenBytes {
		return nil, false, fmt.Errorf("%w: token of %d bytes exceeds the limit of %d", ErrMalformed, len(raw), v.o.maxTokenBytes)
	}
	sub, err := v.route(raw)
	if err != nil {
		return nil, false, err
	}
	return sub.verifyTokenHit(ctx, raw)
}
