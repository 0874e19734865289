package hydra_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/interop/internal/interoptest"
)

// ---- 1. client-credentials tokens through per-method rules --------------------

// TestClientCredentialsPolicy gets Hydra's client-credentials tokens for
// two audiences and two scopes, records what they look like, and runs them
// through every kind of rule.
func TestClientCredentialsPolicy(t *testing.T) {
	hy := startHydra(t, hydraOptions{})
	disc := hy.discovery(t)
	if disc.Issuer != hy.issuer || !strings.HasSuffix(disc.Issuer, "/") {
		t.Fatalf("discovery issuer = %q, want exactly %q (with its trailing slash)", disc.Issuer, hy.issuer)
	}
	t.Logf("discovery: issuer %s, jwks_uri %s, id_token_signing_alg_values_supported %v",
		disc.Issuer, disc.JWKSURI, disc.IDTokenAlgs)

	// Without the trailing slash, discovery must fail: the document's
	// issuer differs from the URL asked for.
	ctx := verifyCtx(t)
	if ks, err := grpcjwt.NewIssuerKeyset(ctx, strings.TrimSuffix(hy.issuer, "/")); err == nil {
		ks.Close()
		t.Errorf("NewIssuerKeyset(issuer without its trailing slash) succeeded; want the issuer mismatch error")
	} else {
		t.Logf("NewIssuerKeyset(issuer without the trailing slash): %v", err)
	}

	m2m := hy.m2mClient(t)
	h := newHarness(t, hy, config{})

	api, other := []string{apiAudience}, []string{otherAudience}
	tokRW := hy.token(t, m2m, api, bothScopes)
	tokR := hy.token(t, m2m, api, scopeRead)
	tokW := hy.token(t, m2m, api, scopeWrite)
	tokNone := hy.token(t, m2m, api, "") // scp: []
	tokOther := hy.token(t, m2m, other, bothScopes)
	tokOtherR := hy.token(t, m2m, other, scopeRead)
	tokBothAud := hy.token(t, m2m, []string{apiAudience, otherAudience}, scopeRead)
	tokNoAud := hy.token(t, m2m, nil, bothScopes) // aud: []

	t.Run("token shape", func(t *testing.T) {
		hdr := interoptest.HeaderOf(t, tokRW)
		pl := payloadOf(t, tokRW)
		t.Logf("access token header: %+v", hdr)
		t.Logf("access token claims: %v", claimNames(pl))
		b, _ := json.Marshal(pl)
		t.Logf("access token claims set: %s", b)

		atKeys := hy.keySet(t, accessTokenSet)
		idKeys := hy.keySet(t, idTokenSet)
		if len(atKeys) != 1 || len(idKeys) != 1 {
			t.Fatalf("key sets at start: %s %d keys, %s %d keys; want one each", accessTokenSet, len(atKeys), idTokenSet, len(idKeys))
		}
		n, _ := base64.RawURLEncoding.DecodeString(atKeys[0].N)
		bits := len(n) * 8
		t.Logf("%s: kid %s %s %s (%d-bit modulus); %s: kid %s %s", accessTokenSet, atKeys[0].Kid, atKeys[0].Kty, atKeys[0].Alg,
			bits, idTokenSet, idKeys[0].Kid, idKeys[0].Alg)

		// What the README row claims: typ JWT (not at+jwt), RS256 with the
		// access-token key, aud and scp arrays, nbf, client_id = sub.
		if hdr.Typ != "JWT" || hdr.Alg != "RS256" || hdr.Kid != atKeys[0].Kid {
			t.Errorf("header %+v, want typ JWT, alg RS256, kid %s (the %s key)", hdr, atKeys[0].Kid, accessTokenSet)
		}
		published := map[string]jwk{}
		for _, k := range hy.jwks(t) {
			published[k.Kid] = k
		}
		if k, ok := published[hdr.Kid]; !ok || k.Alg != "RS256" || k.Use != "sig" {
			t.Errorf("JWK Set entry for kid %s: %+v (found %v), want alg RS256 use sig", hdr.Kid, k, ok)
		}
		if _, ok := published[idKeys[0].Kid]; !ok || len(published) != 2 {
			t.Errorf("JWK Set kids %v, want the access-token key and the ID-token key", claimNames(anyMap(published)))
		}
		if aud, ok := stringArray(pl["aud"]); !ok || !slices.Equal(aud, api) {
			t.Errorf("aud = %#v, want the array [%s]", pl["aud"], apiAudience)
		}
		if scp, ok := stringArray(pl["scp"]); !ok || !slices.Equal(scp, []string{scopeRead, scopeWrite}) {
			t.Errorf("scp = %#v, want the array [%s %s]", pl["scp"], scopeRead, scopeWrite)
		}
		if _, ok := pl["scope"]; ok {
			t.Errorf("the token has a scope claim %#v; Hydra's default (strategies.jwt.scope_claim: list) writes only scp", pl["scope"])
		}
		if pl["iss"] != hy.issuer || pl["client_id"] != m2m.ID || pl["sub"] != m2m.ID {
			t.Errorf("iss %v client_id %v sub %v, want %s and the client ID %s twice", pl["iss"], pl["client_id"], pl["sub"], hy.issuer, m2m.ID)
		}
		iat, nbf, exp := numberClaim(t, pl, "iat"), numberClaim(t, pl, "nbf"), numberClaim(t, pl, "exp")
		if nbf != iat || exp-iat != 3600 {
			t.Errorf("iat %d nbf %d exp %d: want nbf = iat and a lifetime of 3600 s (Hydra's default ttl.access_token)", iat, nbf, exp)
		}
		if s, _ := pl["jti"].(string); s == "" {
			t.Errorf("jti = %#v, want a string", pl["jti"])
		}
		if aud, ok := stringArray(payloadOf(t, tokNoAud)["aud"]); !ok || len(aud) != 0 {
			t.Errorf("without an audience parameter: aud = %#v, want an empty array", payloadOf(t, tokNoAud)["aud"])
		}
		if scp, ok := stringArray(payloadOf(t, tokNone)["scp"]); !ok || len(scp) != 0 {
			t.Errorf("without a scope parameter: scp = %#v, want an empty array", payloadOf(t, tokNone)["scp"])
		}
	})

	t.Run("Verify", func(t *testing.T) {
		ctx := verifyCtx(t)
		c, err := h.v.Verify(ctx, tokRW)
		if err != nil {
			t.Fatalf("Verify(Hydra token): %v", err)
		}
		t.Logf("claims: issuer %s subject %s client %s audience %v scopes %v nbf %v exp-iat %v",
			c.Issuer, c.Subject, c.ClientID, c.Audience, c.Scopes, !c.NotBefore.IsZero(), c.Expiry.Sub(c.IssuedAt))
		if c.Issuer != hy.issuer || !slices.Equal(c.Audience, api) || c.Subject != m2m.ID || c.ClientID != m2m.ID ||
			!slices.Equal(c.Scopes, []string{scopeRead, scopeWrite}) || c.ID == "" || c.NotBefore.IsZero() ||
			c.Expiry.Sub(c.IssuedAt) != time.Hour {
			t.Errorf("claims = %+v", c)
		}
		if c, err := h.v.Verify(ctx, tokBothAud); err != nil || !slices.Equal(c.Audience, []string{apiAudience, otherAudience}) {
			t.Errorf("Verify(token for both audiences): %+v, %v", c, err)
		}
		_, err = h.v.Verify(ctx, tokNoAud)
		if !errors.Is(err, grpcjwt.ErrAudience) {
			t.Errorf("Verify(token with aud []): %v, want ErrAudience", err)
		}
		t.Logf("Verify(token with aud []): %v", err)

		// Without WithScopeClaims("scp") the scopes are lost: Hydra writes
		// no scope claim.
		plain, err := grpcjwt.NewVerifier(h.ks, grpcjwt.WithAudience(apiAudience))
		if err != nil {
			t.Fatal(err)
		}
		if c, err := plain.Verify(ctx, tokRW); err != nil {
			t.Errorf("Verify without WithScopeClaims(\"scp\"): %v", err)
		} else if len(c.Scopes) != 0 {
			t.Errorf("Verify without WithScopeClaims(\"scp\"): scopes %v, want none", c.Scopes)
		}
		// WithStrictType() refuses every Hydra access token: typ is JWT.
		strict, err := grpcjwt.NewVerifier(h.ks, grpcjwt.WithAudience(apiAudience), grpcjwt.WithStrictType())
		if err != nil {
			t.Fatal(err)
		}
		_, err = strict.Verify(ctx, tokRW)
		if !errors.Is(err, grpcjwt.ErrTokenType) {
			t.Errorf("Verify with WithStrictType(): %v, want ErrTokenType (Hydra's typ is JWT)", err)
		}
		t.Logf("Verify with WithStrictType(): %v", err)
	})

	h.CheckRules(t, interoptest.RuleTokens{
		Subject: m2m.ID, RW: tokRW, R: tokR, W: tokW, NoScope: tokNone, NoScopeShape: "scp []",
		Other: tokOther, OtherR: tokOtherR, NoAudience: tokNoAud, BothAudiences: tokBothAud,
	})

	t.Run("ImportOrders takes any valid token", func(t *testing.T) {
		for name, tok := range map[string]string{"api scp []": tokNone, "other rw": tokOther} {
			if n, err := h.ImportOrders(tok); err != nil || n != 2 {
				t.Errorf("ImportOrders with %s: %d, %v", name, n, err)
			}
		}
		_, err := h.ImportOrders(tokNoAud)
		interoptest.WantStatus(t, "ImportOrders with aud []", err, codes.Unauthenticated, "token audience not accepted")
	})
}

