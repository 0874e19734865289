package grpcjwt_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// soakEnv names the environment variable that turns TestSoak on and sets
// its duration. Helpers of the soak test carry a "soak" prefix so that they
// do not collide with other test files of package grpcjwt_test.
const soakEnv = "GRPCJWT_SOAK"

const (
	soakAudience     = "api://orders"  // the verifier's audience
	soakRuleAudience = "api://billing" // the audience rule's audience
	soakScope        = "orders:read"   // the scope rule's scope

	soakPublic    = testpb.TestService_EmptyCall_FullMethodName          // public
	soakAudMethod = testpb.TestService_UnaryCall_FullMethodName          // audience rule
	soakScoped    = testpb.TestService_CacheableUnaryCall_FullMethodName // scope rule (service wildcard)
	soakOut       = testpb.TestService_StreamingOutputCall_FullMethodName
	soakBidi      = testpb.TestService_FullDuplexCall_FullMethodName
	soakService   = "/grpc.testing.TestService/*"

	soakAnon = "-" // the subject a handler reports without claims

	soakUnaryWorkers  = 32
	soakOutWorkers    = 8
	soakBidiWorkers   = 4
	soakConns         = 4
	soakStreamMsgs    = 3
	soakCallTimeout   = 20 * time.Second // a call that takes this long is a failure
	soakPhaseBound    = 20 * time.Second // bound of each wait of the chaos goroutine
	soakRetiredKept   = 3                // retired generations still sent, newest first
	soakHeapFactor    = 4                // final heap may be at most this times the warm-up heap
	soakFreshOneIn    = 8                // one call in this many mints a fresh token (cache miss)
	soakPoolPerKind   = 8                // pre-minted tokens per kind and generation
	soakHeapSampleGap = 100 * time.Millisecond
)

// soakKind is the kind of credential a call carries.
type soakKind int

const (
	skValid      soakKind = iota // current key
	skValidPrev                  // previous key, during its grace period
	skNoScope                    // valid, but without the scope rule's scope
	skExpired                    // exp an hour ago
	skNotYet                     // nbf in an hour
	skWrongAud                   // aud names another API
	skWrongIss                   // iss is another issuer
	skForged                     // kid of the current key, signed by another key
	skUnknownKid                 // a random kid the issuer never published
	skRetired                    // a valid token of a key the issuer retired and the keyset dropped
	skGarbage                    // not a JWS at all
	skAlgNone                    // alg "none"
	skNoToken                    // no authorization metadata
	soakKinds
)

var soakKindNames = [soakKinds]string{
	"valid(current key)", "valid(previous key)", "missing scope", "expired", "not yet valid",
	"wrong audience", "wrong issuer", "forged signature", "unknown kid", "retired key",
	"garbage", "alg none", "no token",
}

// soakWeights is how often each kind is sent, in percent.
var soakWeights = [soakKinds]int{30, 14, 8, 6, 4, 6, 4, 6, 5, 6, 5, 3, 3}

var soakGarbage = []string{
	"not-a-jwt",
	"a.b.c",
	"x.y",
	"....",
	"e30.e30.e30.e30.e30",
	"%%%.%%%.%%%",
	`{"payload":"e30","signatures":[]}`,
	base64.RawURLEncoding.EncodeToString([]byte("hello")) + ".e30.AAAA",
	"eyJhbGciOiJFUzI1NiJ9.e30.A",
}

// soakGen is one generation of signing key and the tokens derived from it.
type soakGen struct {
	n    int
	key  *grpcjwttest.Key
	pool [soakKinds][]string // pre-minted tokens of the kinds this generation makes
}

// soakState is what the clients may send, published by the chaos goroutine.
// Every call leases the state it picked its token from; before a key is
// retired the chaos goroutine publishes a state without it and waits until
// no call still holds an older state, so that no token is ever sent with an
// expectation that no longer holds.
type soakState struct {
	cur      *soakGen
	prev     *soakGen   // in its grace period: published and known, no longer signing
	retired  []*soakGen // unpublished and confirmed dropped by the keyset
	inflight atomic.Int64
}

// soakWant is the outcome a call must have.
type soakWant struct {
	code codes.Code
	msg  string // the status message of a rejection
	sub  string // for OK: the subject the handler must see (soakAnon: none)
}

func (w soakWant) valid() bool { return w.code == codes.OK && w.sub != soakAnon }

// soakGot is the outcome a call had.
type soakGot struct {
	code   codes.Code
	msg    string
	sub    string // the x-sub header the handler set
	detail string // a defect of the response beyond code and subject
}

