// Interop tests of grpcjwt against a real identity provider: the npm
// oidc-provider in interop/oidc-provider (shaped like Logto), reached over
// real HTTP for discovery, tokens and the JWK Set, in front of a real gRPC
// server (bufconn) serving examples/orderpb behind grpcjwt's interceptors.
//
// The tests run only when GRPCJWT_OIDC_ISSUER and GRPCJWT_OIDC_ADMIN are set:
//
//	x="$(interop/oidc-provider/run.sh start)" && eval "$x"
//	go test -count=1 -race ./interop/
//	interop/oidc-provider/run.sh stop
//
// or, for every algorithm in turn, bash interop/ci.sh. They share the one
// provider (its key rotation and JWKS faults are global), so they do not run
// in parallel; each leaves the provider's JWKS serving normally.
package interop_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/interop/internal/interoptest"
)

const (
	envIssuer = "GRPCJWT_OIDC_ISSUER"
	envAdmin  = "GRPCJWT_OIDC_ADMIN"
	// envExpectAlg, when set (interop/ci.sh sets it), is the ALG the provider
	// was started with; the tests then check the provider reports it.
	envExpectAlg = "GRPCJWT_OIDC_EXPECT_ALG"
	// envRequired, when set (interop/ci.sh sets it), makes a missing
	// provider a failure instead of a skip.
	envRequired = "GRPCJWT_OIDC_REQUIRED"

	// The audiences and scopes of the server's policy (interoptest.Serve).
	apiAudience   = interoptest.APIAudience
	otherAudience = interoptest.OtherAudience
	scopeRead     = interoptest.ScopeRead
	scopeWrite    = interoptest.ScopeWrite
	bothScopes    = interoptest.BothScopes

	clientID     = "m2m-client"
	clientSecret = "m2m-secret"

	// unknownKeyInterval is the keyset's rate limit on refreshes triggered
	// by an unknown kid; fetchTimeout bounds each JWKS fetch (and so how
	// long the "hang" fault can hold a caller).
	unknownKeyInterval = 200 * time.Millisecond
	fetchTimeout       = time.Second

	// callTimeout bounds every RPC; well above fetchTimeout so that a call
	// waiting on a hung fetch fails with the keyset's error, not its own.
	callTimeout = interoptest.CallTimeout
	// pollDeadline bounds every wait for a state change.
	pollDeadline = 10 * time.Second
	pollStep     = interoptest.PollStep

	burstSize = 50
)

// ---- the provider ------------------------------------------------------------

// provider is the running oidc-provider, reached over real HTTP.
type provider struct {
	issuer, admin          string
	jwksURI, tokenEndpoint string
	hc                     *http.Client
}

