package grpcjwt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// The helpers of this file carry a "ks" prefix so that they do not collide
// with helpers of other test files in the package.

const ksAudience = "api://keyset-test"

// ksSafety bounds every wait for a signal, so that a bug fails the test with
// a message instead of hanging it until the global test timeout. It is never
// reached when the code works.
const ksSafety = 10 * time.Second

// checkNoKeysetGoroutines fails t if a goroutine started by a remote keyset
// (its background loop or a fetch) is still alive. A goroutine takes a
// moment to exit after the Close that waited for it signalled its end, so
// the check polls with a deadline. Keysets of tests running in parallel
// would be reported too: call it from tests that do not use t.Parallel.
func checkNoKeysetGoroutines(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		leaked := keysetGoroutines()
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d keyset goroutine(s) still running:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
			return
		}
		<-tick.C
	}
}

// keysetGoroutines returns the stacks of the goroutines that a remote keyset
// started: those created by NewRemoteKeyset or by a method of remoteSource or
// Keyset, or running remoteSource.run. A caller's own goroutine waiting in
// fetchShared is not one of them.
func keysetGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	const pkg = "github.com/grpcjwt/grpcjwt."
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "created by "+pkg+"NewRemoteKeyset") ||
			strings.Contains(g, "created by "+pkg+"(*remoteSource)") ||
			strings.Contains(g, "created by "+pkg+"(*Keyset)") ||
			strings.Contains(g, pkg+"(*remoteSource).run(") {
			out = append(out, g)
		}
	}
	return out
}

// ksLeakCheck registers checkNoKeysetGoroutines to run after every other
// cleanup of t (cleanups run last-registered first): call it first.
func ksLeakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { checkNoKeysetGoroutines(t) })
}

// ksAwait waits for ch to be closed or to deliver a value.
func ksAwait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(ksSafety):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// ksEventually polls cond until it holds. Only for conditions that have no
// signal to wait on.
func ksEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ksSafety)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// ksLogs counts the records of a slog.Logger.
type ksLogs struct {
	mu   sync.Mutex
	recs []ksLogRecord
}

type ksLogRecord struct {
	level slog.Level
	msg   string
}

func (l *ksLogs) logger() *slog.Logger { return slog.New(ksLogHandler{l}) }

// count returns how many records of level have a message containing substr.
func (l *ksLogs) count(level slog.Level, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.level == level && strings.Contains(r.msg, substr) {
			n++
		}
	}
	return n
}

type ksLogHandler struct{ l *ksLogs }

func (h ksLogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h ksLogHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h ksLogHandler) WithGroup(string) slog.Handler            { return h }
func (h ksLogHandler) Handle(_ context.Context, r slog.Record) error {
	h.l.mu.Lock()
	h.l.recs = append(h.l.recs, ksLogRecord{r.Level, r.Message})
	h.l.mu.Unlock()
	return nil
}

// Messages logged by the keyset.
const (
	ksMsgFetchFailed = "JWKS fetch failed"
	ksMsgRecovered   = "JWKS fetch recovered"
	ksMsgSkipped     = "skipping"
)

func ksQuiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ksClock is a settable clock for withKeysetClock and WithClock.
type ksClock struct {
	mu sync.Mutex
	t  time.Time
}

func newKsClock() *ksClock { return &ksClock{t: time.Now()} }

func (c *ksClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *ksClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ksWaiters signals when a given number of Verify calls wait for a shared
// fetch: a waiter in fetchShared selects on its ctx's Done, so a ctx from
// ctx() counts each caller that reached that wait.
type ksWaiters struct {
	want int64
	n    atomic.Int64
	all  chan struct{}
}

func newKsWaiters(n int) *ksWaiters { return &ksWaiters{want: int64(n), all: make(chan struct{})} }

func (w *ksWaiters) ctx(parent context.Context) context.Context { return ksWaiterCtx{parent, w} }

type ksWaiterCtx struct {
	context.Context
	w *ksWaiters
}

func (c ksWaiterCtx) Done() <-chan struct{} {
	if c.w.n.Add(1) == c.w.want {
		close(c.w.all)
	}
	return c.Context.Done()
}

// ksNewIssuer starts a test issuer that is closed at the end of the test.
func ksNewIssuer(t *testing.T, opts ...testkit.Option) *testkit.Issuer {
	t.Helper()
	is := testkit.NewIssuer(opts...)
	t.Cleanup(is.Close)
	return is
}

// ksRemote builds a remote keyset on url, quiet unless opts set a logger,
// and closes it at the end of the test.
func ksRemote(t *testing.T, url string, client *http.Client, opts ...KeysetOption) *Keyset {
	t.Helper()
	all := append([]KeysetOption{WithHTTPClient(client), WithKeysetLogger(ksQuiet())}, opts...)
	ks, err := NewRemoteKeyset(t.Context(), url, all...)
	if err != nil {
		t.Fatalf("NewRemoteKeyset: %v", err)
	}
	t.Cleanup(func() { ksClose(t, ks) })
	return ks
}

// ksClose closes ks, failing t if Close does not return.
func ksClose(t *testing.T, ks *Keyset) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		ks.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(ksSafety):
		t.Errorf("Keyset.Close did not return within %v", ksSafety)
	}
}

// ksIssuerKeyset builds a remote keyset on the JWKS of is.
func ksIssuerKeyset(t *testing.T, is *testkit.Issuer, opts ...KeysetOption) *Keyset {
	t.Helper()
	return ksRemote(t, is.JWKSURL(), is.HTTPClient(), opts...)
}

// ksVerifier returns a verifier of tokens from iss for ksAudience.
func ksVerifier(t *testing.T, ks *Keyset, iss string, opts ...VerifierOption) *Verifier {
	t.Helper()
	v, err := NewVerifier(ks, append([]VerifierOption{WithIssuer(iss), WithAudience(ksAudience)}, opts...)...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// ksNoCache turns the verifier's token cache off, so that every Verify looks
// its key up in the keyset.
func ksNoCache() VerifierOption { return WithTokenCache(0, 0, 0) }

// ksClaims returns valid claims for a token from iss.
func ksClaims(iss string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": iss, "sub": "user-1", "aud": ksAudience,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// ksToken mints a valid token with the issuer's current signing key.
func ksToken(is *testkit.Issuer) string { return is.Mint(is.Claims(ksAudience)) }

// ksForeignKey signs tokens whose kid no keyset in these tests holds.
var ksForeignKey = testkit.NewKey("ES256")

// ksForeign returns a token from is naming kid, which is unknown to the
// issuer, signed by a key the issuer never published.
func ksForeign(is *testkit.Issuer, kid string) string {
	return testkit.Sign(ksForeignKey, map[string]any{"kid": kid}, is.Claims(ksAudience))
}

// ksVerifyOK fails the test unless v accepts tok.
func ksVerifyOK(t *testing.T, v *Verifier, tok, what string) *Claims {
	t.Helper()
	c, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("%s: Verify: got %v, want success", what, err)
	}
	return c
}

// ksVerifyErr fails the test unless v rejects tok with an error matching
// want (errors.Is) and none of notWant.
func ksVerifyErr(t *testing.T, v *Verifier, tok string, want error, notWant ...error) error {
	t.Helper()
	_, err := v.Verify(t.Context(), tok)
	if !errors.Is(err, want) {
		t.Fatalf("Verify: got %v, want %v", err, want)
	}
	for _, nw := range notWant {
		if errors.Is(err, nw) {
			t.Fatalf("Verify: got %v, which must not match %v", err, nw)
		}
	}
	return err
}

// ksJWK returns the public JWK of k, changed by edit if not nil.
func ksJWK(t *testing.T, k *testkit.Key, edit func(m map[string]any)) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}

// ksDoc returns a JWK Set document holding keys in order.
func ksDoc(keys ...json.RawMessage) []byte {
	if keys == nil {
		keys = []json.RawMessage{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// ksServer is a JWKS endpoint whose every response the test controls: the
// body, extra headers, and a gate that holds requests until released. It
// counts requests and signals each on hit.
type ksServer struct {
	*httptest.Server
	hits   atomic.Int64
	hit    chan struct{} // one value per request, never blocking the handler
	accept atomic.Value  // Accept header of the last request
	stop   chan struct{} // closed at cleanup: releases every held request

	mu     sync.Mutex
	body   func() []byte
	header http.Header
	gate   chan struct{}
}

func ksNewServer(t *testing.T, body func() []byte) *ksServer {
	t.Helper()
	s := &ksServer{hit: make(chan struct{}, 4096), stop: make(chan struct{}), body: body, header: http.Header{}}
	s.Server = httptest.NewServer(s)
	t.Cleanup(func() {
		close(s.stop)
		s.Close()
	})
	return s
}

func (s *ksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.accept.Store(r.Header.Get("Accept"))
	select {
	case s.hit <- struct{}{}:
	default:
	}
	s.mu.Lock()
	gate, body, header := s.gate, s.body, s.header.Clone()
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-s.stop:
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Write(body())
}

// hold makes requests wait until release is called.
func (s *ksServer) hold() (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(gate)
		})
	}
}

func (s *ksServer) url() string { return s.URL + "/jwks" }

// ksMem serves a JWK Set from memory, as an http.RoundTripper, for tests
// inside a synctest bubble (see TestKeysetBackgroundRefreshSchedule). It
// records the fake time and status of every request.
type ksMem struct {
	mu       sync.Mutex
	body     []byte
	cacheCtl string
	status   int
	log      []ksMemHit
}

type ksMemHit struct {
	at     time.Time
	status int
}

func (m *ksMem) RoundTrip(req *http.Request) (*http.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, ksMemHit{time.Now(), m.status})
	h := http.Header{"Content-Type": {"application/jwk-set+json"}}
	if m.cacheCtl != "" {
		h.Set("Cache-Control", m.cacheCtl)
	}
	return &http.Response{
		StatusCode: m.status, Header: h, Request: req,
		Body: io.NopCloser(bytes.NewReader(m.body)), ContentLength: int64(len(m.body)),
	}, nil
}