// soakRun is one soak run.
type soakRun struct {
	t      *testing.T
	is     *grpcjwttest.Issuer
	v      *grpcjwt.Verifier
	forger *grpcjwttest.Key // unpublished: forges signatures
	alien  *grpcjwttest.Key // unpublished: signs unknown-kid tokens
	state  atomic.Pointer[soakState]
	fresh  atomic.Int64 // counter for fresh tokens' subjects

	// counts, by kind
	calls, accepted, anonymous, rejected [soakKinds]atomic.Int64
	wantValid                            [soakKinds]atomic.Int64 // calls that must be accepted with claims
	validRejected, invalidAccepted       [soakKinds]atomic.Int64
	mismatched                           [soakKinds]atomic.Int64 // any other difference
	byCode                               sync.Map                // "kind|code msg" -> *atomic.Int64

	mu      sync.Mutex
	samples []string // first failures, for the report

	rotations, retirements atomic.Int64
	outages                [8]atomic.Int64 // by grpcjwttest.Failure
}

// TestSoak is an opt-in endurance test: for the duration named by the
// environment variable GRPCJWT_SOAK (for example GRPCJWT_SOAK=30s) it runs
// many concurrent clients through a real grpc.Server on a loopback TCP
// listener, protected by grpcjwt against a real JWKS (grpcjwttest.Issuer),
// while a chaos goroutine rotates and retires signing keys and makes the
// JWKS endpoint fail and recover. Every call's outcome is known in advance
// and checked exactly. It also checks that no goroutine outlives the
// shutdown and that the heap does not grow. Run it under the race detector:
//
//	GRPCJWT_SOAK=30s go test -race -run TestSoak -v .
//
// What it asserts: no call with a valid token is rejected, no call with an
// invalid one is accepted, every rejection has the expected status, the
// handler sees the claims of the very token sent, no data race (under
// -race), no goroutine of grpcjwt, gRPC or net/http outlives the shutdown,
// and the heap after the run (after a GC) is at most soakHeapFactor times
// the heap after warm-up. GRPCJWT_SOAK=5s is short enough for CI.
func TestSoak(t *testing.T) {
	env := os.Getenv(soakEnv)
	if env == "" {
		t.Skipf("soak test is opt-in: set %s to a duration to run it, e.g. %s=30s go test -race -run TestSoak -v .", soakEnv, soakEnv)
	}
	dur, err := time.ParseDuration(env)
	if err != nil || dur <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30s", soakEnv, env)
	}
	started := time.Now()
	before := soakGoroutines()
	startGoroutines := runtime.NumGoroutine()

	// The issuer (httptest on 127.0.0.1), the keyset and the verifier.
	is := grpcjwttest.NewIssuer()
	closeIssuer := sync.OnceFunc(is.Close)
	t.Cleanup(closeIssuer)
	logs := &soakLogCounter{}
	ks, err := grpcjwt.NewRemoteKeyset(t.Context(), is.JWKSURL(),
		grpcjwt.WithHTTPClient(is.HTTPClient()),
		grpcjwt.WithUnknownKeyRefreshInterval(100*time.Millisecond),
		grpcjwt.WithRefreshBounds(150*time.Millisecond, 400*time.Millisecond),
		grpcjwt.WithFetchTimeout(300*time.Millisecond),
		grpcjwt.WithKeysetLogger(slog.New(logs)))
	if err != nil {
		t.Fatalf("NewRemoteKeyset: %v", err)
	}
	closeKeyset := sync.OnceFunc(func() { ks.Close() })
	t.Cleanup(closeKeyset)
	v, err := grpcjwt.NewVerifier(ks, grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience(soakAudience),
		// A small cache, so that it fills and evicts during the run.
		grpcjwt.WithTokenCache(256, 8<<10, time.Minute))
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}

	// The server, on a loopback TCP listener.
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		soakPublic:    {Public: true},
		soakAudMethod: {Audiences: []string{soakRuleAudience}},
		soakService:   {Scopes: []string{soakScope}},
	})
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, grpcjwt.WithPolicy(policy))),
		grpc.ChainStreamInterceptor(grpcjwt.StreamServerInterceptor(v, grpcjwt.WithPolicy(policy))))
	impl := &soakServer{}
	testpb.RegisterTestServiceServer(srv, impl)
	if err := policy.CheckServer(srv); err != nil {
		t.Fatalf("CheckServer: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	stopServer := sync.OnceFunc(func() {
		srv.Stop()
		<-served
	})
	t.Cleanup(stopServer)
	var conns []*grpc.ClientConn
	closeConns := sync.OnceFunc(func() {
		for _, cc := range conns {
			cc.Close()
		}
	})
	t.Cleanup(closeConns)
	var clients []testpb.TestServiceClient
	for range soakConns {
		cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("NewClient: %v", err)
		}
		conns = append(conns, cc)
		clients = append(clients, testpb.NewTestServiceClient(cc))
	}

	r := &soakRun{t: t, is: is, v: v, forger: grpcjwttest.NewKey("ES256"), alien: grpcjwttest.NewKey("ES256")}
	r.state.Store(&soakState{cur: r.newGen(0, is.SigningKey())})

	runCtx, stopRun := context.WithTimeout(context.Background(), dur)
	defer stopRun()

	// The heap sampler: a forced GC after warm-up, then a sample every
	// soakHeapSampleGap.
	warmup := min(max(dur/5, time.Second), 10*time.Second)
	if warmup >= dur {
		warmup = dur / 2
	}
	var heapMu sync.Mutex
	var heapWarm, heapMin, heapMax uint64
	var heapSamples int
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(soakHeapSampleGap)
		defer tick.Stop()
		warm := time.NewTimer(warmup)
		defer warm.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-runCtx.Done():
				return
			case <-warm.C:
				runtime.GC()
				runtime.ReadMemStats(&ms)
				heapMu.Lock()
				heapWarm = ms.HeapInuse
				heapMu.Unlock()
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				heapMu.Lock()
				if heapSamples == 0 || ms.HeapInuse < heapMin {
					heapMin = ms.HeapInuse
				}
				heapMax = max(heapMax, ms.HeapInuse)
				heapSamples++
				heapMu.Unlock()
			}
		}
	}()

	var wg sync.WaitGroup
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		r.chaos(runCtx)
	}()
	for i := range soakUnaryWorkers {
		c := clients[i%len(clients)]
		wg.Go(func() {
			methods := []string{soakPublic, soakAudMethod, soakScoped}
			for n := 0; runCtx.Err() == nil; n++ {
				r.call(methods[(i+n)%len(methods)], func(ctx context.Context, method string) soakGot {
					return soakUnary(ctx, c, method)
				})
			}
		})
	}
	for i := range soakOutWorkers {
		c := clients[i%len(clients)]
		wg.Go(func() {
			for runCtx.Err() == nil {
				r.call(soakOut, func(ctx context.Context, _ string) soakGot { return soakCallOut(ctx, c) })
			}
		})
	}
	for i := range soakBidiWorkers {
		c := clients[i%len(clients)]
		wg.Go(func() {
			for runCtx.Err() == nil {
				r.call(soakBidi, func(ctx context.Context, _ string) soakGot { return soakCallBidi(ctx, c) })
			}
		})
	}
	wg.Wait()
	<-chaosDone
	<-samplerDone
	loadEnded := time.Now()

	// The final heap, with the server, keyset and cache still alive.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapFinal := ms.HeapInuse

	// Shut everything down, then look for goroutines that outlived it.
	closeConns()
	stopServer()
	closeKeyset()
	closeIssuer()
	leaked := soakAwaitNoLeaks(before, 10*time.Second)
	endGoroutines := runtime.NumGoroutine()

	r.report(dur, loadEnded.Sub(started), time.Since(started))
	heapMu.Lock()
	t.Logf("heap in use: warm-up (after GC, at %v) %s; samples %d, min %s, max %s; final (after GC) %s (%.2fx warm-up); GC cycles %d",
		warmup, soakMiB(heapWarm), heapSamples, soakMiB(heapMin), soakMiB(heapMax), soakMiB(heapFinal),
		float64(heapFinal)/float64(max(heapWarm, 1)), ms.NumGC)
	if heapWarm == 0 {
		t.Errorf("no warm-up heap sample: the run (%v) ended before warm-up (%v)", dur, warmup)
	} else if heapFinal > soakHeapFactor*heapWarm {
		t.Errorf("final heap %s is more than %dx the warm-up heap %s: something grows without bound",
			soakMiB(heapFinal), soakHeapFactor, soakMiB(heapWarm))
	}
	heapMu.Unlock()
	t.Logf("goroutines: %d at start, %d after shutdown; handler invocations %d; JWKS requests %d; keyset log: %s",
		startGoroutines, endGoroutines, impl.calls.Load(), is.JWKSHits(), logs)
	if len(leaked) > 0 {
		t.Errorf("%d goroutine(s) outlived the shutdown:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// newGen pre-mints the tokens of a generation whose key is k.
func (r *soakRun) newGen(n int, k *grpcjwttest.Key) *soakGen {
	g := &soakGen{n: n, key: k}
	for kind := range soakKinds {
		switch kind {
		case skValidPrev, skRetired, skGarbage, skNoToken:
			continue // taken from other pools or made at the call
		}
		for i := range soakPoolPerKind {
			g.pool[kind] = append(g.pool[kind], r.mint(g, kind, fmt.Sprintf("g%d-%d-p%d", n, kind, i)))
		}
	}
	return g
}

// mint makes a token of kind from generation g with subject sub.
func (r *soakRun) mint(g *soakGen, kind soakKind, sub string) string {
	now := time.Now()
	c := map[string]any{
		"iss":       r.is.URL(),
		"sub":       sub,
		"aud":       []string{soakAudience, soakRuleAudience},
		"client_id": "soak-client",
		"scope":     soakScope + " profile",
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"jti":       sub,
	}
	key, header := g.key, map[string]any(nil)
	switch kind {
	case skNoScope:
		c["scope"] = "profile"
	case skExpired:
		c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	case skNotYet:
		c["nbf"] = now.Add(time.Hour).Unix()
	case skWrongAud:
		c["aud"] = []string{"api://elsewhere"}
	case skWrongIss:
		c["iss"] = "https://issuer.invalid"
	case skForged:
		key, header = r.forger, map[string]any{"kid": g.key.ID}
	case skUnknownKid:
		key, header = r.alien, map[string]any{"kid": fmt.Sprintf("unknown-%x", rand.Uint64())}
	case skAlgNone:
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
		p := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"iss":%q,"sub":%q,"aud":%q,"exp":%d}`,
			r.is.URL(), sub, soakAudience, now.Add(time.Hour).Unix()))
		return h + "." + p + "."
	}
	return grpcjwttest.Sign(key, header, c)
}

// lease returns the current state, held until release so that the chaos
// goroutine does not retire a key a call is using.
func (r *soakRun) lease() *soakState {
	for {
		st := r.state.Load()
		st.inflight.Add(1)
		if r.state.Load() == st {
			return st
		}
		st.inflight.Add(-1)
	}
}

// pick chooses a kind and a token for it from st, and the subject a handler
// must then see.
func (r *soakRun) pick(st *soakState) (soakKind, string, string) {
	n := rand.IntN(100)
	kind := soakKind(0)
	for ; kind < soakKinds-1 && n >= soakWeights[kind]; kind++ {
		n -= soakWeights[kind]
	}
	g := st.cur
	switch kind {
	case skValidPrev:
		if st.prev == nil {
			kind = skValid
		} else {
			g = st.prev
		}
	case skRetired:
		if len(st.retired) == 0 {
			kind = skUnknownKid
		}
	}
	switch kind {
	case skGarbage:
		return kind, soakGarbage[rand.IntN(len(soakGarbage))], ""
	case skNoToken:
		return kind, "", ""
	case skRetired:
		rg := st.retired[rand.IntN(len(st.retired))]
		tok := rg.pool[skValid][rand.IntN(len(rg.pool[skValid]))] // once verified and cached
		return kind, tok, soakSubject(tok)
	}
	poolKind := kind
	if kind == skValidPrev {
		poolKind = skValid
	}
	if rand.IntN(soakFreshOneIn) == 0 {
		sub := fmt.Sprintf("g%d-%d-f%d", g.n, kind, r.fresh.Add(1))
		return kind, r.mint(g, poolKind, sub), sub
	}
	tok := g.pool[poolKind][rand.IntN(len(g.pool[poolKind]))]
	return kind, tok, soakSubject(tok)
}

// soakSubject reads the "sub" of a token minted by soakRun.mint.
func soakSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), `"sub":"`)
	if !ok {
		return ""
	}
	sub, _, _ := strings.Cut(rest, `"`)
	return sub
}

// soakExpect is the outcome of a call of method with a token of kind.
func soakExpect(kind soakKind, method, sub string) soakWant {
	ok := soakWant{code: codes.OK, sub: sub}
	var rej soakWant
	switch kind {
	case skValid, skValidPrev:
		return ok
	case skNoScope:
		if method == soakPublic || method == soakAudMethod {
			return ok // neither asks for a scope
		}
		rej = soakWant{code: codes.PermissionDenied, msg: "token lacks a required scope"}
	case skExpired:
		rej = soakWant{code: codes.Unauthenticated, msg: "expired token"}
	case skNotYet:
		rej = soakWant{code: codes.Unauthenticated, msg: "token not yet valid"}
	case skWrongAud:
		// An audience neither the verifier nor the rule accepts: the
		// verifier's check, which a rule's audiences narrow, refuses it
		// first on every method.
		rej = soakWant{code: codes.Unauthenticated, msg: "token audience not accepted"}
	case skWrongIss:
		rej = soakWant{code: codes.Unauthenticated, msg: "token issuer not trusted"}
	case skForged:
		rej = soakWant{code: codes.Unauthenticated, msg: "invalid token signature"}
	case skUnknownKid, skRetired:
		rej = soakWant{code: codes.Unauthenticated, msg: "token signed by an unknown key"}
	case skGarbage:
		rej = soakWant{code: codes.Unauthenticated, msg: "malformed token"}
	case skAlgNone:
		rej = soakWant{code: codes.Unauthenticated, msg: "token signing algorithm not accepted"}
	case skNoToken:
		rej = soakWant{code: codes.Unauthenticated, msg: "missing bearer token"}
	}
	if method == soakPublic {
		return soakWant{code: codes.OK, sub: soakAnon} // let through without claims
	}
	return rej
}

// call makes one call with a token picked now and judges its outcome.
func (r *soakRun) call(method string, do func(ctx context.Context, method string) soakGot) {
	st := r.lease()
	defer st.inflight.Add(-1)
	kind, tok, sub := r.pick(st)
	want := soakExpect(kind, method, sub)
	ctx, cancel := context.WithTimeout(context.Background(), soakCallTimeout)
	defer cancel()
	if kind != skNoToken {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	got := do(ctx, method)
	r.judge(kind, method, want, got)
}

func (r *soakRun) judge(kind soakKind, method string, want soakWant, got soakGot) {
	r.calls[kind].Add(1)
	if want.valid() {
		r.wantValid[kind].Add(1)
	}
	switch {
	case got.code == codes.OK && got.sub != soakAnon:
		r.accepted[kind].Add(1)
	case got.code == codes.OK:
		r.anonymous[kind].Add(1)
	default:
		r.rejected[kind].Add(1)
	}
	key := fmt.Sprintf("%s|%v %s", soakKindNames[kind], got.code, got.msg)
	if got.code == codes.OK {
		key = fmt.Sprintf("%s|OK", soakKindNames[kind])
		if got.sub == soakAnon {
			key += " (no claims)"
		}
	}
	cnt, _ := r.byCode.LoadOrStore(key, new(atomic.Int64))
	cnt.(*atomic.Int64).Add(1)

	if got.code == want.code && got.sub == want.sub && (got.code == codes.OK || got.msg == want.msg) && got.detail == "" {
		return
	}
	switch {
	case want.valid() && (got.code != codes.OK || got.sub == soakAnon):
		r.validRejected[kind].Add(1) // refused, or let through without its claims
	case !want.valid() && got.code == codes.OK && got.sub != soakAnon:
		r.invalidAccepted[kind].Add(1) // its claims reached a handler
	case want.code != codes.OK && got.code == codes.OK:
		r.invalidAccepted[kind].Add(1) // a protected handler ran
	default:
		// Another token's claims, another rejection than expected, or a
		// defective stream.
		r.mismatched[kind].Add(1)
	}
	r.mu.Lock()
	if len(r.samples) < 20 {
		r.samples = append(r.samples, fmt.Sprintf("%s on %s: got %v %q sub %q %s; want %v %q sub %q",
			soakKindNames[kind], method, got.code, got.msg, got.sub, got.detail, want.code, want.msg, want.sub))
	}
	r.mu.Unlock()
}

// chaos rotates and retires keys and breaks the JWKS endpoint in cycles
// until ctx ends. It only rotates or retires while the endpoint is healthy,
// and it publishes a new key to the clients only once the keyset has
// verified a token of it, and a retired key only once the keyset has
// dropped it.
func (r *soakRun) chaos(ctx context.Context) {
	modes := []grpcjwttest.Failure{grpcjwttest.Fail500, grpcjwttest.FailHang, grpcjwttest.FailGarbage, grpcjwttest.FailEmpty}
	defer r.is.SetFailure(grpcjwttest.FailNone)
	for i := 0; ; i++ {
		if !soakSleep(ctx, 150*time.Millisecond) || !r.rotate(ctx) ||
			!r.outage(ctx, modes[(2*i)%len(modes)], 400*time.Millisecond) ||
			!soakSleep(ctx, 150*time.Millisecond) || !r.retire(ctx) ||
			!r.outage(ctx, modes[(2*i+1)%len(modes)], 400*time.Millisecond) {
			return
		}
	}
}

// publish makes st the clients' state and waits until no call holds the
// state it replaces.
func (r *soakRun) publish(st *soakState) bool {
	old := r.state.Swap(st)
	deadline := time.Now().Add(soakPhaseBound)
	for old.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			r.t.Errorf("chaos: %d call(s) still hold an old state after %v", old.inflight.Load(), soakPhaseBound)
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// rotate publishes a new signing key; the old one enters its grace period.
func (r *soakRun) rotate(ctx context.Context) bool {
	old := r.state.Load()
	g := r.newGen(old.cur.n+1, r.is.Rotate())
	probe := g.pool[skValid][0]
	ok := r.await(ctx, "the keyset to learn key generation "+fmt.Sprint(g.n), func() (bool, error) {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := r.v.Verify(pctx, probe)
		if err != nil && !errors.Is(err, grpcjwt.ErrUnknownKey) {
			return false, err
		}
		return err == nil, nil
	})
	if !ok {
		return false
	}
	r.rotations.Add(1)
	return r.publish(&soakState{cur: g, prev: old.cur, retired: old.retired})
}

// retire ends the grace period of the previous key: the clients stop
// sending its tokens as valid, the issuer unpublishes it, and once the
// keyset has dropped it (a token of it, verified and cached before, is now
// refused) its tokens are sent as invalid.
func (r *soakRun) retire(ctx context.Context) bool {
	old := r.state.Load()
	prev := old.prev
	if prev == nil {
		return true
	}
	if !r.publish(&soakState{cur: old.cur, retired: old.retired}) {
		return false
	}
	r.is.RetireOldKeys()
	probe := prev.pool[skValid][0]
	ok := r.await(ctx, "the keyset to drop key generation "+fmt.Sprint(prev.n), func() (bool, error) {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := r.v.Verify(pctx, probe)
		if err != nil && !errors.Is(err, grpcjwt.ErrUnknownKey) {
			return false, err
		}
		return err != nil, nil
	})
	if !ok {
		return false
	}
	r.retirements.Add(1)
	retired := append([]*soakGen{prev}, old.retired...)
	if len(retired) > soakRetiredKept {
		retired = retired[:soakRetiredKept]
	}
	return r.publish(&soakState{cur: old.cur, retired: retired})
}

// outage makes the JWKS endpoint fail with f for d, then heals it.
func (r *soakRun) outage(ctx context.Context, f grpcjwttest.Failure, d time.Duration) bool {
	r.is.SetFailure(f)
	r.outages[f].Add(1)
	ok := soakSleep(ctx, d)
	r.is.SetFailure(grpcjwttest.FailNone)
	return ok
}

// await polls cond until it holds, ctx ends (false, silently) or
// soakPhaseBound passes (false, an error).
func (r *soakRun) await(ctx context.Context, what string, cond func() (bool, error)) bool {
	deadline := time.Now().Add(soakPhaseBound)
	for {
		done, err := cond()
		if err != nil {
			r.t.Errorf("chaos: waiting for %s: %v", what, err)
			return false
		}
		if done {
			return true
		}
		if time.Now().After(deadline) {
			r.t.Errorf("chaos: timed out waiting for %s", what)
			return false
		}
		if !soakSleep(ctx, 10*time.Millisecond) {
			return false
		}
	}
}

func soakSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *soakRun) report(dur, load, total time.Duration) {
	t := r.t
	var calls, valid, invalid, validRejected, invalidAccepted, mismatched int64
	t.Logf("soak: %v of load (asked %v), %v in all; %d unary + %d server-streaming + %d bidi clients over %d connections",
		load.Round(time.Millisecond), dur, total.Round(time.Millisecond), soakUnaryWorkers, soakOutWorkers, soakBidiWorkers, soakConns)
	t.Logf("%-22s %8s %8s %8s %9s %10s %9s %15s %16s %11s", "kind", "calls", "valid", "invalid", "accepted", "no-claims", "rejected", "valid-rejected", "invalid-accepted", "mismatched")
	for k := range soakKinds {
		c, a, n, rj := r.calls[k].Load(), r.accepted[k].Load(), r.anonymous[k].Load(), r.rejected[k].Load()
		vr, ia, mm := r.validRejected[k].Load(), r.invalidAccepted[k].Load(), r.mismatched[k].Load()
		wv := r.wantValid[k].Load()
		t.Logf("%-22s %8d %8d %8d %9d %10d %9d %15d %16d %11d", soakKindNames[k], c, wv, c-wv, a, n, rj, vr, ia, mm)
		calls += c
		valid += wv
		validRejected += vr
		invalidAccepted += ia
		mismatched += mm
	}
	var keys []string
	r.byCode.Range(func(k, _ any) bool {
		keys = append(keys, k.(string))
		return true
	})
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := r.byCode.Load(k)
		kind, outcome, _ := strings.Cut(k, "|")
		t.Logf("  %-22s -> %-60s %d", kind, outcome, v.(*atomic.Int64).Load())
	}
	invalid = calls - valid
	var outages []string
	for f, name := range map[grpcjwttest.Failure]string{grpcjwttest.Fail500: "500", grpcjwttest.FailHang: "hang",
		grpcjwttest.FailGarbage: "garbage", grpcjwttest.FailEmpty: "empty"} {
		outages = append(outages, fmt.Sprintf("%s x%d", name, r.outages[f].Load()))
	}
	slices.Sort(outages)
	// A valid call is one that must be accepted with claims: a valid token,
	// or one lacking only a scope on a method that asks for none.
	t.Logf("totals: %d calls (%.0f/s); %d valid (must be accepted with claims), %d invalid (must be rejected, or let through without claims on the public method); valid rejected %d, invalid accepted %d, other mismatches %d",
		calls, float64(calls)/load.Seconds(), valid, invalid, validRejected, invalidAccepted, mismatched)
	t.Logf("chaos: %d rotations, %d retirements, JWKS outages %s", r.rotations.Load(), r.retirements.Load(), strings.Join(outages, ", "))
	if validRejected+invalidAccepted+mismatched > 0 {
		r.mu.Lock()
		t.Errorf("valid rejected %d, invalid accepted %d, other mismatches %d; first ones:\n%s",
			validRejected, invalidAccepted, mismatched, strings.Join(r.samples, "\n"))
		r.mu.Unlock()
	}
	if calls == 0 {
		t.Errorf("no call completed")
	}
	if dur >= 5*time.Second {
		// Long enough for one rotation and one retirement.
		if r.rotations.Load() == 0 || r.retirements.Load() == 0 {
			t.Errorf("chaos made %d rotations and %d retirements in %v; want at least one of each", r.rotations.Load(), r.retirements.Load(), dur)
		}
		for _, k := range []soakKind{skValid, skValidPrev, skRetired, skForged, skUnknownKid} {
			if r.calls[k].Load() == 0 {
				t.Errorf("no call of kind %s", soakKindNames[k])
			}
		}
	}
}

func soakMiB(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// soakServer is a TestService whose handlers report, in header "x-sub" and
// in their responses, the subject of the claims in their context.
type soakServer struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64
}

func soakSub(ctx context.Context) string {
	if c, ok := grpcjwt.ClaimsFromContext(ctx); ok {
		return c.Subject
	}
	return soakAnon
}

func (s *soakServer) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	s.calls.Add(1)
	return &testpb.Empty{}, grpc.SetHeader(ctx, metadata.Pairs("x-sub", soakSub(ctx)))
}

func (s *soakServer) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	return &testpb.SimpleResponse{Username: soakSub(ctx)}, grpc.SetHeader(ctx, metadata.Pairs("x-sub", soakSub(ctx)))
}