// newProvider skips the test unless the provider's environment is set, then
// discovers its endpoints. Its cleanup turns any JWKS fault off again.
func newProvider(t *testing.T) *provider {
	t.Helper()
	issuer, admin := os.Getenv(envIssuer), os.Getenv(envAdmin)
	if (issuer == "" || admin == "") && os.Getenv(envRequired) != "" {
		t.Fatalf("%s is set but %s or %s is not: the provider did not start", envRequired, envIssuer, envAdmin)
	}
	if issuer == "" || admin == "" {
		t.Skipf("interop tests need a running identity provider: %s and %s are not set; "+
			"start it with `x=\"$(interop/oidc-provider/run.sh start)\" && eval \"$x\"` "+
			"(stop it with `interop/oidc-provider/run.sh stop`), or run `bash interop/ci.sh` "+
			"for every algorithm", envIssuer, envAdmin)
	}
	p := &provider{
		issuer: issuer,
		admin:  strings.TrimSuffix(admin, "/"),
		hc:     &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
	}
	t.Cleanup(p.hc.CloseIdleConnections)

	var disc struct {
		Issuer        string `json:"issuer"`
		JWKSURI       string `json:"jwks_uri"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	p.getJSON(t, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", &disc)
	if disc.Issuer != issuer {
		t.Fatalf("discovery issuer = %q, want exactly %q", disc.Issuer, issuer)
	}
	if disc.JWKSURI == "" || disc.TokenEndpoint == "" {
		t.Fatalf("discovery lacks jwks_uri or token_endpoint: %+v", disc)
	}
	p.jwksURI, p.tokenEndpoint = disc.JWKSURI, disc.TokenEndpoint

	// Whatever happens in the test, leave the JWKS endpoint serving.
	t.Cleanup(func() { p.post(t, "/jwks-fault?mode=none", nil) })
	p.post(t, "/jwks-fault?mode=none", nil) // and start from a sane state
	return p
}

func (p *provider) getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := p.hc.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
}

// post POSTs to an admin endpoint (path relative to the admin base).
func (p *provider) post(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := p.hc.Post(p.admin+path, "application/json", nil)
	if err != nil {
		t.Errorf("POST %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST %s: HTTP %d: %s", path, resp.StatusCode, body)
		return
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Errorf("POST %s: %v: %s", path, err, body)
		}
	}
}

type rotation struct {
	Mode       string   `json:"mode"`
	Kids       []string `json:"kids"`
	SigningKid string   `json:"signing_kid"`
}

// rotate rotates the provider's signing keys (grace, finish or hard).
func (p *provider) rotate(t *testing.T, mode string) rotation {
	t.Helper()
	var r rotation
	p.post(t, "/rotate?mode="+mode, &r)
	if r.SigningKid == "" || len(r.Kids) == 0 || r.Kids[0] != r.SigningKid {
		t.Fatalf("rotate %s: unexpected answer %+v", mode, r)
	}
	return r
}

// fault sets how the provider's JWKS endpoint answers.
func (p *provider) fault(t *testing.T, mode string) {
	t.Helper()
	var r struct {
		Fault string `json:"jwks_fault"`
	}
	p.post(t, "/jwks-fault?mode="+mode, &r)
	if r.Fault != mode {
		t.Fatalf("jwks-fault %s: provider answered %q", mode, r.Fault)
	}
}

type stats struct {
	JWKSRequests int            `json:"jwks_requests"`
	ByMode       map[string]int `json:"jwks_requests_by_mode"`
	Rotations    int            `json:"rotations"`
	Fault        string         `json:"jwks_fault"`
	Hanging      int            `json:"hanging"`
	Kids         []string       `json:"kids"`
	SigningKid   string         `json:"signing_kid"`
	Alg          string         `json:"alg"`
}

func (p *provider) stats(t *testing.T) stats {
	t.Helper()
	var s stats
	p.getJSON(t, p.admin+"/stats", &s)
	return s
}

// token gets an access token by client_credentials over real HTTP.
func (p *provider) token(t *testing.T, resource, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, err := http.NewRequest(http.MethodPost, p.tokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("token request (resource %q, scope %q): HTTP %d: %s", resource, scope, resp.StatusCode, body)
	}
	if !strings.EqualFold(tr.TokenType, "Bearer") {
		t.Fatalf("token_type = %q, want Bearer", tr.TokenType)
	}
	return tr.AccessToken
}

// ---- the protected gRPC server -------------------------------------------------

// harness is one keyset + verifier + gRPC server over bufconn + client
// (the calls and their tally: interoptest.Client).
type harness struct {
	*interoptest.Client
	v *grpcjwt.Verifier

	mu          sync.Mutex
	lastUnknown time.Time // when the last call that could refresh on an unknown kid ended
}

type config struct {
	keyset   []grpcjwt.KeysetOption
	verifier []grpcjwt.VerifierOption
}

func newHarness(t *testing.T, p *provider, cfg config) *harness {
	t.Helper()
	logger := interoptest.Logger(t, slog.LevelDebug)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ksOpts := append([]grpcjwt.KeysetOption{
		grpcjwt.WithHTTPClient(&http.Client{Transport: tr}),
		grpcjwt.WithUnknownKeyRefreshInterval(unknownKeyInterval),
		grpcjwt.WithFetchTimeout(fetchTimeout),
		grpcjwt.WithKeysetLogger(logger),
	}, cfg.keyset...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ks, err := grpcjwt.NewRemoteKeyset(ctx, p.jwksURI, ksOpts...)
	if err != nil {
		t.Fatalf("NewRemoteKeyset: %v", err)
	}
	t.Cleanup(func() { ks.Close() })

	vOpts := append([]grpcjwt.VerifierOption{
		grpcjwt.WithIssuer(p.issuer),
		grpcjwt.WithAudience(apiAudience, otherAudience),
		grpcjwt.WithStrictType(),
	}, cfg.verifier...)
	v, err := grpcjwt.NewVerifier(ks, vOpts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}

	return &harness{Client: interoptest.Serve(t, v, logger), v: v}
}

// awaitUnknownKeyWindow waits until a token with an unknown kid may refresh
// the keyset again (the rate limit has passed since the last such call).
func (h *harness) awaitUnknownKeyWindow() {
	h.mu.Lock()
	last := h.lastUnknown
	h.mu.Unlock()
	if d := time.Until(last.Add(unknownKeyInterval + 20*time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
}

// noteUnknownKey records that a call which may have refreshed the keyset
// on an unknown kid just ended.
func (h *harness) noteUnknownKey() {
	h.mu.Lock()
	h.lastUnknown = time.Now()
	h.mu.Unlock()
}

// ---- 1. every method per policy, with the provider's algorithm ---------------

func TestProviderTokensFollowPolicy(t *testing.T) {
	p := newProvider(t)
	h := newHarness(t, p, config{})

	st := p.stats(t)
	if want := os.Getenv(envExpectAlg); want != "" && st.Alg != want {
		t.Fatalf("provider reports alg %q, but it was started with ALG=%s", st.Alg, want)
	}
	t.Logf("provider alg %s, signing kid %s", st.Alg, st.SigningKid)

	// The JWK Set publishes the signing key with the provider's algorithm.
	var set struct {
		Keys []struct {
			Kid, Alg, Use, Kty string
		} `json:"keys"`
	}
	p.getJSON(t, p.jwksURI, &set)
	found := false
	for _, k := range set.Keys {
		if k.Kid == st.SigningKid {
			found = true
			if k.Alg != st.Alg || k.Use != "sig" {
				t.Errorf("JWK %s: alg %q use %q, want alg %q use sig", k.Kid, k.Alg, k.Use, st.Alg)
			}
		}
	}
	if !found {
		t.Fatalf("JWK Set does not hold the signing kid %s: %+v", st.SigningKid, set.Keys)
	}

	tokRW := p.token(t, apiAudience, bothScopes)
	tokR := p.token(t, apiAudience, scopeRead)
	tokW := p.token(t, apiAudience, scopeWrite)
	tokNone := p.token(t, apiAudience, "") // no scope claim at all
	tokOther := p.token(t, otherAudience, bothScopes)
	tokOtherR := p.token(t, otherAudience, scopeRead)

	for name, tok := range map[string]string{"api rw": tokRW, "api r": tokR, "other rw": tokOther} {
		hdr := interoptest.HeaderOf(t, tok)
		if hdr.Alg != st.Alg || hdr.Typ != "at+jwt" || hdr.Kid != st.SigningKid {
			t.Errorf("%s token header %+v, want alg %s typ at+jwt kid %s", name, hdr, st.Alg, st.SigningKid)
		}
	}

	// The verifier on its own.
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c, err := h.v.Verify(ctx, tokRW)
	if err != nil {
		t.Fatalf("Verify(provider token): %v", err)
	}
	if c.Issuer != p.issuer || len(c.Audience) != 1 || c.Audience[0] != apiAudience ||
		c.Subject != clientID || c.ClientID != clientID ||
		!c.HasScope(scopeRead) || !c.HasScope(scopeWrite) || c.ID == "" ||
		c.IssuedAt.IsZero() || !c.Expiry.After(time.Now()) {
		t.Errorf("claims = %+v", c)
	}

	h.CheckRules(t, interoptest.RuleTokens{
		Subject: clientID, RW: tokRW, R: tokR, W: tokW, NoScope: tokNone, NoScopeShape: "no scope claim",
		Other: tokOther, OtherR: tokOtherR,
		// Without a resource the provider issues an opaque token (as Logto).
		Opaque: p.token(t, "", scopeRead),
	})
}

// ---- 2. key rotation without restart and without a failed call ---------------

// TestRotationGraceFinish rotates keys the way an operator does (publish the
// new key, sign with it, later drop the old one). The keyset refreshes only
// when a token names a kid it does not hold (no periodic refresh within the
// test), so every refresh here is one the test triggers.
func TestRotationGraceFinish(t *testing.T) {
	p := newProvider(t)
	h := newHarness(t, p, config{})
	t.Cleanup(func() { p.post(t, "/rotate?mode=finish", nil) }) // leave one key

	tokA := p.token(t, apiAudience, bothScopes)
	kidA := interoptest.HeaderOf(t, tokA).Kid
	h.Setup(tokA)
	h.Burst("A before rotation", 5, tokA)

	// Grace: a new signing key, published next to the old one.
	rot := p.rotate(t, "grace")
	tokB := p.token(t, apiAudience, bothScopes)
	kidB := interoptest.HeaderOf(t, tokB).Kid
	if kidB == kidA || kidB != rot.SigningKid || !contains(rot.Kids, kidA) {
		t.Fatalf("after grace rotation: kid A %s, kid B %s, rotation %+v", kidA, kidB, rot)
	}
	// B's first calls find an unknown kid: they must share one refresh and
	// all succeed; A keeps working meanwhile.
	before := p.stats(t).JWKSRequests
	h.Burst("A and B during grace (B's first use)", 20, tokA, tokB)
	h.noteUnknownKey()
	if got := p.stats(t).JWKSRequests - before; got != 1 {
		t.Errorf("B's first 20 concurrent calls made %d JWKS requests, want exactly 1 (one shared refresh)", got)
	}
	h.Burst("A and B during grace", 5, tokA, tokB)

	// Finish: the old key leaves the JWK Set. Until the keyset refreshes it
	// still holds A's key, so A still passes.
	rot = p.rotate(t, "finish")
	if contains(rot.Kids, kidA) || !contains(rot.Kids, kidB) {
		t.Fatalf("after finish: kids %v still hold A %s or lack B %s", rot.Kids, kidA, kidB)
	}
	h.Burst("A and B after finish, before the keyset refreshes", 5, tokA, tokB)

	// The next rotation's token C names an unknown kid: its first call
	// refreshes the keyset, which then learns that A's key is gone.
	p.rotate(t, "grace")
	tokC := p.token(t, apiAudience, bothScopes)
	if kidC := interoptest.HeaderOf(t, tokC).Kid; kidC == kidA || kidC == kidB {
		t.Fatalf("token C reuses kid %s", kidC)
	}
	h.awaitUnknownKeyWindow()
	before = p.stats(t).JWKSRequests
	h.Burst("B and C (C's first use)", 20, tokB, tokC)
	h.noteUnknownKey()
	if got := p.stats(t).JWKSRequests - before; got != 1 {
		t.Errorf("C's first 20 concurrent calls made %d JWKS requests, want exactly 1", got)
	}

	// A's key is gone: A now fails, even though it verified (and was
	// cached) before; B and C still pass.
	_, err := h.GetOrder(tokA, h.OrderID)
	interoptest.WantStatus(t, "GetOrder with A after its key left the JWKS", err, codes.Unauthenticated, "token signed by an unknown key")
	_, err = h.Watch(tokA)
	interoptest.WantStatus(t, "WatchOrders with A after its key left the JWKS", err, codes.Unauthenticated, "token signed by an unknown key")
	h.noteUnknownKey()
	h.Burst("B and C after the refresh", 5, tokB, tokC)
	h.AssertNoValidFailures()
}

// TestRotationPeriodicRefresh has the keyset refresh on its own schedule:
// after the old key leaves the JWK Set, tokens signed with it start failing
// without any token naming a new kid, and the new key's tokens never fail.
func TestRotationPeriodicRefresh(t *testing.T) {
	p := newProvider(t)
	h := newHarness(t, p, config{keyset: []grpcjwt.KeysetOption{
		grpcjwt.WithRefreshInterval(150 * time.Millisecond),
		grpcjwt.WithRefreshBounds(100*time.Millisecond, 150*time.Millisecond),
	}})
	t.Cleanup(func() { p.post(t, "/rotate?mode=finish", nil) })

	tokA := p.token(t, apiAudience, bothScopes)
	h.Setup(tokA)
	p.rotate(t, "grace")
	tokB := p.token(t, apiAudience, bothScopes)
	// Use B only once the JWK Set has been requested after the rotation:
	// the keyset runs one fetch at a time, so no fetch answered before the
	// rotation is in flight any more. (grpcjwt rejects, with ErrUnknownKey,
	// a first use of B that joins such a stale in-flight fetch.)
	after := p.stats(t).JWKSRequests
	waitFor(t, "a periodic JWKS refresh after the rotation", func() bool {
		return p.stats(t).JWKSRequests > after
	})
	h.Burst("A and B during grace", 10, tokA, tokB)

	p.rotate(t, "finish")
	start := time.Now()
	deadline := start.Add(pollDeadline)
	var err error
	for i := 0; ; i++ {
		_, err = h.GetOrder(tokA, h.OrderID)
		if err != nil {
			break
		}
		h.ValidCall("B while waiting for the refresh", tokB, i)
		if time.Now().After(deadline) {
			t.Fatalf("token A still accepted %v after its key left the JWK Set", pollDeadline)
		}
		time.Sleep(pollStep)
	}
	t.Logf("A rejected %v after the finish rotation", time.Since(start).Round(time.Millisecond))
	interoptest.WantStatus(t, "GetOrder with A after the periodic refresh", err, codes.Unauthenticated, "token signed by an unknown key")
	h.Burst("B after the refresh", 10, tokB)
	h.AssertNoValidFailures()
}

// TestHardRotation replaces every key at once: the new key's token passes on
// its first call (an unknown-kid refresh), the old one fails from then on.
func TestHardRotation(t *testing.T) {
	p := newProvider(t)
	h := newHarness(t, p, config{})

	tokA := p.token(t, apiAudience, bothScopes)
	kidA := interoptest.HeaderOf(t, tokA).Kid
	h.Setup(tokA)
	h.Burst("A before rotation", 5, tokA)

	rot := p.rotate(t, "hard")
	if contains(rot.Kids, kidA) || len(rot.Kids) != 1 {
		t.Fatalf("hard rotation kept kids %v (A %s)", rot.Kids, kidA)
	}
	tokD := p.token(t, apiAudience, bothScopes)
	h.ValidCall("D's first call", tokD, 0)
	h.noteUnknownKey()
	h.Burst("D", 10, tokD)

	_, err := h.GetOrder(tokA, h.OrderID)
	interoptest.WantStatus(t, "GetOrder with A after a hard rotation", err, codes.Unauthenticated, "token signed by an unknown key")
	h.AssertNoValidFailures()
}

// ---- 3. JWKS outage -------------------------------------------------------------

// TestJWKSOutage breaks the JWKS endpoint three ways. Tokens signed by a key
// the keyset holds keep passing (the verified-token cache is off, so every
// call looks the key up and checks the signature); a token signed by a key
// published during the outage fails until the endpoint recovers.
func TestJWKSOutage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		periodic bool
	}{
		{"unknown-kid refresh only", false},
		{"with periodic refresh", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testJWKSOutage(t, tc.periodic) })
	}
}

func testJWKSOutage(t *testing.T, periodic bool) {
	p := newProvider(t)
	cfg := config{verifier: []grpcjwt.VerifierOption{grpcjwt.WithTokenCache(0, 0, 0)}}
	if periodic {
		// Background refreshes every ~150ms; after a failure the backoff
		// is clamped to the lower bound, so they keep hitting the fault.
		cfg.keyset = []grpcjwt.KeysetOption{
			grpcjwt.WithRefreshInterval(150 * time.Millisecond),
			grpcjwt.WithRefreshBounds(100*time.Millisecond, 150*time.Millisecond),
		}
	}
	h := newHarness(t, p, cfg)
	t.Cleanup(func() { p.post(t, "/rotate?mode=finish", nil) })

	// Several tokens of the held key, each with its own jti.
	held := []string{
		p.token(t, apiAudience, bothScopes),
		p.token(t, apiAudience, bothScopes),
		p.token(t, apiAudience, bothScopes),
	}
	heldKid := interoptest.HeaderOf(t, held[0]).Kid
	h.Setup(held[0])
	h.Burst("before the outage", 5, held...)

	p.fault(t, "500")
	// A key published while the JWKS is down.
	p.rotate(t, "grace")
	tokN := p.token(t, apiAudience, bothScopes)
	if interoptest.HeaderOf(t, tokN).Kid == heldKid {
		t.Fatal("the rotation did not change the signing kid")
	}

	prev := ""
	for _, mode := range []string{"500", "hang", "garbage"} {
		phase := time.Now()
		p.fault(t, mode)
		if prev == "hang" {
			// No new request hangs now; the keyset gives up on those
			// parked before within its fetch timeout.
			waitFor(t, "the hung JWKS requests to be abandoned", func() bool {
				return p.stats(t).Hanging == 0
			})
		}
		prev = mode
		before := p.stats(t).ByMode[mode]

		// The unknown kid triggers a refresh, which fails (after at most
		// the fetch timeout); meanwhile and afterwards the held key works.
		h.awaitUnknownKeyWindow()
		unknownErr := make(chan error, 1)
		began := time.Now()
		go func() {
			_, err := h.GetOrder(tokN, h.OrderID)
			unknownErr <- err
		}()
		h.Burst("JWKS "+mode+", during the unknown-kid refresh", burstSize/len(held)+1, held...)
		err := <-unknownErr
		took := time.Since(began)
		h.noteUnknownKey()
		interoptest.WantStatus(t, "GetOrder with a key published during the outage (JWKS "+mode+")", err,
			codes.Unauthenticated, "token signed by an unknown key")
		if took > fetchTimeout+3*time.Second {
			t.Errorf("JWKS %s: the unknown-kid call took %v, want about the fetch timeout %v at most", mode, took, fetchTimeout)
		}
		h.Burst("JWKS "+mode+", after the failed refresh", burstSize/len(held)+1, held...)

		if periodic {
			// Let the background refresh fail too, and check again.
			waitFor(t, "a background JWKS request under fault "+mode, func() bool {
				return p.stats(t).ByMode[mode] >= before+2
			})
			h.Burst("JWKS "+mode+", after failed background refreshes", 5, held...)
		} else if got := p.stats(t).ByMode[mode] - before; got != 1 {
			t.Errorf("JWKS %s: %d JWKS requests, want exactly 1 (the unknown-kid refresh)", mode, got)
		}
		t.Logf("JWKS %s: unknown-kid call rejected after %v; phase took %v",
			mode, took.Round(time.Millisecond), time.Since(phase).Round(time.Millisecond))
	}

	// Recovery: once the endpoint answers again (and the rate limit has
	// passed), the new key is fetched and its token passes.
	p.fault(t, "none")
	start := time.Now()
	waitFor(t, "the token of the new key to pass after recovery", func() bool {
		_, err := h.GetOrder(tokN, h.OrderID)
		if err != nil {
			if st, _ := status.FromError(err); st.Code() != codes.Unauthenticated {
				t.Errorf("during recovery: %v, want Unauthenticated until the keyset refreshes", err)
			}
		}
		return err == nil
	})
	t.Logf("recovered %v after the fault was lifted", time.Since(start).Round(time.Millisecond))
	h.Burst("after recovery", 5, append(held, tokN)...)
	h.AssertNoValidFailures()
}

// waitFor polls cond every pollStep until it holds, failing the test after
// pollDeadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	interoptest.WaitFor(t, pollDeadline, what, cond)
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