func (m *ksMem) setStatus(code int) {
	m.mu.Lock()
	m.status = code
	m.mu.Unlock()
}

func (m *ksMem) hits() []ksMemHit {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ksMemHit(nil), m.log...)
}

// --- 1. Construction ---------------------------------------------------------

func TestKeysetNewRemoteFetchesAtConstruction(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	s := ksNewServer(t, is.JWKS)
	ks := ksRemote(t, s.url(), s.Client())
	if got := s.hits.Load(); got != 1 {
		t.Fatalf("JWKS requests after NewRemoteKeyset: got %d, want 1", got)
	}
	if got, _ := s.accept.Load().(string); !strings.Contains(got, "application/jwk-set+json") {
		t.Errorf("Accept header: got %q, want it to name application/jwk-set+json", got)
	}
	v := ksVerifier(t, ks, is.URL())
	ksVerifyOK(t, v, ksToken(is), "token of the held key")
	if got := s.hits.Load(); got != 1 {
		t.Errorf("JWKS requests after verifying a token of a held key: got %d, want 1", got)
	}
}

func TestKeysetNewRemoteErrors(t *testing.T) {
	ksLeakCheck(t)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/jwks"
	down.Close() // nothing listens there any more

	is500 := ksNewIssuer(t)
	is500.SetFailure(testkit.Fail500)
	isGarbage := ksNewIssuer(t)
	isGarbage.SetFailure(testkit.FailGarbage)
	isHang := ksNewIssuer(t)
	isHang.SetFailure(testkit.FailHang)
	good := ksNewIssuer(t)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name string
		ctx  context.Context // t.Context() if nil
		url  string
		opts []KeysetOption
		// wantErr is the sentinel the error must match; nil for errors of
		// configuration, which match none (any non-nil error then passes).
		wantErr  error
		wantErr2 error // a second error the chain must hold, if not nil
	}{
		{name: "empty URL", url: ""},
		{name: "relative URL", url: "/jwks"},
		{name: "no scheme", url: "issuer.example/jwks"},
		{name: "ftp scheme", url: "ftp://issuer.example/jwks"},
		{name: "file scheme", url: "file:///etc/jwks.json"},
		{name: "no host", url: "https:///jwks"},
		{name: "a port but no host name", url: "https://:443/jwks"},
		{name: "unparsable URL", url: "http://[::1"},
		{name: "unreachable", url: downURL, wantErr: ErrKeysUnavailable},
		{name: "HTTP 500", url: is500.JWKSURL(), opts: []KeysetOption{WithHTTPClient(is500.HTTPClient())}, wantErr: ErrKeysUnavailable},
		{name: "garbage body", url: isGarbage.JWKSURL(), opts: []KeysetOption{WithHTTPClient(isGarbage.HTTPClient())}, wantErr: ErrKeysUnavailable},
		{name: "hang past fetch timeout", url: isHang.JWKSURL(),
			opts:    []KeysetOption{WithHTTPClient(isHang.HTTPClient()), WithFetchTimeout(50 * time.Millisecond)},
			wantErr: ErrKeysUnavailable, wantErr2: context.DeadlineExceeded},
		{name: "canceled ctx", ctx: canceled, url: good.JWKSURL(), opts: []KeysetOption{WithHTTPClient(good.HTTPClient())},
			wantErr: ErrKeysUnavailable, wantErr2: context.Canceled},
		{name: "nil HTTP client", url: good.JWKSURL(), opts: []KeysetOption{WithHTTPClient(nil)}},
		{name: "zero fetch timeout", url: good.JWKSURL(), opts: []KeysetOption{WithFetchTimeout(0)}},
		{name: "zero max body", url: good.JWKSURL(), opts: []KeysetOption{WithMaxBodySize(0)}},
		{name: "zero max keys", url: good.JWKSURL(), opts: []KeysetOption{WithMaxKeys(0)}},
		{name: "zero refresh interval", url: good.JWKSURL(), opts: []KeysetOption{WithRefreshInterval(0)}},
		{name: "refresh bounds reversed", url: good.JWKSURL(), opts: []KeysetOption{WithRefreshBounds(time.Hour, time.Minute)}},
		{name: "refresh bounds zero", url: good.JWKSURL(), opts: []KeysetOption{WithRefreshBounds(0, time.Minute)}},
		{name: "negative unknown-key interval", url: good.JWKSURL(), opts: []KeysetOption{WithUnknownKeyRefreshInterval(-time.Second)}},
		{name: "negative max staleness", url: good.JWKSURL(), opts: []KeysetOption{WithMaxStaleness(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				// Far longer than any fetch here should take: the error
				// must come from the keyset, not from this deadline.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(t.Context(), ksSafety)
				defer cancel()
				defer func() {
					if ctx.Err() != nil {
						t.Error("NewRemoteKeyset ran into the caller's deadline: its fetch timeout did not bound the first fetch")
					}
				}()
			}
			opts := append([]KeysetOption{WithKeysetLogger(ksQuiet())}, tt.opts...)
			ks, err := NewRemoteKeyset(ctx, tt.url, opts...)
			if err == nil {
				ks.Close()
				t.Fatal("NewRemoteKeyset: got nil error, want an error")
			}
			if ks != nil {
				t.Errorf("NewRemoteKeyset returned a keyset beside error %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr2 != nil && !errors.Is(err, tt.wantErr2) {
				t.Errorf("got %v, want it to wrap %v", err, tt.wantErr2)
			}
			if tt.wantErr == nil && errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("configuration error %v must not read as an outage", err)
			}
			// A constructor's error goes to the operator: it names the
			// URL to fix (a token's verification never does).
			if tt.url != "" && tt.opts == nil && !strings.Contains(err.Error(), tt.url) {
				t.Errorf("error text %q does not name the JWKS URL %q", err, tt.url)
			}
		})
	}
}

func TestKeysetLazyFetch(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	s := ksNewServer(t, is.JWKS)
	release := s.hold()
	defer release()

	// The server holds every request: a constructor that fetched would not
	// return before release.
	ks, err := NewRemoteKeyset(t.Context(), s.url(), WithLazyFetch(), WithHTTPClient(s.Client()), WithKeysetLogger(ksQuiet()))
	if err != nil {
		t.Fatalf("NewRemoteKeyset(WithLazyFetch) with a held JWKS: %v", err)
	}
	t.Cleanup(func() { ksClose(t, ks) })
	ksAwait(t, s.hit, "the background first fetch")
	if ks.cur.Load() != nil {
		t.Fatal("keys loaded before the held fetch completed")
	}

	v := ksVerifier(t, ks, is.URL())
	w := newKsWaiters(1)
	res := make(chan error, 1)
	go func() {
		_, err := v.Verify(w.ctx(t.Context()), ksToken(is))
		res <- err
	}()
	ksAwait(t, w.all, "Verify to wait for the first fetch")
	select {
	case err := <-res:
		t.Fatalf("Verify returned (%v) while the first fetch was held", err)
	default:
	}
	release()
	if err := ksAwait(t, res, "Verify"); err != nil {
		t.Fatalf("first Verify after the lazy fetch: %v", err)
	}
	if got := s.hits.Load(); got != 1 {
		t.Errorf("JWKS requests: got %d, want 1 (the Verify shares the background fetch)", got)
	}
}

func TestKeysetWaiterGivingUpHarmsNoOne(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	s := ksNewServer(t, is.JWKS)
	release := s.hold()
	defer release()
	ks := ksRemote(t, s.url(), s.Client(), WithLazyFetch())
	v := ksVerifier(t, ks, is.URL())
	tok := ksToken(is)
	ksAwait(t, s.hit, "the first fetch")

	impatient, giveUp := context.WithCancel(t.Context())
	w1, w2 := newKsWaiters(1), newKsWaiters(1)
	res1, res2 := make(chan error, 1), make(chan error, 1)
	go func() { _, err := v.Verify(w1.ctx(impatient), tok); res1 <- err }()
	go func() { _, err := v.Verify(w2.ctx(t.Context()), tok); res2 <- err }()
	ksAwait(t, w1.all, "the impatient caller to wait")
	ksAwait(t, w2.all, "the patient caller to wait")

	giveUp()
	err := ksAwait(t, res1, "the impatient caller")
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("caller that gave up: got %v, want ErrKeysUnavailable wrapping context.Canceled", err)
	}
	release()
	if err := ksAwait(t, res2, "the patient caller"); err != nil {
		t.Fatalf("caller still waiting after another gave up: got %v, want success", err)
	}
	if got := s.hits.Load(); got != 1 {
		t.Errorf("JWKS requests: got %d, want 1", got)
	}
}

func TestKeysetConstructorContextBoundsOnlyFirstFetch(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	ctx, cancel := context.WithCancel(t.Context())
	ks, err := NewRemoteKeyset(ctx, is.JWKSURL(), WithHTTPClient(is.HTTPClient()), WithKeysetLogger(ksQuiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ksClose(t, ks) })
	cancel() // go-oidc kept this ctx and failed every later fetch (its issues #339, #428)

	v := ksVerifier(t, ks, is.URL())
	is.Rotate()
	ksVerifyOK(t, v, ksToken(is), "token of a key published after the constructor's ctx ended")
	if got := is.JWKSHits(); got != 2 {
		t.Errorf("JWKS requests: got %d, want 2", got)
	}
}

// --- 2. Rotation -------------------------------------------------------------