func (s *soakServer) CacheableUnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	s.calls.Add(1)
	return &testpb.SimpleResponse{Username: soakSub(ctx)}, grpc.SetHeader(ctx, metadata.Pairs("x-sub", soakSub(ctx)))
}

func (s *soakServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, st testpb.TestService_StreamingOutputCallServer) error {
	s.calls.Add(1)
	sub := soakSub(st.Context())
	if err := st.SetHeader(metadata.Pairs("x-sub", sub)); err != nil {
		return err
	}
	for range req.GetResponseParameters() {
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(sub)}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *soakServer) FullDuplexCall(st testpb.TestService_FullDuplexCallServer) error {
	s.calls.Add(1)
	sub := soakSub(st.Context())
	if err := st.SetHeader(metadata.Pairs("x-sub", sub)); err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(sub)}}); err != nil {
			return err
		}
	}
}

func soakStatus(err error) (codes.Code, string) {
	s := status.Convert(err)
	return s.Code(), s.Message()
}

// soakUnary calls a unary method and checks that the response names the
// subject the header names.
func soakUnary(ctx context.Context, c testpb.TestServiceClient, method string) soakGot {
	var got soakGot
	var hdr metadata.MD
	var err error
	var resp *testpb.SimpleResponse
	switch method {
	case soakPublic:
		_, err = c.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&hdr))
	case soakAudMethod:
		resp, err = c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
	case soakScoped:
		resp, err = c.CacheableUnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&hdr))
	}
	got.code, got.msg = soakStatus(err)
	got.sub = strings.Join(hdr.Get("x-sub"), ",")
	if err == nil && resp != nil && resp.GetUsername() != got.sub {
		got.detail = fmt.Sprintf("(response subject %q)", resp.GetUsername())
	}
	return got
}

