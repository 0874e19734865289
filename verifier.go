package grpcjwt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Verifier decides whether to trust a raw JWT access token: a compact JWS
// signed by a key of its [Keyset] with an allowed algorithm, from a trusted
// issuer, for an accepted audience, and within its validity period.
//
// A Verifier knows nothing of gRPC; the interceptors call it. It is safe for
// concurrent use.
type Verifier struct {
	keys   *Keyset
	o      verifierOptions
	cache  *tokenCache
	routes map[string]*Verifier // by issuer, for NewMultiIssuerVerifier
}

type verifierOptions struct {
	issuers         []string
	audiences       []string
	skipIssuer      bool
	skipAudience    bool
	algs            algSet
	leeway          time.Duration
	maxTokenBytes   int
	strictType      bool
	ignoreCnf       bool // InsecureIgnoreUnsupportedConfirmation
	acceptIDTokens  bool // InsecureAcceptIDTokens
	requiredClaims  []string
	maxLifetime     time.Duration
	scopeClaims     []string
	maxKeyAttempts  int
	cacheEntries    int
	cacheTokenBytes int
	cacheMaxAge     time.Duration
	now             func() time.Time
	// readNames maps the folded key (foldKey) of every claim name the
	// verifier reads to that name: a claim whose name differs from one of
	// them only in case is refused.
	readNames map[string]string
}

// registeredReads are the claims a verifier reads, besides its scope and
// required claims.
var registeredReads = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "azp", "appid", "cid",
	"cnf", "typ", "at_hash", "c_hash"}

func defaultVerifierOptions() verifierOptions {
	return verifierOptions{
		algs:            allAlgs,
		leeway:          30 * time.Second,
		maxTokenBytes:   16 << 10,
		scopeClaims:     []string{"scope"},
		maxKeyAttempts:  4,
		cacheEntries:    10000,
		cacheTokenBytes: 8 << 10,
		cacheMaxAge:     10 * time.Minute,
		now:             time.Now,
	}
}

// A VerifierOption configures [NewVerifier].
type VerifierOption func(*verifierOptions) error

// WithIssuer sets the trusted issuers: a token's "iss" must equal one of
// them exactly. Required, unless [InsecureSkipIssuerCheck] is given.
func WithIssuer(issuers ...string) VerifierOption {
	return func(o *verifierOptions) error {
		for _, s := range issuers {
			if s == "" {
				return errors.New("grpcjwt: WithIssuer: empty issuer")
			}
		}
		o.issuers = append(o.issuers, issuers...)
		return nil
	}
}

// WithAudience sets the accepted audiences: a token's "aud" must contain at
// least one of them. Per-method rules of the interceptors may narrow this.
// Required, unless [InsecureSkipAudienceCheck] is given.
func WithAudience(audiences ...string) VerifierOption {
	return func(o *verifierOptions) error {
		for _, s := range audiences {
			if s == "" {
				return errors.New("grpcjwt: WithAudience: empty audience")
			}
		}
		o.audiences = append(o.audiences, audiences...)
		return nil
	}
}

// InsecureSkipIssuerCheck lets [NewVerifier] build a verifier without
// [WithIssuer]: tokens from any issuer whose keys are in the keyset verify.
//
// Use it only when the keyset belongs to a single issuer and something else
// checks "iss". Every key in the keyset then speaks for every issuer.
func InsecureSkipIssuerCheck() VerifierOption {
	return func(o *verifierOptions) error {
		o.skipIssuer = true
		return nil
	}
}

// InsecureSkipAudienceCheck lets [NewVerifier] build a verifier without
// [WithAudience]: a token minted for any API of the issuer verifies.
//
// Use it only when every method is guarded by an interceptor rule that names
// its audiences, or when the caller checks "aud" itself. Without an audience
// check, a token issued for another service is accepted here (RFC 8725 §3.9).
func InsecureSkipAudienceCheck() VerifierOption {
	return func(o *verifierOptions) error {
		o.skipAudience = true
		return nil
	}
}

// WithAlgorithms restricts the accepted signing algorithms to algs, JWA
// names out of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384,
// ES512, EdDSA and Ed25519 (the fully-specified name of EdDSA with
// Ed25519, RFC 9864). The default is all of them. "none" and the HMAC
// algorithms are never accepted: a keyset holds public keys only.
func WithAlgorithms(algs ...string) VerifierOption {
	return func(o *verifierOptions) error {
		if len(algs) == 0 {
			return errors.New("grpcjwt: WithAlgorithms: no algorithm")
		}
		var s algSet
		for _, name := range algs {
			a := parseAlg(name)
			if a == algInvalid {
				return fmt.Errorf("grpcjwt: WithAlgorithms: %q is not a supported signature algorithm", name)
			}
			s |= setOf(a)
		}
		o.algs = s
		return nil
	}
}