func TestKeysetRotation(t *testing.T) {
	tests := []struct {
		name       string
		retire     bool  // RetireOldKeys after Rotate (hard rotation)
		wantOldErr error // for a token of the old key once the keyset refreshed
	}{
		{name: "with grace period", retire: false, wantOldErr: nil},
		{name: "hard", retire: true, wantOldErr: ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ksLeakCheck(t)
			is := ksNewIssuer(t)
			ks := ksIssuerKeyset(t, is, WithUnknownKeyRefreshInterval(time.Hour))
			v := ksVerifier(t, ks, is.URL()) // with the default token cache
			oldTok := ksToken(is)
			ksVerifyOK(t, v, oldTok, "token of the first key")

			is.Rotate()
			if tt.retire {
				is.RetireOldKeys()
			}
			newTok := ksToken(is)
			ksVerifyOK(t, v, newTok, "first request with the new key")
			if got := is.JWKSHits(); got != 2 {
				t.Errorf("JWKS requests: got %d, want 2 (one refresh for the new kid)", got)
			}
			_, err := v.Verify(t.Context(), oldTok)
			if !errors.Is(err, tt.wantOldErr) || (tt.wantOldErr == nil) != (err == nil) {
				t.Errorf("token of the old key after the refresh: got %v, want %v", err, tt.wantOldErr)
			}
			if err != nil && errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("retired key: got %v, must not read as an outage", err)
			}
			ksVerifyOK(t, v, newTok, "new key again")
			if got := is.JWKSHits(); got != 2 {
				t.Errorf("JWKS requests at the end: got %d, want 2", got)
			}
		})
	}
}

// --- 3. De-duplication -------------------------------------------------------

func TestKeysetConcurrentUnknownKidSingleFetch(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	s := ksNewServer(t, is.JWKS)
	// No rate limit: only de-duplication can keep the fetch count at one.
	ks := ksRemote(t, s.url(), s.Client(), WithUnknownKeyRefreshInterval(0))
	v := ksVerifier(t, ks, is.URL(), ksNoCache())

	is.Rotate() // published, but unknown to the keyset
	tok := ksToken(is)
	release := s.hold()
	defer release()

	const n = 1000
	w := newKsWaiters(n)
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			_, err := v.Verify(w.ctx(t.Context()), tok)
			errs <- err
		})
	}
	close(start)
	// Every caller waits on the one held fetch before the server answers, so
	// none can see the new key early, or start a fetch of its own late.
	ksAwait(t, w.all, fmt.Sprintf("%d callers to wait for the shared fetch", n))
	release()
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed++; failed <= 3 {
				t.Errorf("Verify: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d concurrent calls failed", failed, n)
	}
	if got := s.hits.Load(); got != 2 {
		t.Errorf("JWKS requests: got %d, want 2 (construction and one shared refresh)", got)
	}
}

// --- 4. Rate limit -----------------------------------------------------------

func TestKeysetUnknownKidFlood(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	// An interval of an hour: a call that waited for the limiter would not
	// let this test finish.
	ks := ksIssuerKeyset(t, is, WithUnknownKeyRefreshInterval(time.Hour))
	v := ksVerifier(t, ks, is.URL(), ksNoCache())

	const n = 500
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		tok := ksForeign(is, fmt.Sprintf("forged-%d", i))
		wg.Go(func() {
			<-start
			_, err := v.Verify(t.Context(), tok)
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("forged kid: got %v, want ErrUnknownKey (and not ErrKeysUnavailable)", err)
		}
	}
	// Construction, one on-demand refresh and at most one follow-up for
	// callers that joined the first refresh (it may predate their key).
	if got := is.JWKSHits(); got < 2 || got > 3 {
		t.Errorf("JWKS requests after %d forged kids: got %d, want 2 or 3", n, got)
	}
	hits := is.JWKSHits()
	// Later calls within the interval are refused by the limiter at once.
	err := ksVerifyErr(t, v, ksForeign(is, "forged-late"), ErrUnknownKey, ErrKeysUnavailable)
	if !errors.Is(err, errRateLimited) {
		t.Errorf("forged kid within the interval: got %v, want it to report the rate limit", err)
	}
	ksVerifyOK(t, v, ksToken(is), "held key during the flood")
	if got := is.JWKSHits(); got != hits {
		t.Errorf("JWKS requests at the end: got %d, want %d", got, hits)
	}
}

func TestKeysetUnknownKidRateLimitWindow(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	clk := newKsClock()
	const interval = time.Minute
	ks := ksIssuerKeyset(t, is, WithUnknownKeyRefreshInterval(interval), withKeysetClock(clk.Now))
	v := ksVerifier(t, ks, is.URL(), ksNoCache())

	flood := func(round string) {
		t.Helper()
		for i := range 50 {
			ksVerifyErr(t, v, ksForeign(is, fmt.Sprintf("%s-%d", round, i)), ErrUnknownKey, ErrKeysUnavailable)
		}
	}
	steps := []struct {
		name     string
		advance  time.Duration
		wantHits int
	}{
		{"first flood", 0, 2},
		{"just inside the interval", interval - time.Nanosecond, 2},
		{"interval elapsed", time.Nanosecond, 3},
		{"inside the next interval", interval / 2, 3},
		{"next interval elapsed", interval / 2, 4},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		flood(st.name)
		if got := is.JWKSHits(); got != st.wantHits {
			t.Fatalf("%s: JWKS requests: got %d, want %d", st.name, got, st.wantHits)
		}
	}
}

// --- 5. Refresh schedule -----------------------------------------------------