// soakCallOut makes a server-streaming call for soakStreamMsgs messages.
func soakCallOut(ctx context.Context, c testpb.TestServiceClient) soakGot {
	var got soakGot
	req := &testpb.StreamingOutputCallRequest{}
	for range soakStreamMsgs {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{})
	}
	st, err := c.StreamingOutputCall(ctx, req)
	if err != nil {
		got.code, got.msg = soakStatus(err)
		return got
	}
	subs := soakDrain(st.Recv, &got, nil)
	hdr, _ := st.Header()
	got.sub = strings.Join(hdr.Get("x-sub"), ",")
	got.detail = soakCheckSubs(got, subs)
	return got
}

// soakCallBidi makes a bidi call, one message at a time.
func soakCallBidi(ctx context.Context, c testpb.TestServiceClient) soakGot {
	var got soakGot
	st, err := c.FullDuplexCall(ctx)
	if err != nil {
		got.code, got.msg = soakStatus(err)
		return got
	}
	var subs []string
	failed := false
	for range soakStreamMsgs {
		if err := st.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
			break // the status comes from Recv
		}
		m, err := st.Recv()
		if err != nil {
			if err != io.EOF {
				got.code, got.msg = soakStatus(err)
			}
			failed = true
			break
		}
		subs = append(subs, string(m.GetPayload().GetBody()))
	}
	if !failed {
		st.CloseSend()
		subs = soakDrain(st.Recv, &got, subs)
	}
	hdr, _ := st.Header()
	got.sub = strings.Join(hdr.Get("x-sub"), ",")
	got.detail = soakCheckSubs(got, subs)
	return got
}