// anyMap turns a map's keys into a map[string]any for claimNames.
func anyMap[V any](m map[string]V) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---- 2. key rotation to a new algorithm under load -----------------------------

// oracle checks a Hydra token's signature independently of grpcjwt (with
// go-jose) against the public key its kid names in Hydra's JWK Set: a
// token that fails is one Hydra minted inconsistently, not a valid token.
type oracle struct {
	hy   *hydra
	mu   sync.Mutex
	keys map[string]jose.JSONWebKey
}

func (o *oracle) consistent(ctx context.Context, tok, kid string) (bool, error) {
	o.mu.Lock()
	key, ok := o.keys[kid]
	if !ok {
		var set jose.JSONWebKeySet
		if err := o.hy.do(ctx, http.MethodGet, o.hy.public+"/.well-known/jwks.json", nil, &set, http.StatusOK); err != nil {
			o.mu.Unlock()
			return false, err
		}
		for _, k := range set.Keys {
			o.keys[k.KeyID] = k
		}
		key, ok = o.keys[kid]
	}
	o.mu.Unlock()
	if !ok {
		return false, fmt.Errorf("kid %s is not in Hydra's JWK Set", kid)
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return false, err
	}
	_, err = jws.Verify(key.Key)
	return err == nil, nil
}

// load is workers that each, until stopped, get a fresh token from Hydra
// and make callsPerToken calls with it, recording every call by the
// token's kid. A token that the oracle finds inconsistent (its kid names
// another key than the one that signed it) must be refused; every other
// must pass.
type load struct {
	h  *harness
	hy *hydra
	c  client
	or *oracle

	stop chan struct{}
	wg   sync.WaitGroup

	// order is the access-token kids in the order they are added; phase
	// is the index of the newest one whose POST has returned: a token
	// whose request began after that must not name an older key.
	order []string
	phase atomic.Int32

	mu           sync.Mutex
	kids         map[string]*kidStats
	mints        int
	errs         []error
	mint500      []error // the token endpoint's server errors during a key POST
	wrongSigner  []string
	inconsistent []string // "kid (alg): result"
}