func TestKeysetRefreshInterval(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	httpTime := func(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
	const (
		lo  = time.Minute
		hi  = time.Hour
		def = 30 * time.Minute
	)
	tests := []struct {
		name     string
		header   http.Header
		defaultD time.Duration // WithRefreshInterval; def if zero
		wantTTL  time.Duration // cacheLifetime
		wantOK   bool          // cacheLifetime found a lifetime
		want     time.Duration // refreshInterval, clamped to [lo, hi]
	}{
		{name: "max-age", header: http.Header{"Cache-Control": {"max-age=600"}}, wantTTL: 10 * time.Minute, wantOK: true, want: 10 * time.Minute},
		{name: "max-age among other directives", header: http.Header{"Cache-Control": {"public, max-age=300, must-revalidate"}}, wantTTL: 5 * time.Minute, wantOK: true, want: 5 * time.Minute},
		{name: "directive names ignore case", header: http.Header{"Cache-Control": {"Public, MAX-AGE=300"}}, wantTTL: 5 * time.Minute, wantOK: true, want: 5 * time.Minute},
		{name: "quoted max-age", header: http.Header{"Cache-Control": {`max-age="300"`}}, wantTTL: 5 * time.Minute, wantOK: true, want: 5 * time.Minute},
		{name: "max-age in a second header line", header: http.Header{"Cache-Control": {"public", "max-age=120"}}, wantTTL: 2 * time.Minute, wantOK: true, want: 2 * time.Minute},
		{name: "first max-age wins", header: http.Header{"Cache-Control": {"max-age=120, max-age=900"}}, wantTTL: 2 * time.Minute, wantOK: true, want: 2 * time.Minute},
		{name: "max-age zero clamps to min", header: http.Header{"Cache-Control": {"max-age=0"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "max-age below min", header: http.Header{"Cache-Control": {"max-age=5"}}, wantTTL: 5 * time.Second, wantOK: true, want: lo},
		{name: "max-age above max", header: http.Header{"Cache-Control": {"max-age=86400"}}, wantTTL: 24 * time.Hour, wantOK: true, want: hi},
		{name: "max-age overflowing int64 reads as the cap", header: http.Header{"Cache-Control": {"max-age=99999999999999999999999"}}, wantTTL: maxCacheLifetime, wantOK: true, want: hi},
		{name: "negative max-age is invalid: stale", header: http.Header{"Cache-Control": {"max-age=-5"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "non-numeric max-age is invalid: stale", header: http.Header{"Cache-Control": {"max-age=soon"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "no-store", header: http.Header{"Cache-Control": {"no-store"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "no-cache", header: http.Header{"Cache-Control": {"no-cache"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "no-cache before max-age", header: http.Header{"Cache-Control": {"no-cache, max-age=600"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "no-store after max-age", header: http.Header{"Cache-Control": {"max-age=600, no-store"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "no-cache in a later header line", header: http.Header{"Cache-Control": {"max-age=600", "no-cache"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "max-age beats Expires", header: http.Header{"Cache-Control": {"max-age=600"}, "Expires": {httpTime(now.Add(50 * time.Minute))}, "Date": {httpTime(now)}}, wantTTL: 10 * time.Minute, wantOK: true, want: 10 * time.Minute},
		{name: "Expires with Date", header: http.Header{"Expires": {httpTime(now.Add(20 * time.Minute))}, "Date": {httpTime(now)}}, wantTTL: 20 * time.Minute, wantOK: true, want: 20 * time.Minute},
		{name: "Expires relative to Date, not the local clock", header: http.Header{"Expires": {httpTime(now.Add(-45 * time.Minute))}, "Date": {httpTime(now.Add(-1 * time.Hour))}}, wantTTL: 15 * time.Minute, wantOK: true, want: 15 * time.Minute},
		{name: "Expires without Date uses now", header: http.Header{"Expires": {httpTime(now.Add(40 * time.Minute))}}, wantTTL: 40 * time.Minute, wantOK: true, want: 40 * time.Minute},
		{name: "Expires in the past", header: http.Header{"Expires": {httpTime(now.Add(-time.Hour))}, "Date": {httpTime(now)}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "invalid Expires means expired", header: http.Header{"Expires": {"0"}}, wantTTL: 0, wantOK: true, want: lo},
		{name: "Expires far ahead clamps to max", header: http.Header{"Expires": {httpTime(now.Add(48 * time.Hour))}, "Date": {httpTime(now)}}, wantTTL: 48 * time.Hour, wantOK: true, want: hi},
		{name: "no caching headers: default", header: http.Header{}, wantOK: false, want: def},
		{name: "unrelated directives only: default", header: http.Header{"Cache-Control": {"public, must-revalidate"}}, wantOK: false, want: def},
		{name: "default above max clamps", header: http.Header{}, defaultD: 2 * time.Hour, wantOK: false, want: hi},
		{name: "default below min clamps", header: http.Header{}, defaultD: time.Second, wantOK: false, want: lo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ttl, ok := cacheLifetime(tt.header, now)
			if ttl != tt.wantTTL || ok != tt.wantOK {
				t.Errorf("cacheLifetime: got %v, %v, want %v, %v", ttl, ok, tt.wantTTL, tt.wantOK)
			}
			d := tt.defaultD
			if d == 0 {
				d = def
			}
			o, err := buildKeysetOptions([]KeysetOption{WithRefreshBounds(lo, hi), WithRefreshInterval(d)})
			if err != nil {
				t.Fatal(err)
			}
			r := &remoteSource{o: o}
			got := r.refreshInterval(tt.header, now)
			if got != tt.want {
				t.Errorf("refreshInterval: got %v, want %v", got, tt.want)
			}
			for range 200 {
				if j := r.jitter(got); j < got-got/10 || j > got {
					t.Fatalf("jitter(%v) = %v, want within [%v, %v]", got, j, got-got/10, got)
				}
			}
		})
	}
}

func TestKeysetBackoff(t *testing.T) {
	tests := []struct {
		name        string
		prev, limit time.Duration
		lo, hi      time.Duration // the result lies in [lo, hi]
	}{
		{name: "first failure", prev: 0, limit: 5 * time.Minute, lo: 800 * time.Millisecond, hi: time.Second},
		{name: "doubles", prev: 4 * time.Second, limit: 5 * time.Minute, lo: 6400 * time.Millisecond, hi: 8 * time.Second},
		{name: "capped by the limit", prev: time.Hour, limit: time.Minute, lo: 48 * time.Second, hi: time.Minute},
		{name: "limit below one second", prev: 0, limit: 100 * time.Millisecond, lo: 80 * time.Millisecond, hi: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				if got := nextBackoff(tt.prev, tt.limit); got < tt.lo || got > tt.hi {
					t.Fatalf("nextBackoff(%v, %v) = %v, want within [%v, %v]", tt.prev, tt.limit, got, tt.lo, tt.hi)
				}
			}
		})
	}
}

// TestKeysetBackgroundRefreshSchedule runs the background loop on
// testing/synctest's fake clock. The JWKS comes from an in-memory
// http.RoundTripper, not httptest: a goroutine blocked on a real socket is
// not durably blocked, so synctest would never advance its clock past a
// real network fetch. time.Sleep inside the bubble only advances that fake
// clock; it waits for nothing.
func TestKeysetBackgroundRefreshSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := testkit.NewKey("ES256")
		mem := &ksMem{body: ksDoc(ksJWK(t, k, nil)), cacheCtl: "max-age=600", status: http.StatusOK}
		logs := &ksLogs{}
		const iss = "https://issuer.example"
		ks, err := NewRemoteKeyset(t.Context(), iss+"/jwks",
			WithHTTPClient(&http.Client{Transport: mem}),
			WithRefreshBounds(time.Minute, time.Hour),
			WithKeysetLogger(logs.logger()))
		if err != nil {
			t.Fatal(err)
		}
		defer ks.Close()
		v := ksVerifier(t, ks, iss, ksNoCache())
		tok := testkit.Sign(k, nil, ksClaims(iss)) // fake time: now is the bubble's
		start := time.Now()
		ks.remote.mu.Lock()
		ttl := ks.remote.lastTTL
		ks.remote.mu.Unlock()
		if ttl != 600*time.Second {
			t.Fatalf("lastTTL after max-age=600: got %v, want 10m0s", ttl)
		}

		// The refresh is due within [0.9, 1] × 600 s.
		time.Sleep(540*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := len(mem.hits()); got != 1 {
			t.Fatalf("JWKS requests before 540 s: got %d, want 1", got)
		}
		time.Sleep(60*time.Second + time.Millisecond)
		synctest.Wait()
		hits := mem.hits()
		if len(hits) != 2 {
			t.Fatalf("JWKS requests by 600 s: got %d, want 2", len(hits))
		}
		if d := hits[1].at.Sub(start); d < 540*time.Second || d > 600*time.Second {
			t.Errorf("first refresh after %v, want within [540s, 600s]", d)
		}

		// The issuer fails from now on: the next scheduled refresh fails and
		// the loop retries with a backoff that doubles from one second up to
		// the minimum refresh interval (one minute), jittered by up to 20%.
		mem.setStatus(http.StatusInternalServerError)
		time.Sleep(time.Until(hits[1].at.Add(600*time.Second + time.Millisecond)))
		synctest.Wait()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		hits = mem.hits()
		failures := hits[2:]
		if d := failures[0].at.Sub(hits[1].at); d < 540*time.Second || d > 600*time.Second {
			t.Errorf("second scheduled refresh %v after the first, want within [540s, 600s]", d)
		}
		// Ten minutes of one-minute retries, after ~1+2+4+8+16+32 s of warm-up.
		if len(failures) < 12 || len(failures) > 25 {
			t.Errorf("failed fetches in 10 minutes: got %d, want 12..25", len(failures))
		}
		want := time.Duration(0) // backoff before the jitter
		for i := 1; i < len(failures); i++ {
			gap := failures[i].at.Sub(failures[i-1].at)
			want = min(max(2*want, time.Second), time.Minute)
			if gap < want-want/5 || gap > want {
				t.Errorf("retry %d after %v, want within [%v, %v]", i, gap, want-want/5, want)
			}
			want = gap // nextBackoff doubles the jittered wait
		}
		for _, h := range failures {
			if h.status != http.StatusInternalServerError {
				t.Fatalf("a retry saw status %d, want 500", h.status)
			}
		}
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("held key during the outage: %v", err)
		}
		if got := logs.count(slog.LevelWarn, ksMsgFetchFailed); got != 1 {
			t.Errorf("warnings for %d failed fetches: got %d, want 1", len(failures), got)
		}

		// Recovery: the next retry (at most a minute away) succeeds, and the
		// schedule returns to max-age.
		mem.setStatus(http.StatusOK)
		time.Sleep(time.Minute + time.Millisecond)
		synctest.Wait()
		hits = mem.hits()
		last := hits[len(hits)-1]
		if last.status != http.StatusOK || len(hits) != len(failures)+3 {
			t.Fatalf("no successful retry within a minute of recovery (%d requests, last status %d)", len(hits), last.status)
		}
		if got := logs.count(slog.LevelInfo, ksMsgRecovered); got != 1 {
			t.Errorf("recovery log lines: got %d, want 1", got)
		}
		time.Sleep(time.Until(last.at.Add(540*time.Second)) - time.Nanosecond)
		synctest.Wait()
		if got := len(mem.hits()); got != len(hits) {
			t.Errorf("requests within 540 s of recovery: got %d more, want none", got-len(hits))
		}
		time.Sleep(60*time.Second + time.Millisecond)
		synctest.Wait()
		if got := len(mem.hits()); got != len(hits)+1 {
			t.Errorf("requests by 600 s after recovery: got %d more, want 1", got-len(hits))
		}
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("held key after recovery: %v", err)
		}
	})
}

// --- 6. Outages --------------------------------------------------------------

func TestKeysetOutageKeepsKeys(t *testing.T) {
	failWith := func(f testkit.Failure) func(*testkit.Issuer) {
		return func(is *testkit.Issuer) { is.SetFailure(f) }
	}
	heal := func(is *testkit.Issuer) { is.SetFailure(testkit.FailNone) }
	const maxKeys = 3
	tests := []struct {
		name    string
		outage  func(*testkit.Issuer)
		recover func(*testkit.Issuer)
	}{
		{name: "HTTP 500", outage: failWith(testkit.Fail500), recover: heal},
		{name: "hang past the fetch timeout", outage: failWith(testkit.FailHang), recover: heal},
		{name: "garbage JSON", outage: failWith(testkit.FailGarbage), recover: heal},
		{name: "empty key set", outage: failWith(testkit.FailEmpty), recover: heal},
		{name: "body over the size cap", outage: failWith(testkit.FailHuge), recover: heal}, // see also TestKeysetBodySizeCap
		{name: "more keys than the cap", outage: func(is *testkit.Issuer) {
			for range maxKeys {
				is.AddKey("ES256")
			}
		}, recover: func(is *testkit.Issuer) { is.RetireOldKeys() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ksLeakCheck(t)
			is := ksNewIssuer(t)
			logs := &ksLogs{}
			// No unknown-kid rate limit, so that each forged kid refetches.
			ks := ksIssuerKeyset(t, is,
				WithFetchTimeout(300*time.Millisecond),
				WithMaxBodySize(64<<10),
				WithMaxKeys(maxKeys),
				WithUnknownKeyRefreshInterval(0),
				WithKeysetLogger(logs.logger()))
			v := ksVerifier(t, ks, is.URL(), ksNoCache())
			oldTok := ksToken(is)
			ksVerifyOK(t, v, oldTok, "before the outage")
			held := ks.cur.Load()

			tt.outage(is)
			hits := is.JWKSHits()
			// The caller's ctx outlives the fetch timeout by far: the refresh
			// must end on the keyset's own bounds, not on the caller giving up.
			ctx, cancel := context.WithTimeout(t.Context(), ksSafety)
			defer cancel()
			_, err := v.Verify(ctx, ksForeign(is, "unknown-during-outage"))
			if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("unknown kid during the outage: got %v, want ErrUnknownKey and not ErrKeysUnavailable", err)
			}
			if ctx.Err() != nil {
				t.Fatalf("the refresh outlasted the caller's ctx (%v): the keyset's fetch bounds did not end it", err)
			}
			if got := is.JWKSHits(); got != hits+1 {
				t.Fatalf("JWKS requests for an unknown kid during the outage: got %d, want %d", got, hits+1)
			}
			if ks.cur.Load() != held {
				t.Error("a failed refresh replaced the keys held")
			}
			ksVerifyOK(t, v, oldTok, "held key after a failed refresh")
			ksVerifyErr(t, v, ksForeign(is, "unknown-during-outage-2"), ErrUnknownKey, ErrKeysUnavailable)
			ksVerifyOK(t, v, oldTok, "held key after two failed refreshes")
			if got := logs.count(slog.LevelWarn, ksMsgFetchFailed); got != 1 {
				t.Errorf("warnings for two failed refreshes: got %d, want 1", got)
			}

			tt.recover(is)
			is.Rotate()
			ksVerifyOK(t, v, ksToken(is), "key rotated in after the outage")
			ksVerifyOK(t, v, oldTok, "old key, still published, after the outage")
			if got := logs.count(slog.LevelInfo, ksMsgRecovered); got != 1 {
				t.Errorf("recovery log lines: got %d, want 1", got)
			}
		})
	}
}

// ksPadded returns doc, a JSON object, grown to exactly size bytes with a
// padding member: still a valid JWK Set.
func ksPadded(t *testing.T, doc []byte, size int) []byte {
	t.Helper()
	head := append(bytes.TrimSuffix(doc, []byte("}")), `,"pad":"`...)
	n := size - len(head) - len(`"}`)
	if n < 0 {
		t.Fatalf("document of %d bytes does not fit in %d", len(doc), size)
	}
	return append(append(head, bytes.Repeat([]byte("A"), n)...), `"}`...)
}

// TestKeysetBodySizeCap serves valid JWK Sets padded around the cap: the
// issuer's FailHuge body holds no key, so it fails whatever the cap.
func TestKeysetBodySizeCap(t *testing.T) {
	ksLeakCheck(t)
	const limit = 8 << 10
	is := ksNewIssuer(t)
	var size atomic.Int64
	size.Store(limit)
	s := ksNewServer(t, func() []byte { return ksPadded(t, is.JWKS(), int(size.Load())) })
	ks := ksRemote(t, s.url(), s.Client(), WithMaxBodySize(limit), WithUnknownKeyRefreshInterval(0))
	v := ksVerifier(t, ks, is.URL(), ksNoCache())
	oldTok := ksToken(is)
	ksVerifyOK(t, v, oldTok, "JWK Set of exactly the cap")

	size.Store(limit + 1)
	is.Rotate()
	newTok := ksToken(is)
	ksVerifyErr(t, v, newTok, ErrUnknownKey, ErrKeysUnavailable)
	ksVerifyOK(t, v, oldTok, "held key after an oversized response")
	if got := s.hits.Load(); got != 2 {
		t.Errorf("JWKS requests: got %d, want 2", got)
	}

	size.Store(limit)
	ksVerifyOK(t, v, newTok, "new key once the response fits again")

	size.Store(limit + 1)
	if ks2, err := NewRemoteKeyset(t.Context(), s.url(), WithHTTPClient(s.Client()), WithMaxBodySize(limit), WithKeysetLogger(ksQuiet())); !errors.Is(err, ErrKeysUnavailable) {
		if ks2 != nil {
			ks2.Close()
		}
		t.Errorf("NewRemoteKeyset with an oversized first response: got %v, want %v", err, ErrKeysUnavailable)
	}
}

// --- 7. Keys unavailable, maximum staleness ---------------------------------

func TestKeysetUnavailable(t *testing.T) {
	tests := []struct {
		name    string
		failure testkit.Failure
	}{
		{"HTTP 500", testkit.Fail500},
		{"garbage", testkit.FailGarbage},
		{"empty set", testkit.FailEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ksLeakCheck(t)
			is := ksNewIssuer(t)
			is.SetFailure(tt.failure)
			ks := ksIssuerKeyset(t, is, WithLazyFetch())
			v := ksVerifier(t, ks, is.URL())
			tok := ksToken(is)
			for i := range 3 { // the first refetches, the next are rate limited
				if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrUnknownKey) {
					t.Fatalf("Verify %d with no key ever loaded: got %v, want ErrKeysUnavailable and not ErrUnknownKey", i, err)
				}
			}
		})
	}
}

func TestKeysetMaxStaleness(t *testing.T) {
	const bound = 5 * time.Minute
	tests := []struct {
		name         string
		maxStaleness time.Duration
		advance      time.Duration // with the issuer down
		wantErr      error
	}{
		{name: "default trusts held keys through a long outage", maxStaleness: 0, advance: 50 * time.Minute, wantErr: nil},
		{name: "within the bound", maxStaleness: bound, advance: bound, wantErr: nil},
		{name: "past the bound", maxStaleness: bound, advance: bound + time.Second, wantErr: ErrKeysUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ksLeakCheck(t)
			is := ksNewIssuer(t)
			clk := newKsClock()
			ks := ksIssuerKeyset(t, is, WithMaxStaleness(tt.maxStaleness), withKeysetClock(clk.Now),
				WithUnknownKeyRefreshInterval(time.Minute))
			v := ksVerifier(t, ks, is.URL(), WithClock(clk.Now)) // with the token cache
			tok := ksToken(is)
			ksVerifyOK(t, v, tok, "fresh keys") // and cached

			is.SetFailure(testkit.Fail500)
			clk.Advance(tt.advance)
			for i := range 2 { // the cached token, then again (refresh rate limited)
				_, err := v.Verify(t.Context(), tok)
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Fatalf("Verify %d after %v of outage: got %v, want %v", i, tt.advance, err, tt.wantErr)
				}
				if err != nil && errors.Is(err, ErrUnknownKey) {
					t.Fatalf("stale keys: got %v, must not read as an unknown key", err)
				}
			}

			// The issuer comes back: the next refresh restores the keys.
			is.SetFailure(testkit.FailNone)
			clk.Advance(time.Minute)
			ksVerifyOK(t, v, tok, "after the issuer recovered")
		})
	}
}

// --- 8. Unusable keys and duplicate kids ------------------------------------

// ksStatic builds a static keyset from doc and a verifier over it without a
// token cache.
func ksStatic(t *testing.T, doc []byte, logs *ksLogs) (*Keyset, *Verifier) {
	t.Helper()
	if logs == nil {
		logs = &ksLogs{}
	}
	ks, err := NewStaticKeyset(doc, WithKeysetLogger(logs.logger()))
	if err != nil {
		t.Fatalf("NewStaticKeyset: %v", err)
	}
	v, err := NewVerifier(ks, WithIssuer(ksStaticIssuer), WithAudience(ksAudience), ksNoCache())
	if err != nil {
		t.Fatal(err)
	}
	return ks, v
}

const ksStaticIssuer = "https://static.issuer.example"

// ksSign returns a token from ksStaticIssuer signed by k, with extra header
// members.
func ksSign(k *testkit.Key, header map[string]any) string {
	return testkit.Sign(k, header, ksClaims(ksStaticIssuer))
}

// ksRSA is one 2048-bit RSA key shared by the tests (generating one under
// -race takes long enough to matter).
var ksRSA = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// ksRSAKey returns the shared RSA key under kid, signing with alg.
func ksRSAKey(kid, alg string) *testkit.Key {
	return &testkit.Key{ID: kid, Algorithm: alg, Signer: ksRSA()}
}

func TestKeysetSkipsUnusableKeys(t *testing.T) {
	good := testkit.NewKey("ES256")
	rsaKey := ksRSAKey("rsa-1", "RS256")
	ecKey := testkit.NewKey("ES256")
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := &testkit.Key{ID: "rsa-1024", Algorithm: "RS256", Signer: rsa1024}
	ecPrivate := func(m map[string]any) {
		p := ecKey.Public()
		p.Key = ecKey.Signer // marshals "d" beside x and y
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		clear(m)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
	}
	set := func(kv ...any) func(map[string]any) {
		return func(m map[string]any) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(m, kv[i].(string))
				} else {
					m[kv[i].(string)] = kv[i+1]
				}
			}
		}
	}
	tests := []struct {
		name   string
		signer *testkit.Key // signs a token naming the bad key's kid
		bad    json.RawMessage
		quiet  bool // an encryption key: skipped at Debug, not Warn
	}{
		{name: "use enc", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", "enc")), quiet: true},
		{name: "use enc with a JWE alg", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", "enc", "alg", "RSA-OAEP-256")), quiet: true},
		{name: "use other than sig or enc", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", "tls"))},
		{name: "key_ops without verify", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", []string{"encrypt", "wrapKey"}))},
		{name: "empty key_ops", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", []string{}))},
		// RFC 7517 §4.3: an array of strings, without duplicates.
		{name: "key_ops null", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", json.RawMessage("null")))},
		{name: "key_ops a string", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", "verify"))},
		{name: "key_ops an object", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", map[string]any{"verify": true}))},
		{name: "key_ops with a number", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", []any{"verify", 1}))},
		{name: "key_ops with null", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", []any{"verify", nil}))},
		{name: "key_ops repeating verify", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", []string{"verify", "verify"}))},
		{name: "key_ops repeating another value", signer: rsaKey, bad: ksJWK(t, rsaKey, set("use", nil, "key_ops", []string{"sign", "verify", "sign"}))},
		{name: "symmetric oct key", signer: ecKey, bad: json.RawMessage(`{"kty":"oct","kid":"` + ecKey.ID + `","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}`)},
		{name: "private key with d", signer: ecKey, bad: ksJWK(t, ecKey, ecPrivate)},
		{name: "unknown kty", signer: ecKey, bad: json.RawMessage(`{"kty":"XYZ","kid":"` + ecKey.ID + `","x":"AAAA"}`)},
		{name: "unknown crv", signer: ecKey, bad: ksJWK(t, ecKey, set("crv", "secp256k1"))},
		{name: "bad base64", signer: ecKey, bad: ksJWK(t, ecKey, set("x", "not*base64url!"))},
		{name: "RSA of 1024 bits", signer: weak, bad: ksJWK(t, weak, nil)},
		{name: "alg ES256 on an RSA key", signer: rsaKey, bad: ksJWK(t, rsaKey, set("alg", "ES256"))},
		{name: "alg RSA-OAEP", signer: rsaKey, bad: ksJWK(t, rsaKey, set("alg", "RSA-OAEP")), quiet: true},
		{name: "alg ECDH-ES", signer: ecKey, bad: ksJWK(t, ecKey, set("use", nil, "alg", "ECDH-ES")), quiet: true},
		{name: "alg HS256 on an RSA key", signer: rsaKey, bad: ksJWK(t, rsaKey, set("alg", "HS256"))},
		{name: "kid not a string", signer: ecKey, bad: ksJWK(t, ecKey, set("kid", 42))},
		{name: "not a JSON object", signer: ecKey, bad: json.RawMessage(`["kty","EC"]`)},
	}
	goodJWK := ksJWK(t, good, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range []string{"bad first", "bad last"} {
				doc := ksDoc(tt.bad, goodJWK)
				if order == "bad last" {
					doc = ksDoc(goodJWK, tt.bad)
				}
				logs := &ksLogs{}
				ks, v := ksStatic(t, doc, logs)
				if got := len(ks.cur.Load().all); got != 1 {
					t.Errorf("%s: usable keys: got %d, want 1", order, got)
				}
				level := slog.LevelWarn
				if tt.quiet {
					level = slog.LevelDebug
				}
				if got := logs.count(level, ksMsgSkipped); got != 1 {
					t.Errorf("%s: skips logged at %v: got %d, want 1", order, level, got)
				}
				if got := logs.count(slog.LevelWarn, ksMsgSkipped) + logs.count(slog.LevelDebug, ksMsgSkipped); got != 1 {
					t.Errorf("%s: skips logged: got %d, want 1", order, got)
				}
				if _, err := v.Verify(t.Context(), ksSign(good, nil)); err != nil {
					t.Errorf("%s: good key beside the unusable one: got %v, want success", order, err)
				}
				_, err := v.Verify(t.Context(), ksSign(tt.signer, map[string]any{"kid": tt.signer.ID}))
				if !errors.Is(err, ErrUnknownKey) {
					t.Errorf("%s: token naming the unusable key: got %v, want %v", order, err, ErrUnknownKey)
				}
			}
			_, err := NewStaticKeyset(ksDoc(tt.bad), WithKeysetLogger(ksQuiet()))
			if err == nil || !strings.Contains(err.Error(), "no usable signing key (1 skipped; key 0: ") {
				t.Errorf("NewStaticKeyset of only the unusable key: got %v, want an error naming the reason", err)
			}
		})
	}

	t.Run("usable variants are kept", func(t *testing.T) {
		doc := ksDoc(
			ksJWK(t, rsaKey, set("use", nil, "key_ops", []string{"sign", "verify"})),
			ksJWK(t, ecKey, set("use", nil, "alg", nil)),
		)
		_, v := ksStatic(t, doc, nil)
		ksVerifyOK(t, v, ksSign(rsaKey, nil), "key_ops holding verify")
		ksVerifyOK(t, v, ksSign(ecKey, nil), "neither use nor alg")
	})

	t.Run("documents that are errors", func(t *testing.T) {
		for _, doc := range []string{``, `null`, `[]`, `{}`, `{"keys":[]}`, `{"keys":{}}`, `<html>`} {
			if _, err := NewStaticKeyset([]byte(doc), WithKeysetLogger(ksQuiet())); err == nil {
				t.Errorf("NewStaticKeyset(%q): got nil error, want an error", doc)
			}
		}
		// A metadata document where a JWK Set belongs says so.
		_, err := NewStaticKeyset([]byte(`{"issuer":"https://idp.example","jwks_uri":"https://idp.example/keys"}`), WithKeysetLogger(ksQuiet()))
		if err == nil || !strings.Contains(err.Error(), `metadata document, not a JWK Set: pass its jwks_uri "https://idp.example/keys" to NewRemoteKeyset`) {
			t.Errorf("NewStaticKeyset of a metadata document: got %v, want the hint naming its jwks_uri", err)
		}
		three := ksDoc(ksJWK(t, good, nil), ksJWK(t, ecKey, nil), ksJWK(t, rsaKey, nil))
		if _, err := NewStaticKeyset(three, WithMaxKeys(2), WithKeysetLogger(ksQuiet())); err == nil {
			t.Error("NewStaticKeyset of 3 keys with WithMaxKeys(2): got nil error, want an error")
		}
	})
}

// TestKeysetSkipLoggedOnce checks that a remote keyset reports an unusable
// key when it first appears, not again on every refresh that still finds
// it, and again if it returns after a refresh without it.
func TestKeysetSkipLoggedOnce(t *testing.T) {
	good := testkit.NewKey("ES256")
	weakKey := func(kid string) json.RawMessage {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		return ksJWK(t, &testkit.Key{ID: kid, Algorithm: "RS256", Signer: k}, nil)
	}
	weak1, weak2 := weakKey("weak-1"), weakKey("weak-2")
	enc := ksJWK(t, ksRSAKey("enc-1", "RS256"), func(m map[string]any) { m["use"], m["alg"] = "enc", "RSA-OAEP" })
	withEnc := ksDoc(ksJWK(t, good, nil), weak1, enc)
	withWeak2 := ksDoc(ksJWK(t, good, nil), weak1, weak2)
	var doc atomic.Pointer[[]byte]
	doc.Store(&withEnc)
	srv := ksNewServer(t, func() []byte { return *doc.Load() })
	logs := &ksLogs{}
	ks := ksRemote(t, srv.url(), srv.Client(), WithKeysetLogger(logs.logger()))
	refresh := func() {
		t.Helper()
		if err := ks.remote.fetch(t.Context(), true); err != nil {
			t.Fatal(err)
		}
	}
	want := func(when string, warns, debugs int) {
		t.Helper()
		if w, d := logs.count(slog.LevelWarn, ksMsgSkipped), logs.count(slog.LevelDebug, ksMsgSkipped); w != warns || d != debugs {
			t.Errorf("%s: skips logged at Warn %d and Debug %d, want %d and %d", when, w, d, warns, debugs)
		}
	}
	ksEventually(t, "the first fetch", func() bool { return ks.cur.Load() != nil })
	want("after the first fetch", 1, 1) // weak-1, and enc-1 quietly
	for range 3 {
		refresh()
	}
	want("after three refreshes of the same document", 1, 1)
	doc.Store(&withWeak2)
	refresh()
	want("after weak-2 appeared", 2, 1)
	doc.Store(&withEnc)
	refresh()
	want("after enc-1 returned", 2, 2)
}

func TestKeysetDuplicateKids(t *testing.T) {
	a := testkit.NewKey("ES256")
	b := testkit.NewKey("ES256")
	r := ksRSAKey("r", "RS256")
	a.ID, b.ID, r.ID = "dup", "dup", "dup"
	tests := []struct {
		name          string
		doc           []byte
		wantA, wantB  error // for tokens of a and b
		wantR         error // for a token of r
		wantKIDHolds  int
		wantSkipWarns int
	}{
		{name: "same alg: first wins (a first)", doc: ksDoc(ksJWK(t, a, nil), ksJWK(t, b, nil)), wantA: nil, wantB: ErrSignature, wantR: ErrAlgorithm, wantKIDHolds: 1, wantSkipWarns: 1},
		{name: "same alg: first wins (b first)", doc: ksDoc(ksJWK(t, b, nil), ksJWK(t, a, nil)), wantA: ErrSignature, wantB: nil, wantR: ErrAlgorithm, wantKIDHolds: 1, wantSkipWarns: 1},
		{name: "same kid, different kty: both usable", doc: ksDoc(ksJWK(t, a, nil), ksJWK(t, r, nil)), wantA: nil, wantB: ErrSignature, wantR: nil, wantKIDHolds: 2, wantSkipWarns: 0},
		{name: "three under one kid", doc: ksDoc(ksJWK(t, r, nil), ksJWK(t, b, nil), ksJWK(t, a, nil)), wantA: ErrSignature, wantB: nil, wantR: nil, wantKIDHolds: 2, wantSkipWarns: 1},
	}
	check := func(t *testing.T, v *Verifier, who string, tok string, want error) {
		t.Helper()
		_, err := v.Verify(t.Context(), tok)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("token of %s: got %v, want %v", who, err, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 { // the same outcome on every parse
				logs := &ksLogs{}
				ks, v := ksStatic(t, tt.doc, logs)
				if got := len(ks.cur.Load().byKID["dup"]); got != tt.wantKIDHolds {
					t.Errorf("keys held under the kid: got %d, want %d", got, tt.wantKIDHolds)
				}
				if got := logs.count(slog.LevelWarn, ksMsgSkipped); got != tt.wantSkipWarns {
					t.Errorf("skip warnings: got %d, want %d", got, tt.wantSkipWarns)
				}
				check(t, v, "a", ksSign(a, nil), tt.wantA)
				check(t, v, "b", ksSign(b, nil), tt.wantB)
				check(t, v, "r", ksSign(r, nil), tt.wantR)
			}
		})
	}
}

// --- 9. Algorithm bound to the key ------------------------------------------

func TestKeysetAlgBoundToKey(t *testing.T) {
	rs := ksRSAKey("rsa-2", "RS256")
	ps := &testkit.Key{ID: rs.ID, Algorithm: "PS256", Signer: rs.Signer} // same RSA key
	rs512 := &testkit.Key{ID: rs.ID, Algorithm: "RS512", Signer: rs.Signer}
	declared := ksDoc(ksJWK(t, rs, nil)) // "alg": "RS256"
	undeclared := ksDoc(ksJWK(t, rs, func(m map[string]any) { delete(m, "alg") }))
	declaredPS := ksDoc(ksJWK(t, ps, nil)) // "alg": "PS256"
	// Ed25519 (RFC 9864) is EdDSA with an Ed25519 key by its
	// fully-specified name: a JWK declaring one of the two names binds
	// the key to it; an undeclared OKP key allows both.
	ed := testkit.NewKey("Ed25519")
	edDSA := &testkit.Key{ID: ed.ID, Algorithm: "EdDSA", Signer: ed.Signer}
	declaredEd := ksDoc(ksJWK(t, ed, nil))       // "alg": "Ed25519"
	declaredEdDSA := ksDoc(ksJWK(t, edDSA, nil)) // "alg": "EdDSA"
	undeclaredEd := ksDoc(ksJWK(t, ed, func(m map[string]any) { delete(m, "alg") }))
	tests := []struct {
		name    string
		doc     []byte
		tok     string
		wantErr error
	}{
		{name: "declared RS256, RS256 token", doc: declared, tok: ksSign(rs, nil), wantErr: nil},
		{name: "declared RS256, PS256 token by the same key", doc: declared, tok: ksSign(ps, nil), wantErr: ErrAlgorithm},
		{name: "declared RS256, RS512 token by the same key", doc: declared, tok: ksSign(rs512, nil), wantErr: ErrAlgorithm},
		{name: "declared PS256, RS256 token by the same key", doc: declaredPS, tok: ksSign(rs, nil), wantErr: ErrAlgorithm},
		{name: "declared PS256, PS256 token", doc: declaredPS, tok: ksSign(ps, nil), wantErr: nil},
		{name: "undeclared, RS256 token", doc: undeclared, tok: ksSign(rs, nil), wantErr: nil},
		{name: "undeclared, PS256 token", doc: undeclared, tok: ksSign(ps, nil), wantErr: nil},
		{name: "undeclared, RS512 token", doc: undeclared, tok: ksSign(rs512, nil), wantErr: nil},
		{name: "undeclared RSA key, ES256 header", doc: undeclared, tok: ksSign(rs, map[string]any{"alg": "ES256"}), wantErr: ErrAlgorithm},
		{name: "undeclared RSA key, PS256 header over an RS256 signature", doc: undeclared, tok: ksSign(rs, map[string]any{"alg": "PS256"}), wantErr: ErrSignature},
		{name: "declared Ed25519, Ed25519 token", doc: declaredEd, tok: ksSign(ed, nil), wantErr: nil},
		{name: "declared Ed25519, EdDSA token by the same key", doc: declaredEd, tok: ksSign(edDSA, nil), wantErr: ErrAlgorithm},
		{name: "declared EdDSA, EdDSA token", doc: declaredEdDSA, tok: ksSign(edDSA, nil), wantErr: nil},
		{name: "declared EdDSA, Ed25519 token by the same key", doc: declaredEdDSA, tok: ksSign(ed, nil), wantErr: ErrAlgorithm},
		{name: "undeclared OKP key, Ed25519 token", doc: undeclaredEd, tok: ksSign(ed, nil), wantErr: nil},
		{name: "undeclared OKP key, EdDSA token", doc: undeclaredEd, tok: ksSign(edDSA, nil), wantErr: nil},
		{name: "undeclared OKP key, Ed448 header", doc: undeclaredEd, tok: ksSign(ed, map[string]any{"alg": "Ed448"}), wantErr: ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, v := ksStatic(t, tt.doc, nil)
			_, err := v.Verify(t.Context(), tt.tok)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// --- 10. Close ---------------------------------------------------------------

func TestKeysetLeakHelperSeesLiveKeyset(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	ks, err := NewRemoteKeyset(t.Context(), is.JWKSURL(), WithHTTPClient(is.HTTPClient()), WithKeysetLogger(ksQuiet()))
	if err != nil {
		t.Fatal(err)
	}
	if len(keysetGoroutines()) == 0 {
		t.Error("keysetGoroutines found no goroutine of a live keyset: checkNoKeysetGoroutines would miss a leak")
	}
	ks.Close()
}

func TestKeysetClose(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	// A fetch that hangs for up to an hour: only Close can end it.
	ks := ksIssuerKeyset(t, is, WithFetchTimeout(time.Hour), WithUnknownKeyRefreshInterval(0))
	v := ksVerifier(t, ks, is.URL(), ksNoCache())
	tok := ksToken(is)
	ksVerifyOK(t, v, tok, "before Close")

	is.SetFailure(testkit.FailHang)
	hits := is.JWKSHits()
	w := newKsWaiters(1)
	res := make(chan error, 1)
	go func() {
		_, err := v.Verify(w.ctx(t.Context()), ksForeign(is, "unknown-at-close"))
		res <- err
	}()
	ksAwait(t, w.all, "Verify to wait for the hanging fetch")
	ksEventually(t, "the hanging JWKS request to arrive", func() bool { return is.JWKSHits() > hits })

	closed := make(chan error, 1)
	go func() { closed <- ks.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(ksSafety):
		is.Close() // end the hang, so that the cleanup's Close cannot block too
		t.Fatal("Close did not end a hanging fetch")
	}
	// Close waited for its goroutines: none may remain (beyond the moment a
	// goroutine takes to exit after signalling).
	checkNoKeysetGoroutines(t)
	if err := ksAwait(t, res, "the caller waiting on the cancelled fetch"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("caller waiting on the fetch Close cancelled: got %v, want %v", err, ErrUnknownKey)
	}
	if err := ks.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	is.SetFailure(testkit.FailNone)
	hits = is.JWKSHits()
	ksVerifyOK(t, v, tok, "held key after Close")
	ksVerifyErr(t, v, ksForeign(is, "unknown-after-close"), ErrUnknownKey, ErrKeysUnavailable)
	err := ksVerifyErr(t, v, ksForeign(is, "unknown-after-close-2"), ErrKeysetClosed)
	if is.JWKSHits() != hits {
		t.Errorf("a closed keyset fetched the JWKS (%v)", err)
	}
}

func TestKeysetCloseLazyBeforeFirstFetch(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	s := ksNewServer(t, is.JWKS)
	release := s.hold()
	defer release()
	ks := ksRemote(t, s.url(), s.Client(), WithLazyFetch(), WithFetchTimeout(time.Hour))
	ksAwait(t, s.hit, "the background first fetch")
	if err := ks.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkNoKeysetGoroutines(t)
	v := ksVerifier(t, ks, is.URL())
	ksVerifyErr(t, v, ksToken(is), ErrKeysUnavailable, ErrUnknownKey)
	ksVerifyErr(t, v, ksToken(is), ErrKeysetClosed)
}

func TestKeysetCloseStatic(t *testing.T) {
	_, v := ksStatic(t, ksDoc(ksJWK(t, testkit.NewKey("ES256"), nil)), nil)
	if err := v.keys.Close(); err != nil {
		t.Fatalf("Close of a static keyset: %v", err)
	}
	if err := v.keys.Close(); err != nil {
		t.Fatalf("second Close of a static keyset: %v", err)
	}
}

// ksStuck is a transport whose requests after the first ignore
// cancellation until released: it keeps a fetch goroutine alive after
// Close has cancelled it.
type ksStuck struct {
	body    []byte
	n       atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func (s *ksStuck) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.n.Add(1) > 1 {
		close(s.entered)
		<-s.release
		return nil, errors.New("released")
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: req, Body: io.NopCloser(bytes.NewReader(s.body))}, nil
}

func TestKeysetConcurrentCloseWaitsForFetch(t *testing.T) {
	ksLeakCheck(t)
	k := testkit.NewKey("ES256")
	rt := &ksStuck{body: ksDoc(ksJWK(t, k, nil)), entered: make(chan struct{}), release: make(chan struct{})}
	ks, err := NewRemoteKeyset(t.Context(), "https://issuer.example/jwks",
		WithHTTPClient(&http.Client{Transport: rt}), WithKeysetLogger(ksQuiet()), WithUnknownKeyRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			close(rt.release)
		}
		ks.Close()
	}()
	go ks.remote.fetchShared(context.Background(), true)
	ksAwait(t, rt.entered, "the fetch to start")

	done1, done2 := make(chan struct{}), make(chan struct{})
	go func() { ks.Close(); close(done1) }()
	ksAwait(t, ks.remote.loop, "the first Close to stop the loop") // it now waits for the fetch
	go func() { ks.Close(); close(done2) }()
	// Neither Close may return while the fetch goroutine runs. This bounded
	// wait is for an event that must not happen; with correct code it never
	// ends early, so it cannot cause a false failure.
	select {
	case <-done1:
		t.Error("first Close returned while a fetch goroutine was running")
	case <-done2:
		t.Error("second Close returned while a fetch goroutine was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(rt.release)
	released = true
	ksAwait(t, done1, "the first Close")
	ksAwait(t, done2, "the second Close")
}

// --- 11. Logging -------------------------------------------------------------

func TestKeysetLogsOncePerEpisode(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	logs := &ksLogs{}
	ks := ksIssuerKeyset(t, is, WithUnknownKeyRefreshInterval(0), WithKeysetLogger(logs.logger()))
	v := ksVerifier(t, ks, is.URL(), ksNoCache())
	tok := ksToken(is)
	refresh := func(n int, episode string) {
		t.Helper()
		for i := range n {
			v.Verify(t.Context(), ksForeign(is, fmt.Sprintf("%s-%d", episode, i)))
		}
	}
	expect := func(step string, warns, infos, hits int) {
		t.Helper()
		if got := logs.count(slog.LevelWarn, ksMsgFetchFailed); got != warns {
			t.Errorf("%s: fetch-failed warnings: got %d, want %d", step, got, warns)
		}
		if got := logs.count(slog.LevelInfo, ksMsgRecovered); got != infos {
			t.Errorf("%s: recovery lines: got %d, want %d", step, got, infos)
		}
		if got := is.JWKSHits(); got != hits {
			t.Errorf("%s: JWKS requests: got %d, want %d", step, got, hits)
		}
	}
	expect("construction", 0, 0, 1)

	is.SetFailure(testkit.Fail500)
	refresh(20, "first-outage")
	ksVerifyOK(t, v, tok, "held key during the outage")
	expect("20 failed refreshes", 1, 0, 21)

	is.SetFailure(testkit.FailNone)
	refresh(3, "recovered")
	expect("recovery and 2 more good refreshes", 1, 1, 24)

	is.SetFailure(testkit.FailGarbage)
	refresh(5, "second-outage")
	expect("a second outage", 2, 1, 29)
	is.SetFailure(testkit.FailNone)
	refresh(1, "recovered-again")
	expect("a second recovery", 2, 2, 30)
	if got := logs.count(slog.LevelWarn, ""); got != 2 {
		t.Errorf("all warnings: got %d, want 2", got)
	}
}

// --- 12. Key identity across refreshes --------------------------------------

func TestKeysetKeyIdentityAcrossRefresh(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	ks := ksIssuerKeyset(t, is, WithUnknownKeyRefreshInterval(time.Hour))
	v := ksVerifier(t, ks, is.URL()) // the default token cache
	first := is.SigningKey()
	tokA := ksToken(is)

	c1 := ksVerifyOK(t, v, tokA, "token A")
	if c2 := ksVerifyOK(t, v, tokA, "token A again"); c2 != c1 {
		t.Fatal("token A was not served from the token cache")
	}
	keyA := ks.cur.Load().byKID[first.ID][0]

	// Grace rotation: a refresh (for the new kid) keeps key A.
	is.Rotate()
	ksVerifyOK(t, v, ksToken(is), "token of the new key")
	if got := is.JWKSHits(); got != 2 {
		t.Fatalf("JWKS requests: got %d, want 2", got)
	}
	if got := ks.cur.Load().byKID[first.ID][0]; got != keyA {
		t.Error("the surviving key got a new identity in the refreshed snapshot")
	}
	if keyA.removed.Load() {
		t.Error("the surviving key was marked removed")
	}
	if c := ksVerifyOK(t, v, tokA, "token A after a refresh that kept its key"); c != c1 {
		t.Error("token A's cache entry did not survive a refresh that kept its key")
	}

	// Key A is retired: once a refresh sees that, its cached token fails.
	is.RetireOldKeys()
	if err := ks.remote.fetchShared(t.Context(), false); err != nil {
		t.Fatalf("forced refresh: %v", err)
	}
	if !keyA.removed.Load() {
		t.Error("the retired key is not marked removed")
	}
	ksVerifyErr(t, v, tokA, ErrUnknownKey, ErrKeysUnavailable)
	ksVerifyErr(t, v, tokA, ErrUnknownKey, ErrKeysUnavailable)
	ksVerifyOK(t, v, ksToken(is), "token of the remaining key")
}

// TestKeysetErrorsHideAddresses: when the issuer is unreachable, the error
// Verify returns names the class of failure but not the host or port, which
// stay in the keyset's log.
func TestKeysetErrorsHideAddresses(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now: connections are refused
	ks, err := NewRemoteKeyset(t.Context(), "http://"+addr+"/jwks", WithLazyFetch(),
		WithKeysetLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	v, err := NewVerifier(ks, WithIssuer("https://issuer.example"), WithAudience("api"))
	if err != nil {
		t.Fatal(err)
	}
	is := testkit.NewIssuer()
	defer is.Close()
	_, err = v.Verify(t.Context(), is.Mint(is.Claims("api")))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("got %v, want ErrKeysUnavailable", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	if msg := err.Error(); strings.Contains(msg, port) || strings.Contains(msg, host) {
		t.Errorf("error text %q names the JWKS address", msg)
	}
}

// TestKeysetJoinedStaleFetch: a token signed by a key published while a
// fetch was already in flight joins that fetch, which cannot hold the key;
// it then gets one follow-up fetch of its own and verifies on its first
// request.
func TestKeysetJoinedStaleFetch(t *testing.T) {
	ksLeakCheck(t)
	is := ksNewIssuer(t)
	var requests atomic.Int64
	hold := make(chan struct{})
	holding := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := is.JWKS() // the key set as of this request
		if requests.Add(1) == 2 {
			// The second request (the periodic fetch below) holds its
			// already-built body while the issuer rotates.
			close(holding)
			<-hold
		}
		w.Write(body)
	}))
	defer srv.Close()
	ks, err := NewRemoteKeyset(t.Context(), srv.URL, WithKeysetLogger(slog.New(slog.DiscardHandler)),
		WithUnknownKeyRefreshInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	v := ksVerifier(t, ks, is.URL(), ksNoCache())

	go ks.remote.fetchShared(context.Background(), false)
	<-holding
	is.Rotate()
	tok := ksToken(is)
	waiting := newKsWaiters(1)
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(waiting.ctx(t.Context()), tok)
		done <- err
	}()
	<-waiting.all // the verification has joined the held fetch
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("token of a key published during an in-flight fetch: %v", err)
	}
	if got := requests.Load(); got != 3 {
		t.Errorf("JWKS requests: got %d, want 3 (construction, the held fetch, one follow-up)", got)
	}
}

// TestKeysetOperatorHints: an unknown kid's error names the kids the keyset
// holds (the issuer's values, never the token's); an issuer's URL given to
// NewRemoteKeyset says so; a failed first fetch is returned, not logged too.
func TestKeysetOperatorHints(t *testing.T) {
	is := testkit.NewIssuer(testkit.WithPath("/oidc"))
	defer is.Close()
	ks, err := NewRemoteKeyset(t.Context(), is.JWKSURL(), WithHTTPClient(is.HTTPClient()), WithKeysetLogger(ksQuiet()),
		WithUnknownKeyRefreshInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	v := ksVerifier(t, ks, is.URL())
	const forged = "FORGED-KID"
	_, err = v.Verify(t.Context(), testkit.Sign(testkit.NewKey("ES256"), map[string]any{"kid": forged}, is.Claims("api")))
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `the keyset holds kids ["`+is.SigningKey().ID+`"]`) ||
		strings.Contains(err.Error(), forged) {
		t.Errorf("unknown kid: got %v, want ErrUnknownKey naming the held kid and not the token's", err)
	}

	logs := &ksLogs{}
	_, err = NewRemoteKeyset(t.Context(), is.URL(), WithHTTPClient(is.HTTPClient()), WithKeysetLogger(logs.logger()))
	want := fmt.Sprintf("%q is an issuer, not a JWK Set URL: use NewIssuerKeyset, or its jwks_uri %q", is.URL(), is.JWKSURL())
	if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), want) {
		t.Errorf("issuer URL as JWK Set URL: got %v, want it to say %s", err, want)
	}
	if n := logs.count(slog.LevelWarn, "grpcjwt: JWKS fetch failed; keeping the keys already held"); n != 0 {
		t.Errorf("a failed first fetch was logged %d times beside its returned error", n)
	}
}

// ksRefusing is a transport whose every request fails without an answer,
// as a refused connection does; it counts them.
type ksRefusing struct{ n atomic.Int64 }

func (s *ksRefusing) RoundTrip(*http.Request) (*http.Response, error) {
	s.n.Add(1)
	return nil, errors.New("connect: connection refused")
}

// TestNewRemoteKeysetNoAnswerNoProbe: when the first fetch gets no HTTP
// answer (a refused connection, or none within the fetch timeout),
// NewRemoteKeyset does not go on to ask the URL for an issuer's metadata:
// one request, one timeout. A server that answers is asked (the hint that
// an issuer's URL was given, troubleshooting_test.go).
func TestNewRemoteKeysetNoAnswerNoProbe(t *testing.T) {
	rt := &ksRefusing{}
	_, err := NewRemoteKeyset(t.Context(), "https://idp.example/jwks", WithHTTPClient(&http.Client{Transport: rt}), WithKeysetLogger(ksQuiet()))
	if !errors.Is(err, ErrKeysUnavailable) || rt.n.Load() != 1 {
		t.Errorf("refused: %d requests and %v, want 1 and ErrKeysUnavailable", rt.n.Load(), err)
	}

	var hung atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	_, err = NewRemoteKeyset(t.Context(), srv.URL+"/jwks", WithFetchTimeout(50*time.Millisecond), WithKeysetLogger(ksQuiet()))
	if !errors.Is(err, context.DeadlineExceeded) || hung.Load() != 1 {
		t.Errorf("no answer in time: %d requests and %v, want 1 and a deadline", hung.Load(), err)
	}
}