// soakDrain appends to subs the subject of every message recv returns until
// the stream ends, and records in got the status it ended with, if not OK.
func soakDrain(recv func() (*testpb.StreamingOutputCallResponse, error), got *soakGot, subs []string) []string {
	for {
		m, err := recv()
		if err != nil {
			if err != io.EOF {
				got.code, got.msg = soakStatus(err)
			}
			return subs
		}
		subs = append(subs, string(m.GetPayload().GetBody()))
	}
}

// soakCheckSubs checks a stream's messages: soakStreamMsgs of them, each
// naming the header's subject, when the call succeeded; none otherwise.
func soakCheckSubs(got soakGot, subs []string) string {
	if got.code != codes.OK {
		if len(subs) > 0 {
			return fmt.Sprintf("(%d messages before the error)", len(subs))
		}
		return ""
	}
	if len(subs) != soakStreamMsgs {
		return fmt.Sprintf("(%d messages, want %d)", len(subs), soakStreamMsgs)
	}
	for _, s := range subs {
		if s != got.sub {
			return fmt.Sprintf("(message subject %q)", s)
		}
	}
	return ""
}

// soakLogCounter is a slog.Handler that counts records by message.
type soakLogCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *soakLogCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *soakLogCounter) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *soakLogCounter) WithGroup(string) slog.Handler            { return l }
func (l *soakLogCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[r.Message]++
	return nil
}

func (l *soakLogCounter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for m, n := range l.n {
		parts = append(parts, fmt.Sprintf("%q x%d", m, n))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// soakGoroutines returns the stack of every goroutine, by id.
func soakGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "[")
		out[strings.TrimSpace(head)] = g // "goroutine 123"
	}
	return out
}

// soakAwaitNoLeaks polls, up to bound, until no goroutine started since
// before runs code of grpcjwt (or its tests), gRPC or net/http, and returns
// the stacks of those still running at the bound.
func soakAwaitNoLeaks(before map[string]string, bound time.Duration) []string {
	deadline := time.Now().Add(bound)
	for {
		var leaked []string
		for id, g := range soakGoroutines() {
			if _, old := before[id]; old {
				continue
			}
			if strings.Contains(g, "github.com/grpcjwt/grpcjwt") || strings.Contains(g, "google.golang.org/grpc") ||
				strings.Contains(g, "net/http") || strings.Contains(g, "internal/poll") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}