type kidStats struct {
	alg           string
	calls, failed int
	first         time.Time // when the earliest call with this kid began
	firstErr      error
	firstLatency  time.Duration
	firstEnd      time.Time
	starts        []time.Time
	concurrent    int // calls that began before the first one ended
}

const (
	loadWorkers   = 12
	callsPerToken = 4
)

func startLoad(t *testing.T, h *harness, hy *hydra, c client, order []string) *load {
	l := &load{h: h, hy: hy, c: c, or: &oracle{hy: hy, keys: map[string]jose.JSONWebKey{}},
		stop: make(chan struct{}), order: order, kids: map[string]*kidStats{}}
	for w := range loadWorkers {
		l.wg.Go(func() { l.worker(w) })
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) fail(err error) {
	if l.stopped() {
		return
	}
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *load) worker(w int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for !l.stopped() {
		phase := int(l.phase.Load())
		tok, err := l.hy.tokenE(ctx, l.c, []string{apiAudience}, bothScopes)
		var te *tokenError
		if errors.As(err, &te) && te.status == http.StatusInternalServerError && strings.Contains(te.body, "signing keys") {
			// Hydra's own failure while a key is being added (its
			// in-memory SQLite database is busy): no token, nothing
			// for the verifier to judge.
			l.mu.Lock()
			l.mint500 = append(l.mint500, err)
			l.mu.Unlock()
			continue
		}
		if err != nil {
			l.fail(err)
			continue
		}
		hdr, err := interoptest.ParseHeader(tok)
		if err != nil {
			l.fail(err)
			continue
		}
		ok, err := l.or.consistent(ctx, tok, hdr.Kid)
		if err != nil {
			l.fail(err)
			continue
		}
		l.mu.Lock()
		l.mints++
		if i := slices.Index(l.order, hdr.Kid); i < phase {
			l.wrongSigner = append(l.wrongSigner, fmt.Sprintf("requested after %s was added: kid %s", l.order[phase], hdr.Kid))
		}
		l.mu.Unlock()
		if !ok {
			// Hydra's inconsistent token: it must be refused, every time.
			for j := range callsPerToken {
				err := l.h.ValidCallE(tok, w+j)
				l.mu.Lock()
				l.inconsistent = append(l.inconsistent, fmt.Sprintf("kid %s alg %s: %s", hdr.Kid, hdr.Alg, errOK(err)))
				l.mu.Unlock()
				if err == nil {
					l.h.T.Errorf("a token whose kid %s names another key than the one that signed it (alg %s) was accepted", hdr.Kid, hdr.Alg)
				} else if c := status.Code(err); c != codes.Unauthenticated {
					l.h.T.Errorf("a token whose kid names another key: %v, want Unauthenticated", err)
				}
			}
			continue
		}
		for j := range callsPerToken {
			began := time.Now()
			err := l.h.ValidCallE(tok, w+j)
			l.record(hdr, began, time.Now(), err)
		}
	}
}

func (l *load) record(hdr interoptest.JWSHeader, began, end time.Time, err error) {
	l.h.Tally(fmt.Sprintf("kid %s (%s)", hdr.Kid, hdr.Alg), err)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.kids[hdr.Kid]
	if s == nil {
		s = &kidStats{alg: hdr.Alg}
		l.kids[hdr.Kid] = s
	}
	if s.alg != hdr.Alg {
		l.h.T.Errorf("kid %s: consistent tokens with algs %s and %s", hdr.Kid, s.alg, hdr.Alg)
	}
	s.calls++
	if err != nil {
		s.failed++
	}
	s.starts = append(s.starts, began)
	if s.first.IsZero() || began.Before(s.first) {
		s.first, s.firstErr, s.firstLatency, s.firstEnd = began, err, end.Sub(began), end
	}
}

// callsWith is how many calls with consistent tokens of kid have completed.
func (l *load) callsWith(kid string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.kids[kid]; s != nil {
		return s.calls
	}
	return 0
}

func (l *load) stats(kid string) kidStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.kids[kid]
	if s == nil {
		return kidStats{}
	}
	out := *s
	for _, b := range s.starts {
		if b.Before(s.firstEnd) {
			out.concurrent++
		}
	}
	return out
}