// WithLeeway sets the clock skew tolerated when checking "exp", "nbf" and
// "iat". The default is 30 seconds; at most 5 minutes is allowed.
func WithLeeway(d time.Duration) VerifierOption {
	return func(o *verifierOptions) error {
		if d < 0 || d > 5*time.Minute {
			return fmt.Errorf("grpcjwt: WithLeeway: %v is outside [0, 5m]", d)
		}
		o.leeway = d
		return nil
	}
}

// WithMaxTokenSize caps the length of a token in bytes; a longer one is
// rejected with [ErrMalformed] before any parsing. The default is 16 KiB.
func WithMaxTokenSize(n int) VerifierOption {
	return func(o *verifierOptions) error {
		if n < 64 || n > 1<<20 {
			return fmt.Errorf("grpcjwt: WithMaxTokenSize: %d is outside [64, 1 MiB]", n)
		}
		o.maxTokenBytes = n
		return nil
	}
}

// WithStrictType requires the "typ" header of RFC 9068 access tokens,
// "at+jwt" or "application/at+jwt" (case-insensitive), which keeps ID tokens
// and other JWTs of the issuer from being used as access tokens. By default
// "typ" may also be "JWT" or absent, as many providers still send.
func WithStrictType() VerifierOption {
	return func(o *verifierOptions) error {
		o.strictType = true
		return nil
	}
}

// WithRequiredClaims makes the named claims mandatory; a token without one
// fails with [ErrMissingClaim]. "exp" is always required. Claim names are
// case-sensitive: [NewVerifier] refuses a name here or in
// [WithScopeClaims] that differs only in case from another the verifier
// reads ("Sub" beside "sub"), since a token carrying either is refused.
func WithRequiredClaims(names ...string) VerifierOption {
	return func(o *verifierOptions) error {
		o.requiredClaims = append(o.requiredClaims, names...)
		return nil
	}
}

// WithMaxLifetime rejects, with [ErrLifetime], tokens whose "exp" lies more
// than d after their "iat"; a token without "iat" then fails with
// [ErrMissingClaim]. The default, zero, sets no bound.
func WithMaxLifetime(d time.Duration) VerifierOption {
	return func(o *verifierOptions) error {
		if d < 0 {
			return fmt.Errorf("grpcjwt: WithMaxLifetime: %v is negative", d)
		}
		o.maxLifetime = d
		return nil
	}
}

// WithScopeClaims names the claims that grant scopes, read in this order
// into [Claims.Scopes]: each a space-separated string or an array of
// strings. The default is "scope" (RFC 9068). Add "scp" for Okta and Entra
// ID, "permissions" for Auth0 RBAC.
func WithScopeClaims(names ...string) VerifierOption {
	return func(o *verifierOptions) error {
		if len(names) == 0 {
			return errors.New("grpcjwt: WithScopeClaims: no claim name")
		}
		o.scopeClaims = slices.Clone(names)
		return nil
	}
}

// WithTokenCache sizes the cache of verified tokens: at most entries tokens
// of at most maxTokenBytes each, each kept at most maxAge and never past its
// "exp". A hit re-checks "exp" and "nbf" and that the signing key is still
// in the keyset, and skips the signature check. Only tokens that verified
// are cached; a full cache drops its oldest entries first. The defaults are
// 10,000 entries, 8 KiB and 10 minutes; entries of zero turns the cache off.
func WithTokenCache(entries, maxTokenBytes int, maxAge time.Duration) VerifierOption {
	return func(o *verifierOptions) error {
		if entries < 0 || maxTokenBytes < 0 || maxAge < 0 {
			return errors.New("grpcjwt: WithTokenCache: negative bound")
		}
		o.cacheEntries, o.cacheTokenBytes, o.cacheMaxAge = entries, maxTokenBytes, maxAge
		return nil
	}
}

// WithClock sets the verifier's clock, which it reads for every check of
// "exp", "nbf" and "iat" and for the age of cached tokens. The default is
// [time.Now]. Tests use it to verify tokens at a fixed instant; the
// interceptors' stream expiry runs on real time whatever the clock says.
func WithClock(now func() time.Time) VerifierOption {
	return func(o *verifierOptions) error {
		if now == nil {
			return errors.New("grpcjwt: WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

// InsecureAcceptIDTokens accepts tokens that show themselves to be OpenID
// Connect ID tokens: tokens carrying "at_hash" or "c_hash", or Keycloak's
// payload "typ" of "ID". By default they fail with [ErrTokenType]: an ID
// token tells a client who the user is, and is not meant to call an API
// (RFC 8725 §3.11, RFC 9068 §4).
//
// Use it only for an issuer whose access tokens are built like its ID
// tokens. Dex is one: it signs its access tokens with its ID-token code,
// so each carries "at_hash", and nothing tells the two apart. With this
// option the audience is the only guard: a Dex token's "aud" is the
// client ID, so every ID token Dex issues to that client is accepted too.
func InsecureAcceptIDTokens() VerifierOption {
	return func(o *verifierOptions) error {
		o.acceptIDTokens = true
		return nil
	}
}

// InsecureIgnoreUnsupportedConfirmation accepts, as plain bearer tokens,
// tokens bound by their "cnf" claim (RFC 7800) to a proof of possession
// that this library cannot check: a DPoP key thumbprint ("jkt", RFC 9449),
// a "jwk", a "kid", or any member other than "x5t#S256". By default such a
// token fails with [ErrUnsupportedConfirmation].
//
// A sender-constrained token is issued so that a thief who holds only the
// token cannot use it. Accepting it without the proof gives that up: use
// this option only when something in front of this server (a gateway that
// checks DPoP proofs) has already checked the binding. Certificate-bound
// tokens ("x5t#S256", RFC 8705) are still held to their certificate.
func InsecureIgnoreUnsupportedConfirmation() VerifierOption {
	return func(o *verifierOptions) error {
		o.ignoreCnf = true
		return nil
	}
}

// NewVerifier returns a verifier that checks tokens against keys.
//
// It fails closed: without [WithIssuer] or [WithAudience] it returns an
// error, unless [InsecureSkipIssuerCheck] or [InsecureSkipAudienceCheck]
// says that the caller checks those claims elsewhere.
func NewVerifier(keys *Keyset, opts ...VerifierOption) (*Verifier, error) {
	if keys == nil {
		return nil, errors.New("grpcjwt: NewVerifier: nil keyset")
	}
	o := defaultVerifierOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(o.issuers) == 0 && !o.skipIssuer && keys.issuer != "" {
		// A keyset from NewIssuerKeyset speaks for the issuer whose
		// metadata named it, checked to equal the configured URL.
		o.issuers = []string{keys.issuer}
	}
	if len(o.issuers) == 0 && !o.skipIssuer {
		return nil, errors.New("grpcjwt: NewVerifier: no issuer: pass WithIssuer (or InsecureSkipIssuerCheck)")
	}
	if len(o.audiences) == 0 && !o.skipAudience {
		return nil, errors.New("grpcjwt: NewVerifier: no audience: pass WithAudience (or InsecureSkipAudienceCheck)")
	}
	v := &Verifier{keys: keys, o: o}
	v.o.readNames = map[string]string{}
	for _, name := range slices.Concat(registeredReads, o.scopeClaims, o.requiredClaims) {
		k := foldKey(name)
		if prev, ok := v.o.readNames[k]; ok && prev != name {
			// One of the two would refuse every token carrying the other.
			return nil, fmt.Errorf("grpcjwt: NewVerifier: the claim names %s and %s differ only in case; "+
				"claim names are case-sensitive: name the claim exactly as the tokens spell it", quoted(prev), quoted(name))
		}
		v.o.readNames[k] = name
	}
	if o.cacheEntries > 0 && o.cacheTokenBytes > 0 && o.cacheMaxAge > 0 {
		v.cache = newTokenCache(o.cacheEntries, cacheShards)
	}
	return v, nil
}

// Audiences returns the audiences the verifier accepts.
func (v *Verifier) Audiences() []string { return slices.Clone(v.o.audiences) }

// jwsHeader is the protected header of a compact JWS.
type jwsHeader struct {
	alg  string
	kid  string
	typ  string
	cty  string
	crit bool
}

// Verify checks raw, a compact-serialized JWT, and returns its claims. ctx
// bounds any wait for a key refresh that the token triggers.
//
// The returned error wraps one of the package's sentinel errors ([ErrMalformed],
// [ErrSignature], [ErrExpired], ...). A token whose signature verified but
// whose "iss", "aud", "exp", "nbf", "iat" or lifetime is refused gets a
// [CheckError] naming the claim, its value and the accepted ones (the
// interceptors add scopes and a rule's claim values); an error about a
// token whose signature did not verify never holds a value read from it.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	c, err := v.verifyToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := v.checkAudience(c, v.o.audiences); err != nil {
		return nil, err
	}
	return c, nil
}

// checkAudience requires the token's "aud" to hold one of audiences, unless
// the verifier was built with InsecureSkipAudienceCheck and audiences is
// the verifier's own list.
func (v *Verifier) checkAudience(c *Claims, audiences []string) error {
	if v.routes != nil && audiences == nil {
		// Several issuers: the audiences of the verifier that verified.
		sub, ok := v.routes[c.Issuer]
		if !ok {
			return ErrIssuer
		}
		return sub.checkAudience(c, sub.o.audiences)
	}
	if v.o.skipAudience && len(audiences) == 0 {
		return nil
	}
	for _, a := range c.Audience {
		if slices.Contains(audiences, a) {
			return nil
		}
	}
	return audienceError(ErrAudience, c, audiences)
}

// audienceError is the CheckError of an audience check: err is ErrAudience
// or the rule's errRuleAudience.
func audienceError(err error, c *Claims, audiences []string) error {
	got := "absent"
	if c.Audience != nil {
		got = quotedList(c.Audience)
	}
	return &CheckError{Err: err, Check: "aud", Got: got, Want: "one of " + quotedList(audiences)}
}

// verifyToken is Verify without the audience check, which the caller
// makes: against the verifier's audiences, or a method rule's. The cache
// therefore stores claims, never decisions.
func (v *Verifier) verifyToken(ctx context.Context, raw string) (*Claims, error) {
	c, _, err := v.verifyTokenHit(ctx, raw)
	return c, err
}

// verifyTokenHit is verifyToken reporting whether the token came from the
// cache.
func (v *Verifier) verifyTokenHit(ctx context.Context, raw string) (*Claims, bool, error) {
	if v.routes != nil {
		return v.routedVerifyToken(ctx, raw)
	}
	if len(raw) > v.o.maxTokenBytes {
		return nil, false, fmt.Errorf("%w: token of %d bytes exceeds the limit of %d", ErrMalformed, len(raw), v.o.maxTokenBytes)
	}
	now := v.o.now()
	keep := v.cache != nil && len(raw) <= v.o.cacheTokenBytes
	var h uint64
	if keep {
		h = v.cache.hash(raw)
		if e := v.cache.lookup(raw, h); e != nil && v.keys.usable(e.key) && now.Before(e.until) {
			if err := v.checkTimes(&e.claims, now); err != nil {
				return nil, true, err
			}
			return &e.claims, true, nil
		}
	}
	e, err := v.verify(ctx, raw, now, keep)
	if err != nil {
		return nil, false, err
	}
	if keep {
		e.hash = h
		e.until = now.Add(v.o.cacheMaxAge)
		if exp := e.claims.Expiry.Add(v.o.leeway); exp.Before(e.until) {
			e.until = exp
		}
		v.cache.put(e)
	}
	return &e.claims, false, nil
}

// Sizes of buffers that verify keeps in its stack frame; larger headers and
// claims sets spill to the heap.
const (
	headerBytesOnStack   = 512 // the decoded header
	sigBytesOnStack      = 512 // the decoded signature
	claimsMembersOnStack = 24  // the members of the claims set
)

// verify is Verify without the cache. It returns the claims in a
// cacheEntry with the key that verified; with keep, the entry's token is a
// copy of raw, ready for the cache.
func (v *Verifier) verify(ctx context.Context, raw string, now time.Time, keep bool) (*cacheEntry, error) {
	// A token to be cached gets its copy in the front of the claims set's
	// buffer, so that the cache entry holds one object for both.
	front := 0
	if keep {
		front = len(raw)
	}
	key, buf, payJSON, err := v.verifyJWS(ctx, raw, front)
	if err != nil {
		return nil, err
	}

	// The signature holds: from here on the claims are the issuer's. The
	// decoded claims set, and the token's copy, become strings without a
	// copy (nothing writes to buf after this); the claims are substrings
	// of the claims set.
	e := &cacheEntry{key: key}
	var members [claimsMembersOnStack]jsonMember
	m, err := parseClaims(&e.claims, unsafe.String(unsafe.SliceData(payJSON), len(payJSON)), v.o.scopeClaims, members[:0])
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(&e.claims, m, now); err != nil {
		return nil, err
	}
	if keep {
		copy(buf, raw)
		e.token = unsafe.String(unsafe.SliceData(buf), len(raw))
	}
	return e, nil
}

// verifyJWS is verify up to the claims: it checks that raw is a compact
// JWS whose header this verifier accepts and whose signature one of its
// keys verifies, and returns that key and the decoded claims set, payJSON,
// which is buf from its front'th byte on. The differential test and
// FuzzDifferentialJOSE hold it to go-jose's verification.
func (v *Verifier) verifyJWS(ctx context.Context, raw string, front int) (key *verifyKey, buf, payJSON []byte, err error) {
	if isJSONSerialization(raw) {
		return nil, nil, nil, errJSONSerialization
	}
	d1 := strings.IndexByte(raw, '.')
	if d1 < 0 {
		return nil, nil, nil, errOpaqueToken
	}
	d2 := d1 + 1 + strings.IndexByte(raw[d1+1:], '.')
	if d2 == d1 {
		return nil, nil, nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	if strings.IndexByte(raw[d2+1:], '.') >= 0 {
		if strings.Count(raw, ".") == 4 {
			return nil, nil, nil, fmt.Errorf("%w: JWE is not accepted", ErrMalformed)
		}
		return nil, nil, nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	hdrB64, payB64, sigB64 := raw[:d1], raw[d1+1:d2], raw[d2+1:]

	// A header of the usual size is decoded on the stack (parseHeader
	// copies it into a string), so that a token refused for its header
	// costs no more.
	var hdrStack [headerBytesOnStack]byte
	hdrBuf := hdrStack[:]
	if n := b64.DecodedLen(len(hdrB64)); n > len(hdrBuf) {
		hdrBuf = make([]byte, n)
	}
	hdrJSON, err := b64decodeTo(hdrBuf, hdrB64)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	h, err := parseHeader(hdrJSON)
	if err != nil {
		return nil, nil, nil, err
	}
	a := parseAlg(h.alg)
	if a == algInvalid || !v.o.algs.has(a) {
		return nil, nil, nil, fmt.Errorf("%w: alg %s is not on the allow-list %s", ErrAlgorithm, headerAlgName(h.alg), v.o.algs)
	}
	if h.crit {
		return nil, nil, nil, fmt.Errorf("%w: crit header names extensions this verifier does not understand", ErrMalformed)
	}
	if strings.EqualFold(h.cty, "JWT") || strings.EqualFold(h.cty, "application/jwt") {
		return nil, nil, nil, fmt.Errorf("%w: nested JWTs are not accepted", ErrMalformed)
	}
	if !v.typeAccepted(h.typ) {
		return nil, nil, nil, fmt.Errorf("%w: typ header is not an access token type", ErrTokenType)
	}

	// The signing input is read in place, as raw's own prefix: the hash
	// functions and ed25519.Verify take a []byte but only read it.
	signingInput := unsafe.Slice(unsafe.StringData(raw), d2)
	// A signature of the usual size (512 bytes for RSA-4096) is decoded
	// on the stack.
	var sigStack [sigBytesOnStack]byte
	sigBuf := sigStack[:]
	if n := b64.DecodedLen(len(sigB64)); n > len(sigBuf) {
		sigBuf = make([]byte, n)
	}
	sig, err := b64decodeTo(sigBuf, sigB64)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: signature: %w", ErrMalformed, err)
	}
	buf = make([]byte, front+b64.DecodedLen(len(payB64)))
	payJSON, err = b64decodeTo(buf[front:], payB64)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}

	keys, err := v.keys.lookup(ctx, h.kid, a, v.o.maxKeyAttempts)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, k := range keys {
		if verifySignature(a, k, signingInput, sig) {
			return k, buf, payJSON, nil
		}
	}
	return nil, nil, nil, ErrSignature
}

// errJSONSerialization refuses a JWS in the JSON serialization (RFC 7515
// §7.2): an access token is compact.
var errJSONSerialization = fmt.Errorf("%w: JWS JSON serialization is not accepted", ErrMalformed)

// isJSONSerialization reports whether raw is, by its first character, a
// JWS in the JSON serialization.
func isJSONSerialization(raw string) bool {
	return strings.HasPrefix(strings.TrimLeft(raw, " \t\r\n"), "{")
}

// errOpaqueToken refuses a token without a dot: not a JWT at all, most
// likely an opaque access token, which several providers issue when the
// client asks for no API (resource, audience) in its token request.
var errOpaqueToken = fmt.Errorf("%w: not a JWT (no dots): an opaque access token? "+
	"Logto, Auth0 and Zitadel issue opaque tokens when the token request names no API "+
	"(Logto: resource=, Auth0: audience=; Zitadel: choose JWT access tokens in the app)", ErrMalformed)

// checkClaims applies the issuer, time and required-claim checks.
func (v *Verifier) checkClaims(c *Claims, m jsonObject, now time.Time) error {
	if !v.o.skipIssuer && !slices.Contains(v.o.issuers, c.Issuer) {
		got := quoted(c.Issuer)
		if !m.has("iss") {
			got = "absent"
		}
		return &CheckError{Err: ErrIssuer, Check: "iss", Got: got, Want: "one of " + quotedList(v.o.issuers)}
	}
	if err := v.checkCaseVariants(m); err != nil {
		return err
	}
	if !m.has("exp") {
		return fmt.Errorf("%w: exp", ErrMissingClaim)
	}
	if !v.o.acceptIDTokens {
		if err := checkNotIDToken(m); err != nil {
			return err
		}
	}
	if c.unsupportedCnf != "" && !v.o.ignoreCnf {
		return fmt.Errorf("%w: cnf holds %q (only x5t#S256, RFC 8705, is checked here)", ErrUnsupportedConfirmation, c.unsupportedCnf)
	}
	for _, name := range v.o.requiredClaims {
		if !m.has(name) {
			return fmt.Errorf("%w: %q", ErrMissingClaim, name)
		}
	}
	if err := v.checkTimes(c, now); err != nil {
		return err
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(v.o.leeway)) {
		return &CheckError{Err: ErrNotYetValid, Check: "iat", Got: stamp(c.IssuedAt), Want: v.notAfter(now)}
	}
	if v.o.maxLifetime > 0 {
		if c.IssuedAt.IsZero() {
			return fmt.Errorf("%w: iat (needed for the lifetime bound)", ErrMissingClaim)
		}
		if life := c.Expiry.Sub(c.IssuedAt); life > v.o.maxLifetime {
			return &CheckError{Err: ErrLifetime, Check: "exp - iat", Got: life.String(), Want: "at most " + v.o.maxLifetime.String()}
		}
	}
	return nil
}

// checkCaseVariants refuses a claim whose name differs only in case from
// a claim the verifier reads ("SCOPE", "Aud", "ſub"): the verifier does not
// read it, but encoding/json, and so Claims.Decode into a struct, would
// read it in place of the claim the verifier found absent.
func (v *Verifier) checkCaseVariants(m jsonObject) error {
	var buf [64]byte
	for _, mem := range m {
		n := mem.name
		var exact string
		var ok bool
		if len(n) <= len(buf) && isASCII(n) {
			b := buf[:len(n)]
			for i := 0; i < len(n); i++ {
				c := n[i]
				if 'a' <= c && c <= 'z' {
					c -= 'a' - 'A'
				}
				b[i] = c
			}
			exact, ok = v.o.readNames[string(b)] // foldKey of ASCII is its upper case
		} else {
			exact, ok = v.o.readNames[foldKey(n)]
		}
		if ok && exact != n {
			return fmt.Errorf("%w: the claim name %s differs only in case from %s, which the verifier reads", ErrMalformed, quoted(n), quoted(exact))
		}
	}
	return nil
}

// stamp formats an instant for a CheckError.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// notAfter is the Want of an nbf or iat check at now.
func (v *Verifier) notAfter(now time.Time) string {
	return fmt.Sprintf("at most %s (the server's clock %s plus the leeway %v)", stamp(now.Add(v.o.leeway)), stamp(now), v.o.leeway)
}

// checkNotIDToken refuses a token that shows itself to be an OpenID
// Connect ID token (RFC 8725 §3.11, RFC 9068 §4), whatever its "typ"
// header says: one carrying a hash claim that only ID tokens carry,
// "at_hash" or "c_hash" (OIDC Core §3.1.3.6, §3.3.2.11), or Keycloak's
// payload "typ" of "ID" (its access tokens say "Bearer"; its refresh and
// offline tokens, "Refresh" and "Offline", are refused too). "nonce" and
// "auth_time" are not such signals: Keycloak before version 24 copied
// "nonce" into access tokens, and RFC 9068 §2.2.1 allows "auth_time".
func checkNotIDToken(m jsonObject) error {
	for _, name := range [...]string{"at_hash", "c_hash"} {
		if m.has(name) {
			return fmt.Errorf("%w: an ID token (it carries %s), not an access token", ErrTokenType, name)
		}
	}
	if v, ok := m.get("typ"); ok {
		if typ, ok := jsonString(v); ok {
			for _, id := range [...]string{"ID", "Refresh", "Offline"} {
				if strings.EqualFold(typ, id) {
					return fmt.Errorf("%w: the claims set's typ is %q, not an access token's", ErrTokenType, id)
				}
			}
		}
	}
	return nil
}

// checkTimes checks "exp" and "nbf"; it runs again on every cache hit.
func (v *Verifier) checkTimes(c *Claims, now time.Time) error {
	if !now.Before(c.Expiry.Add(v.o.leeway)) {
		return &CheckError{Err: ErrExpired, Check: "exp", Got: stamp(c.Expiry),
			Want: fmt.Sprintf("after %s (the server's clock %s less the leeway %v)", stamp(now.Add(-v.o.leeway)), stamp(now), v.o.leeway)}
	}
	if !c.NotBefore.IsZero() && now.Add(v.o.leeway).Before(c.NotBefore) {
		return &CheckError{Err: ErrNotYetValid, Check: "nbf", Got: stamp(c.NotBefore), Want: v.notAfter(now)}
	}
	return nil
}

// typeAccepted checks the "typ" header (media types compare
// case-insensitively, RFC 7515 §4.1.9).
func (v *Verifier) typeAccepted(typ string) bool {
	if strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt") {
		return true
	}
	if v.o.strictType {
		return false
	}
	return typ == "" || strings.EqualFold(typ, "JWT") || strings.EqualFold(typ, "application/jwt")
}

// b64 is the strict unpadded base64url encoding, made once: Strict returns
// a copy of the encoding.
var b64 = base64.RawURLEncoding.Strict()

// b64decode decodes unpadded base64url, rejecting padding, other alphabets
// and non-zero trailing bits, so that each token has one spelling.
func b64decode(s string) ([]byte, error) {
	return b64decodeTo(make([]byte, b64.DecodedLen(len(s))), s)
}

// b64decodeTo is b64decode into the front of dst, which has room for
// base64.RawURLEncoding.DecodedLen(len(s)) bytes.
func b64decodeTo(dst []byte, s string) ([]byte, error) {
	// encoding/base64 skips '\r' and '\n' even in strict mode: without this
	// check a token with a line break added to its signature still verifies.
	if strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0 {
		return nil, errors.New("not unpadded base64url")
	}
	n, err := b64.Decode(dst, []byte(s)) // the compiler passes s without a copy
	if err != nil {
		return nil, errors.New("not unpadded base64url")
	}
	return dst[:n:n], nil
}

// headerMembersOnStack is how many header members parseHeader holds in its
// stack frame; a header has three or four.
const headerMembersOnStack = 8

// parseHeader decodes the protected header. Names match exactly and may not
// repeat; "jwk", "jku", "x5u" and "x5c" are ignored (keys come from the
// keyset only).
func parseHeader(b []byte) (jwsHeader, error) {
	var h jwsHeader
	if !utf8.Valid(b) {
		return h, fmt.Errorf("%w: header is not valid UTF-8", ErrMalformed)
	}
	var members [headerMembersOnStack]jsonMember
	m, err := parseJSONObject(string(b), members[:0])
	if err != nil {
		return h, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if m.hasDuplicateNames() {
		// RFC 7515 §4 lets a JWS parser either reject a repeated Header
		// Parameter name or take the last one. A header that one parser
		// reads with its first "alg" (or "kid", or "crit") and another with
		// its last is the classic confusion, so grpcjwt rejects it, as
		// go-jose does (differential_test.go).
		return h, fmt.Errorf("%w: header repeats a parameter name", ErrMalformed)
	}
	if m.has("enc") {
		return h, fmt.Errorf("%w: JWE is not accepted", ErrMalformed)
	}
	if m.has("b64") {
		return h, fmt.Errorf("%w: unencoded payloads (b64) are not accepted", ErrMalformed)
	}
	if h.alg, err = headerString(m, "alg"); err != nil {
		return h, err
	}
	if h.kid, err = headerString(m, "kid"); err != nil {
		return h, err
	}
	if h.typ, err = headerString(m, "typ"); err != nil {
		return h, err
	}
	if h.cty, err = headerString(m, "cty"); err != nil {
		return h, err
	}
	if !m.has("alg") {
		return h, fmt.Errorf("%w: no alg header", ErrMalformed)
	}
	if m.has("crit") {
		// This verifier understands no extension, so any crit list, well
		// formed or not, names one it cannot process (RFC 7515 §4.1.11).
		h.crit = true
	}
	return h, nil
}

// headerString reads a header parameter that must be a string if present.
func headerString(m jsonObject, name string) (string, error) {
	v, ok := m.get(name)
	if !ok {
		return "", nil
	}
	s, ok := jsonString(v)
	if !ok {
		return "", fmt.Errorf("%w: header %q is not a string", ErrMalformed, name)
	}
	return s, nil
}

// verifySignature checks sig over the signing input with key k.
func verifySignature(a alg, k *verifyKey, signingInput, sig []byte) bool {
	if !k.algs.has(a) {
		return false
	}
	switch pub := k.pub.(type) {
	case ed25519.PublicKey:
		return (a == algEdDSA || a == algEd25519) && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, signingInput, sig)
	case *rsa.PublicKey:
		// A digest array of each branch's own: the PSS check lets it
		// escape, the PKCS #1 v1.5 one keeps it on the stack.
		switch a {
		case algRS256, algRS384, algRS512:
			var d [sha512.Size]byte
			return rsa.VerifyPKCS1v15(pub, a.hash(), a.digest(&d, signingInput), sig) == nil
		case algPS256, algPS384, algPS512:
			var d [sha512.Size]byte
			opts := rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
			return rsa.VerifyPSS(pub, a.hash(), a.digest(&d, signingInput), sig, &opts) == nil
		}
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		der, ok := ecdsaDER(sig[:size], sig[size:])
		if !ok {
			return false
		}
		var d [sha512.Size]byte
		return ecdsa.VerifyASN1(pub, a.digest(&d, signingInput), der)
	}
	return false
}

// digest returns the hash of msg that a signs, written into d (so that it
// needs no allocation); nil for EdDSA, which signs msg itself.
func (a alg) digest(d *[sha512.Size]byte, msg []byte) []byte {
	switch a.hash() {
	case crypto.SHA256:
		sum := sha256.Sum256(msg)
		return d[:copy(d[:], sum[:])]
	case crypto.SHA384:
		sum := sha512.Sum384(msg)
		return d[:copy(d[:], sum[:])]
	case crypto.SHA512:
		sum := sha512.Sum512(msg)
		return d[:copy(d[:], sum[:])]
	}
	return nil
}

// ecdsaDER encodes a JWS ECDSA signature's r and s, fixed-width big-endian
// integers (RFC 7518 §3.4), as the ASN.1 DER SEQUENCE of two INTEGERs that
// ecdsa.VerifyASN1 takes. It builds what ecdsa.Verify builds from r and s,
// without the allocations of math/big. ok is false when r or s is zero,
// which ecdsa.Verify rejects as well; crypto/ecdsa checks the rest
// (0 < r, s < N).
func ecdsaDER(r, s []byte) (der []byte, ok bool) {
	r, s = bytes.TrimLeft(r, "\x00"), bytes.TrimLeft(s, "\x00")
	if len(r) == 0 || len(s) == 0 {
		return nil, false
	}
	// An INTEGER is two's complement: a leading 1 bit takes a 0x00 byte.
	rLen, sLen := len(r)+int(r[0]>>7), len(s)+int(s[0]>>7)
	body := 2 + rLen + 2 + sLen
	if rLen > 0x7f || sLen > 0x7f || body > 0xff {
		return nil, false // not an ECDSA signature of a supported curve
	}
	der = make([]byte, 0, 3+body)
	der = append(der, 0x30) // SEQUENCE
	if body > 0x7f {
		der = append(der, 0x81) // long-form length, one byte (P-521)
	}
	der = append(der, byte(body))
	for _, n := range [2][]byte{r, s} {
		der = append(der, 0x02, byte(len(n)+int(n[0]>>7))) // INTEGER
		if n[0]&0x80 != 0 {
			der = append(der, 0)
		}
		der = append(der, n...)
	}
	return der, true
}