// TestKeyRotationUnderLoad rotates Hydra's access-token key set from its
// RS256 key to an ES256 key, then to a new RSA key, while 12 workers call
// with fresh tokens. Discovery keeps advertising only RS256 (for ID
// tokens); before commit 391666e the verifier narrowed its algorithms to
// that list and refused every ES256 token after such a rotation.
//
// Hydra signs with the newest key of the set (POST /admin/keys/{set} adds
// one; the older ones stay published). Its token endpoint looks the key up
// twice, once for the header's kid and once to sign, so a token requested
// while a key is being added can name the old kid and carry the new key's
// signature (and algorithm). Such a token verifies under no published key
// as its kid says; the test checks each token independently (go-jose) and
// requires those to be refused and every other to pass.
func TestKeyRotationUnderLoad(t *testing.T) {
	hy := startHydra(t, hydraOptions{})
	m2m := hy.m2mClient(t)
	h := newHarness(t, hy, config{})
	if d := hy.discovery(t); !slices.Equal(d.IDTokenAlgs, []string{"RS256"}) {
		t.Fatalf("id_token_signing_alg_values_supported = %v, want [RS256]", d.IDTokenAlgs)
	}

	tok0 := hy.token(t, m2m, []string{apiAudience}, bothScopes)
	kid0 := interoptest.HeaderOf(t, tok0).Kid
	h.Setup(tok0)

	type rotation struct{ alg, kid string }
	rotations := []rotation{{"ES256", "grpcjwt-rotation-es256"}, {"RS256", "grpcjwt-rotation-rs256"}}
	l := startLoad(t, h, hy, m2m, []string{kid0, rotations[0].kid, rotations[1].kid})
	began := time.Now()
	const perPhase = 240 // calls with each key before the next step
	waitFor(t, "calls with the initial RS256 key", func() bool { return l.callsWith(kid0) >= perPhase })

	for i, r := range rotations {
		before := h.fetches.snapshot()
		rotated := time.Now()
		k := hy.addKey(t, accessTokenSet, r.alg, r.kid)
		postTook := time.Since(rotated)
		l.phase.Store(int32(i + 1)) // from now on Hydra must sign with the new key
		waitFor(t, "calls with the "+r.alg+" key "+r.kid, func() bool { return l.callsWith(r.kid) >= perPhase })
		d := h.fetches.snapshot().minus(before)
		s := l.stats(r.kid)
		t.Logf("rotation to %s (kid %s, %s): POST took %v; the first call with it began %v after the POST began, took %v, %s; "+
			"%d calls with it began before that one ended; %d JWKS requests, %d keyset fetches (%d failed) for this rotation",
			r.alg, r.kid, strings.TrimSpace(k.Kty+" "+k.Crv), postTook.Round(time.Millisecond),
			s.first.Sub(rotated).Round(time.Millisecond), s.firstLatency.Round(time.Microsecond),
			errOK(s.firstErr), s.concurrent, d.jwks, d.ok, d.failed)
		if s.firstErr != nil {
			t.Errorf("the first call with the new %s key failed: %v", r.alg, s.firstErr)
		}
		if s.alg != r.alg {
			t.Errorf("tokens with kid %s carry alg %s, want %s", r.kid, s.alg, r.alg)
		}
		if d.jwks != 1 || d.ok != 1 || d.failed != 0 {
			t.Errorf("rotation to %s: %d JWKS requests, %d fetches (%d failed); want exactly one of each, none failed", r.alg, d.jwks, d.ok, d.failed)
		}
	}
	l.halt()
	elapsed := time.Since(began)

	l.mu.Lock()
	total := 0
	for _, kid := range l.order {
		s := l.kids[kid]
		if s == nil {
			t.Errorf("no valid call was made with kid %s", kid)
			continue
		}
		total += s.calls
		t.Logf("kid %-38s %s: %5d calls, %d failed", kid, s.alg, s.calls, s.failed)
	}
	if len(l.kids) != len(l.order) {
		t.Errorf("valid calls were made with %d kids, want %d", len(l.kids), len(l.order))
	}
	t.Logf("%d workers, %d tokens minted, %d calls with valid tokens in %v (%.0f calls/s); errors: %d",
		loadWorkers, l.mints, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), len(l.errs))
	// Each inconsistent token was presented callsPerToken times.
	t.Logf("Hydra minted %d tokens whose kid names another key than the one that signed them; every call with them was refused:",
		len(l.inconsistent)/callsPerToken)
	byKind := map[string]int{}
	for _, s := range l.inconsistent {
		byKind[s]++
	}
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		t.Logf("  %3d calls: %s", byKind[k], k)
	}
	for _, e := range l.errs {
		t.Errorf("during the load: %v", e)
	}
	t.Logf("token requests that Hydra answered with HTTP 500 (signing keys) during the rotations: %d", len(l.mint500))
	for _, e := range l.mint500 {
		t.Logf("  %.200s", e)
	}
	if len(l.mint500) > l.mints/10 {
		t.Errorf("Hydra failed %d token requests with HTTP 500 against %d tokens minted: more than a rotation's hiccup", len(l.mint500), l.mints)
	}
	for _, w := range l.wrongSigner {
		t.Errorf("Hydra did not sign with the newest key: %s", w)
	}
	l.mu.Unlock()

	// Hydra keeps the older keys published: the admin API lists the set
	// newest first.
	set := hy.keySet(t, accessTokenSet)
	var got []string
	for _, k := range set {
		got = append(got, k.Kid+"/"+k.Alg)
	}
	want := []string{rotations[1].kid + "/RS256", rotations[0].kid + "/ES256", kid0 + "/RS256"}
	if !slices.Equal(got, want) {
		t.Errorf("%s after the rotations: %v, want %v (newest first)", accessTokenSet, got, want)
	}
	if d := hy.discovery(t); !slices.Equal(d.IDTokenAlgs, []string{"RS256"}) {
		t.Errorf("after the rotations id_token_signing_alg_values_supported = %v, want still [RS256]", d.IDTokenAlgs)
	} else {
		t.Logf("after the rotations: %s = %v; discovery still advertises %v for ID tokens", accessTokenSet, got, d.IDTokenAlgs)
	}
	// Every key is still published, so the first token still verifies.
	h.ValidCall("the first token after both rotations", tok0, 0)
	h.AssertNoValidFailures()
}

func errOK(err error) string {
	if err == nil {
		return "OK"
	}
	return err.Error()
}

// ---- 3. Hydra stopped, then restarted with new keys ------------------------------

// TestHydraRestart stops Hydra mid-run: tokens of keys the keyset holds keep
// verifying, cached or not, and a token naming an unknown kid fails fast
// (with one JWK Set fetch per unknown-kid interval at most). Hydra then
// restarts on the same ports with a new in-memory database, so new keys:
// its new tokens verify within the unknown-kid interval, and the old ones
// stop verifying once the keyset has seen that their key is gone.
func TestHydraRestart(t *testing.T) {
	hy := startHydra(t, hydraOptions{})
	m2m := hy.m2mClient(t)
	h := newHarness(t, hy, config{})
	uncached, err := grpcjwt.NewVerifier(h.ks, grpcjwt.WithAudience(apiAudience), grpcjwt.WithScopeClaims("scp"),
		grpcjwt.WithTokenCache(0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := verifyCtx(t)

	tokCached := hy.token(t, m2m, []string{apiAudience}, bothScopes)
	tokHeld := hy.token(t, m2m, []string{apiAudience}, bothScopes) // not presented before the outage
	kidA := interoptest.HeaderOf(t, tokCached).Kid
	h.Setup(tokCached)
	h.Burst("before the outage", 10, tokCached)
	forged := withKid(t, tokCached, "grpcjwt-unknown-kid")

	hy.stop()
	down := time.Now()
	before := h.fetches.snapshot()

	// An unknown kid while Hydra is down: refused at once, and at most one
	// fetch per unknown-kid interval, however often it comes.
	var forgedCalls atomic.Int64
	forgedDone := make(chan struct{})
	stopForged := make(chan struct{})
	var stopOnce sync.Once
	endForged := func() {
		stopOnce.Do(func() { close(stopForged) })
		<-forgedDone
	}
	t.Cleanup(endForged) // also when the test fails half-way
	go func() {
		defer close(forgedDone)
		for {
			select {
			case <-stopForged:
				return
			default:
			}
			_, err := h.GetOrder(forged, h.OrderID)
			forgedCalls.Add(1)
			interoptest.WantStatus(t, "GetOrder with an unknown kid", err, codes.Unauthenticated, "token signed by an unknown key")
			time.Sleep(10 * time.Millisecond)
		}
	}()
	// Down for at least four unknown-kid intervals: wait for four failed
	// fetches.
	waitFor(t, "four failed JWKS fetches while Hydra is down", func() bool { return h.fetches.fetchFailed.Load() >= 4 })
	_, ferr := h.v.Verify(ctx, forged)
	t.Logf("Verify(unknown kid) while Hydra is down: %v", ferr)
	if !errors.Is(ferr, grpcjwt.ErrUnknownKey) {
		t.Errorf("Verify(unknown kid) while Hydra is down: %v, want ErrUnknownKey", ferr)
	}

	// Held keys keep working, through the cache and without it.
	h.Burst("Hydra down: cached token", 20, tokCached)
	h.Burst("Hydra down: held key, first use", 20, tokHeld)
	for i := range 20 {
		for name, tok := range map[string]string{"cached": tokCached, "held": tokHeld} {
			if _, err := uncached.Verify(ctx, tok); err != nil {
				t.Errorf("Hydra down: uncached Verify(%s token) #%d: %v", name, i, err)
			}
		}
	}
	downFor := time.Since(down)
	d := h.fetches.snapshot().minus(before)
	limit := int64(downFor/unknownKeyInterval) + 2
	t.Logf("Hydra down for %v: %d calls with an unknown kid, %d JWKS requests (%d fetches failed); bound %d",
		downFor.Round(time.Millisecond), forgedCalls.Load(), d.jwks, d.failed, limit)
	if d.jwks > limit || d.ok != 0 {
		t.Errorf("Hydra down for %v: %d JWKS requests (%d succeeded), want at most %d (one per %v)", downFor, d.jwks, d.ok, limit, unknownKeyInterval)
	}

	// Restart: same ports and issuer, a new database, so new keys and no
	// clients. Unknown-kid calls keep coming.
	restarted := time.Now()
	hy.start()
	// start had the new Hydra generate its keys (a JWK Set request that
	// finds a set missing generates a key for it, and so does every such
	// request running at the same time, the keyset's included). Measure
	// from a Hydra that has its keys, as one that has been running does:
	// wait for the keyset's requests begun meanwhile to end.
	settle := time.Now()
	waitFor(t, "the keyset's JWK Set requests to the new Hydra to end", func() bool { return h.fetches.jwksInFlight.Load() == 0 })
	t.Logf("the restarted Hydra publishes %d keys; the keyset's requests settled %v after start returned",
		len(hy.jwks(t)), time.Since(settle).Round(time.Millisecond))
	m2m = hy.m2mClient(t)
	tokNew := hy.token(t, m2m, []string{apiAudience}, bothScopes)
	minted := time.Now()
	kidB := interoptest.HeaderOf(t, tokNew).Kid
	if kidB == kidA {
		t.Fatalf("the restarted Hydra signs with the old kid %s", kidA)
	}
	refused := 0
	for {
		_, err := h.GetOrder(tokNew, h.OrderID)
		if err == nil {
			break
		}
		refused++
		interoptest.WantStatus(t, "GetOrder with the restarted Hydra's token before the keyset refreshed", err, codes.Unauthenticated, "token signed by an unknown key")
		if time.Since(minted) > pollDeadline {
			t.Fatalf("the restarted Hydra's token still refused after %v", pollDeadline)
		}
		time.Sleep(pollStep)
	}
	took := time.Since(minted)
	endForged()
	// The keyset's fetches since the restart began: the failed ones (Hydra
	// not listening yet) and the first that succeeded.
	failed := 0
	for _, r := range h.fetches.since(restarted) {
		if r.ev.Err != nil {
			failed++
			continue
		}
		t.Logf("keyset fetches since the restart: %d failed, then the first success at %v (%v before the token was minted)",
			failed, r, minted.Sub(r.at).Round(time.Millisecond))
		break
	}
	t.Logf("after the restart: new kid %s verified %v after its token was minted (%d refusals before); unknown-kid interval %v",
		kidB, took.Round(time.Millisecond), refused, unknownKeyInterval)
	if took > unknownKeyInterval+750*time.Millisecond {
		t.Errorf("the restarted Hydra's token took %v to verify, want within the unknown-kid interval %v (+750ms slack)", took, unknownKeyInterval)
	}
	h.Burst("the restarted Hydra's token", 10, tokNew)

	// The keyset now holds the new JWK Set: the old tokens fail, cached or
	// not.
	for name, tok := range map[string]string{"cached": tokCached, "held": tokHeld} {
		_, err := h.GetOrder(tok, h.OrderID)
		interoptest.WantStatus(t, "GetOrder with a "+name+" token of the old Hydra", err, codes.Unauthenticated, "token signed by an unknown key")
		if _, err := uncached.Verify(ctx, tok); !errors.Is(err, grpcjwt.ErrUnknownKey) {
			t.Errorf("uncached Verify(%s token of the old Hydra): %v, want ErrUnknownKey", name, err)
		}
	}
	h.AssertNoValidFailures()
}

// withKid re-encodes tok's header with another kid (the signature no
// longer matches, but the kid is looked up first).
func withKid(t *testing.T, tok, kid string) string {
	t.Helper()
	seg, rest, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	hdr["kid"] = kid
	b, err = json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b) + "." + rest
}

// ---- 4. an ID token is not an access token -------------------------------------

// loginApp is a headless login and consent app: it accepts every login
// request (as subject) and grants every requested scope and audience,
// through Hydra's admin API; the redirect URI records the code.
type loginApp struct {
	t       *testing.T
	hy      atomic.Pointer[hydra] // set once Hydra runs (its config names this app)
	srv     *httptest.Server
	subject string
	codes   chan url.Values
}

func newLoginApp(t *testing.T, subject string) *loginApp {
	a := &loginApp{t: t, subject: subject, codes: make(chan url.Values, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /consent", a.consent)
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.codes <- r.URL.Query():
		default:
		}
		fmt.Fprintln(w, "ok")
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *loginApp) fail(w http.ResponseWriter, err error) {
	a.t.Errorf("login app: %v", err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (a *loginApp) login(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("login_challenge")
	var red struct {
		RedirectTo string `json:"redirect_to"`
	}
	hy := a.hy.Load()
	err := hy.do(r.Context(), http.MethodPut, hy.admin+"/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(ch),
		map[string]any{"subject": a.subject, "remember": false}, &red, http.StatusOK)
	if err != nil {
		a.fail(w, err)
		return
	}
	http.Redirect(w, r, red.RedirectTo, http.StatusFound)
}

func (a *loginApp) consent(w http.ResponseWriter, r *http.Request) {
	hy := a.hy.Load()
	ch := url.QueryEscape(r.URL.Query().Get("consent_challenge"))
	var req struct {
		Scopes    []string `json:"requested_scope"`
		Audiences []string `json:"requested_access_token_audience"`
	}
	if err := hy.do(r.Context(), http.MethodGet, hy.admin+"/admin/oauth2/auth/requests/consent?consent_challenge="+ch,
		nil, &req, http.StatusOK); err != nil {
		a.fail(w, err)
		return
	}
	var red struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := hy.do(r.Context(), http.MethodPut, hy.admin+"/admin/oauth2/auth/requests/consent/accept?consent_challenge="+ch,
		map[string]any{"grant_scope": req.Scopes, "grant_access_token_audience": req.Audiences, "remember": false},
		&red, http.StatusOK); err != nil {
		a.fail(w, err)
		return
	}
	http.Redirect(w, r, red.RedirectTo, http.StatusFound)
}

// TestIDTokenRefused mints an ID token with the authorization-code flow
// (done headlessly) and presents it as an access token to a verifier whose
// audiences include the client ID, the ID token's audience: it must be
// refused because it is an ID token.
func TestIDTokenRefused(t *testing.T) {
	app := newLoginApp(t, "alice@example.test")
	hy := startHydra(t, hydraOptions{loginURL: app.srv.URL + "/login", consentURL: app.srv.URL + "/consent"})
	app.hy.Store(hy)
	redirect := app.srv.URL + "/callback"
	web := hy.createClient(t, map[string]any{
		"client_name":                "grpcjwt-web",
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"redirect_uris":              []string{redirect},
		"scope":                      "openid " + bothScopes,
		"audience":                   []string{apiAudience},
		"token_endpoint_auth_method": "client_secret_basic",
	})

	// The browser: a cookie jar, following every redirect (Hydra, the
	// login app, Hydra, the consent app, Hydra, the callback).
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hops := 0
	browser := &http.Client{Jar: jar, Timeout: callTimeout, CheckRedirect: func(_ *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("more than 10 redirects")
		}
		hops++
		return nil
	}}
	t.Cleanup(browser.CloseIdleConnections)
	q := url.Values{
		"client_id": {web.ID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {"openid " + scopeRead}, "audience": {apiAudience},
		"state": {"grpcjwt-state-0123456789"}, "nonce": {"grpcjwt-nonce-0123456789"},
	}
	resp, err := browser.Get(hy.public + "/oauth2/auth?" + q.Encode())
	if err != nil {
		t.Fatalf("authorization request: %v", err)
	}
	resp.Body.Close()
	var cb url.Values
	select {
	case cb = <-app.codes:
	default:
		t.Fatalf("authorization request ended at %s (HTTP %d) after %d redirects, not at the callback", resp.Request.URL, resp.StatusCode, hops)
	}
	if cb.Get("code") == "" || cb.Get("state") != q.Get("state") {
		t.Fatalf("callback query %v: want a code and state %q", cb, q.Get("state"))
	}
	tr, err := hy.tokenRequest(verifyCtx(t), web, url.Values{
		"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {redirect},
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.IDToken == "" {
		t.Fatalf("token response without id_token: %+v", tr)
	}
	t.Logf("authorization code flow: %d redirects; token response scope %q", hops, tr.Scope)

	idHdr, idClaims := interoptest.HeaderOf(t, tr.IDToken), payloadOf(t, tr.IDToken)
	b, _ := json.Marshal(idClaims)
	t.Logf("ID token header %+v; claims %v", idHdr, claimNames(idClaims))
	t.Logf("ID token claims set: %s", b)
	atHdr, atClaims := interoptest.HeaderOf(t, tr.AccessToken), payloadOf(t, tr.AccessToken)
	t.Logf("its access token: header %+v; claims %v", atHdr, claimNames(atClaims))
	_, hasAtHash := idClaims["at_hash"]
	_, hasCHash := idClaims["c_hash"]
	t.Logf("ID token: at_hash %v, c_hash %v, typ %q, aud %v, sub %v", hasAtHash, hasCHash, idHdr.Typ, idClaims["aud"], idClaims["sub"])
	if idKeys := hy.keySet(t, idTokenSet); idHdr.Kid != idKeys[0].Kid {
		t.Errorf("ID token kid %s, want the %s key %s", idHdr.Kid, idTokenSet, idKeys[0].Kid)
	}
	if aud, ok := stringArray(idClaims["aud"]); !ok || !slices.Contains(aud, web.ID) {
		t.Errorf("ID token aud %#v, want an array holding the client ID %s", idClaims["aud"], web.ID)
	}

	// A verifier that would take the ID token on every other count: its
	// issuer, its key (the JWK Set publishes the ID-token key), its
	// audience.
	h := newHarness(t, hy, config{audiences: []string{apiAudience, web.ID}})
	ctx := verifyCtx(t)
	_, err = h.v.Verify(ctx, tr.IDToken)
	t.Logf("Verify(ID token): %v", err)
	if !errors.Is(err, grpcjwt.ErrTokenType) {
		t.Errorf("Verify(Hydra ID token) = %v, want ErrTokenType", err)
	}
	_, err = h.ImportOrders(tr.IDToken)
	interoptest.WantStatus(t, "ImportOrders (any valid token) with the ID token", err, codes.Unauthenticated, "token type not accepted")
	_, err = h.Watch(tr.IDToken)
	interoptest.WantStatus(t, "WatchOrders with the ID token", err, codes.Unauthenticated, "token type not accepted")
	if _, err := h.ServerInfo(tr.IDToken); err != nil {
		t.Errorf("ServerInfo (public) with the ID token: %v, want OK (the token is ignored)", err)
	}

	// The access token of the same flow passes: the refusal is the ID
	// token's, not the flow's.
	c, err := h.v.Verify(ctx, tr.AccessToken)
	if err != nil {
		t.Fatalf("Verify(the flow's access token): %v", err)
	}
	t.Logf("the flow's access token: sub %s client %s aud %v scopes %v", c.Subject, c.ClientID, c.Audience, c.Scopes)
	if c.Subject != app.subject || c.ClientID != web.ID || !slices.Equal(c.Audience, []string{apiAudience}) ||
		!c.HasScope(scopeRead) || !c.HasScope("openid") {
		t.Errorf("the flow's access token claims: %+v", c)
	}
	if n, err := h.ImportOrders(tr.AccessToken); err != nil || n != 2 {
		t.Errorf("ImportOrders with the flow's access token: %d, %v", n, err)
	}
	if _, err := h.Watch(tr.AccessToken); err != nil {
		t.Errorf("WatchOrders with the flow's access token: %v", err)
	}
}

// ---- 5. expired and wrong-audience tokens ----------------------------------------

// TestExpiredAndWrongAudience uses a client whose client-credentials tokens
// live 2 s, a verifier with no leeway, and a verifier for the api audience
// only.
func TestExpiredAndWrongAudience(t *testing.T) {
	hy := startHydra(t, hydraOptions{})
	m2m := hy.m2mClient(t)
	short := hy.m2mClient(t)
	hy.mustDo(t, http.MethodPut, hy.admin+"/admin/clients/"+short.ID+"/lifespans",
		map[string]string{"client_credentials_grant_access_token_lifespan": "2s"}, nil, http.StatusOK)
	h := newHarness(t, hy, config{audiences: []string{apiAudience}, verifier: []grpcjwt.VerifierOption{grpcjwt.WithLeeway(0)}})
	lenient, err := grpcjwt.NewVerifier(h.ks, grpcjwt.WithAudience(apiAudience), grpcjwt.WithScopeClaims("scp")) // 30 s leeway
	if err != nil {
		t.Fatal(err)
	}
	ctx := verifyCtx(t)
	h.Setup(hy.token(t, m2m, []string{apiAudience}, bothScopes))

	t.Run("expired", func(t *testing.T) {
		tok := hy.token(t, short, []string{apiAudience}, bothScopes)
		pl := payloadOf(t, tok)
		iat, exp := numberClaim(t, pl, "iat"), numberClaim(t, pl, "exp")
		if exp-iat != 2 {
			t.Fatalf("exp - iat = %d s, want the client's 2 s lifespan", exp-iat)
		}
		expiry := time.Unix(exp, 0)
		// Valid now, through the interceptor (which caches it) and Verify.
		if o, err := h.GetOrder(tok, h.OrderID); err != nil || o.GetId() != h.OrderID {
			t.Fatalf("GetOrder before expiry: %v, %v", o, err)
		}
		if _, err := h.v.Verify(ctx, tok); err != nil {
			t.Fatalf("Verify before expiry: %v", err)
		}
		var verr error
		waitFor(t, "the 2 s token to expire", func() bool {
			_, verr = h.v.Verify(ctx, tok)
			return verr != nil
		})
		refusedAt := time.Now()
		t.Logf("refused %v after exp (leeway 0): %v", refusedAt.Sub(expiry).Round(time.Millisecond), verr)
		if !errors.Is(verr, grpcjwt.ErrExpired) {
			t.Errorf("Verify after expiry: %v, want ErrExpired", verr)
		}
		if refusedAt.Before(expiry) {
			t.Errorf("refused at %v, before exp %v", refusedAt, expiry)
		}
		_, err := h.GetOrder(tok, h.OrderID)
		interoptest.WantStatus(t, "GetOrder with the expired token", err, codes.Unauthenticated, "expired token")
		_, err = h.Watch(tok)
		interoptest.WantStatus(t, "WatchOrders with the expired token", err, codes.Unauthenticated, "expired token")
		// With the default 30 s leeway the same token still passes.
		if _, err := lenient.Verify(ctx, tok); err != nil {
			t.Errorf("Verify with the default leeway, %v after exp: %v", time.Since(expiry).Round(time.Millisecond), err)
		}
		// A fresh token from the same client passes.
		h.ValidCall("a fresh 2 s token", hy.token(t, short, []string{apiAudience}, bothScopes), 0)
	})

	t.Run("wrong audience", func(t *testing.T) {
		for name, aud := range map[string][]string{"other audience": {otherAudience}, "no audience (aud [])": nil} {
			tok := hy.token(t, m2m, aud, bothScopes)
			_, err := h.v.Verify(ctx, tok)
			t.Logf("Verify(%s): %v", name, err)
			if !errors.Is(err, grpcjwt.ErrAudience) {
				t.Errorf("Verify(%s token): %v, want ErrAudience", name, err)
			}
			_, err = h.ImportOrders(tok)
			interoptest.WantStatus(t, "ImportOrders with an "+name+" token", err, codes.Unauthenticated, "token audience not accepted")
			_, err = h.Watch(tok)
			interoptest.WantStatus(t, "WatchOrders with an "+name+" token", err, codes.Unauthenticated, "token audience not accepted")
		}
		h.ValidCall("an api token", hy.token(t, m2m, []string{apiAudience}, bothScopes), 1)
	})
	h.AssertNoValidFailures()
}
