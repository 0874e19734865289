package grpcjwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Keyset is a set of public signing keys, published by an issuer as a JWK
// Set (RFC 7517), from which a [Verifier] picks the key named by a token's
// "kid".
//
// A remote keyset ([NewRemoteKeyset]) keeps itself current: it refreshes in
// the background on a schedule taken from the response's caching headers,
// refetches at once (rate limited) when a token names an unknown key, and
// keeps the last good keys when a refresh fails. A static keyset
// ([NewStaticKeyset]) never changes.
//
// Readers load an immutable snapshot without taking a lock. A Keyset is safe
// for concurrent use. Call [Keyset.Close] when done with a remote keyset.
type Keyset struct {
	cur    atomic.Pointer[keySnapshot]
	remote *remoteSource // nil for a static keyset
	issuer string        // set by NewIssuerKeyset: the discovered issuer
}

// keySnapshot is one immutable generation of the keyset.
type keySnapshot struct {
	byKID   map[string][]*verifyKey // in document order
	all     []*verifyKey            // in document order
	loaded  time.Time               // when the keys were fetched
	skipped []keySkip               // the document's entries left out
	held    string                  // the kids held, for unknown-key errors (heldKIDs)
}

// keySkip is an entry of a JWK Set document that the keyset left out.
type keySkip struct {
	index  int
	kid    string
	reason string
	quiet  bool // an encryption key, expected in a JWK Set: logged at Debug
}

// id names the skip across fetches, where the same key may move.
func (s keySkip) id() string {
	if s.kid == "" {
		return fmt.Sprintf("#%d\x00%s", s.index, s.reason)
	}
	return s.kid + "\x00" + s.reason
}

// logSkips logs the skips whose id is not in seen (nil: log them all): an
// unusable key is reported once, not on every refresh.
func logSkips(log *slog.Logger, skips []keySkip, seen map[string]bool) {
	for _, s := range skips {
		if seen[s.id()] {
			continue
		}
		level := slog.LevelWarn
		if s.quiet {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "grpcjwt: skipping unusable key in JWK Set",
			"index", s.index, "kid", s.kid, "reason", s.reason)
	}
}

// skipIDs returns the ids of skips, for logSkips on the next fetch.
func skipIDs(skips []keySkip) map[string]bool {
	ids := make(map[string]bool, len(skips))
	for _, s := range skips {
		ids[s.id()] = true
	}
	return ids
}

// keysetOptions holds the settings of a Keyset; see the KeysetOption
// constructors for each default.
type keysetOptions struct {
	client             *http.Client
	fetchTimeout       time.Duration
	maxBodyBytes       int64
	maxKeys            int
	refreshDefault     time.Duration
	refreshMin         time.Duration
	refreshMax         time.Duration
	unknownKIDInterval time.Duration
	maxStaleness       time.Duration
	lazy               bool
	logger             *slog.Logger
	onFetch            func(FetchEvent)
	now                func() time.Time
}

func defaultKeysetOptions() keysetOptions {
	return keysetOptions{
		client:             http.DefaultClient,
		fetchTimeout:       10 * time.Second,
		maxBodyBytes:       1 << 20,
		maxKeys:            100,
		refreshDefault:     time.Hour,
		refreshMin:         5 * time.Minute,
		refreshMax:         24 * time.Hour,
		unknownKIDInterval: 30 * time.Second,
		now:                time.Now,
	}
}

// A KeysetOption configures [NewRemoteKeyset] or [NewStaticKeyset].
type KeysetOption func(*keysetOptions) error

// WithHTTPClient sets the client that fetches the JWK Set. The default is
// [http.DefaultClient]; each fetch is bounded by [WithFetchTimeout] whatever
// the client's own timeout. The keyset uses a copy of c that refuses a
// redirect from https to http and follows at most 5 redirects, each also
// subject to c's own CheckRedirect.
func WithHTTPClient(c *http.Client) KeysetOption {
	return func(o *keysetOptions) error {
		if c == nil {
			return errors.New("grpcjwt: WithHTTPClient: nil client")
		}
		o.client = c
		return nil
	}
}

// WithFetchTimeout bounds each fetch of the JWK Set, from the request to the
// last byte of the body. The default is 10 seconds.
func WithFetchTimeout(d time.Duration) KeysetOption {
	return func(o *keysetOptions) error {
		if d <= 0 {
			return fmt.Errorf("grpcjwt: WithFetchTimeout: %v is not positive", d)
		}
		o.fetchTimeout = d
		return nil
	}
}

// WithMaxBodySize caps the size of a JWK Set response; a larger body fails
// the fetch and the keys already held stay. The default is 1 MiB.
func WithMaxBodySize(n int64) KeysetOption {
	return func(o *keysetOptions) error {
		if n <= 0 {
			return fmt.Errorf("grpcjwt: WithMaxBodySize: %d is not positive", n)
		}
		o.maxBodyBytes = n
		return nil
	}
}

// WithMaxKeys caps the number of keys in a JWK Set; a set with more entries
// fails the fetch and the keys already held stay. The default is 100.
func WithMaxKeys(n int) KeysetOption {
	return func(o *keysetOptions) error {
		if n <= 0 {
			return fmt.Errorf("grpcjwt: WithMaxKeys: %d is not positive", n)
		}
		o.maxKeys = n
		return nil
	}
}

// WithRefreshInterval sets how often the keyset refreshes when the JWKS
// response names no lifetime (no Cache-Control max-age, no Expires). The
// default is one hour. The interval is clamped to [WithRefreshBounds].
func WithRefreshInterval(d time.Duration) KeysetOption {
	return func(o *keysetOptions) error {
		if d <= 0 {
			return fmt.Errorf("grpcjwt: WithRefreshInterval: %v is not positive", d)
		}
		o.refreshDefault = d
		return nil
	}
}

// WithRefreshBounds clamps the periodic refresh interval, whether it comes
// from Cache-Control max-age, Expires or [WithRefreshInterval]. The defaults
// are 5 minutes and 24 hours. Each interval is shortened by a random jitter
// of up to 10% so that replicas do not refresh in step.
func WithRefreshBounds(lo, hi time.Duration) KeysetOption {
	return func(o *keysetOptions) error {
		if lo <= 0 || hi < lo {
			return fmt.Errorf("grpcjwt: WithRefreshBounds: need 0 < min <= max, got %v, %v", lo, hi)
		}
		o.refreshMin, o.refreshMax = lo, hi
		return nil
	}
}

// WithUnknownKeyRefreshInterval sets the least time between two refreshes
// triggered by tokens naming a key the keyset does not hold. Within that
// time such a token fails at once with [ErrUnknownKey] rather than wait, so a
// flood of forged kids costs the issuer at most one request per interval.
// A token that arrives while a refresh is already in flight waits for it
// instead. The default is 30 seconds.
func WithUnknownKeyRefreshInterval(d time.Duration) KeysetOption {
	return func(o *keysetOptions) error {
		if d < 0 {
			return fmt.Errorf("grpcjwt: WithUnknownKeyRefreshInterval: %v is negative", d)
		}
		o.unknownKIDInterval = d
		return nil
	}
}

// WithMaxStaleness bounds how long keys are trusted after the last
// successful fetch. Past it, while the issuer stays unreachable, every token
// fails with [ErrKeysUnavailable].
//
// The default, zero, trusts the last good keys for as long as the issuer is
// down: an outage of the identity provider then never rejects a token signed
// by a key already held. Set a bound if a revoked key must stop working even
// when the issuer cannot be reached to say so. With a bound, the periodic
// refresh runs at least every half of it.
func WithMaxStaleness(d time.Duration) KeysetOption {
	return func(o *keysetOptions) error {
		if d < 0 {
			return fmt.Errorf("grpcjwt: WithMaxStaleness: %v is negative", d)
		}
		o.maxStaleness = d
		return nil
	}
}

// WithLazyFetch makes [NewRemoteKeyset] return without fetching; the first
// fetch runs in the background at once, and a token verified before it
// completes waits for it (bounded by the caller's ctx). By default the
// constructor fetches and fails if it cannot, so a wrong URL is found at
// start-up.
func WithLazyFetch() KeysetOption {
	return func(o *keysetOptions) error {
		o.lazy = true
		return nil
	}
}

// WithKeysetLogger sets where the keyset logs skipped keys and fetch
// failures: one line when a run of failures starts and one when it ends,
// never one per request. The default, like nil, is the [slog.Default] of
// the moment the keyset is built; pass slog.New(slog.DiscardHandler) to
// silence it. [WithLogger] is the interceptors' equivalent.
func WithKeysetLogger(l *slog.Logger) KeysetOption {
	return func(o *keysetOptions) error {
		o.logger = l
		return nil
	}
}

// withKeysetClock injects the clock (tests).
func withKeysetClock(now func() time.Time) KeysetOption {
	return func(o *keysetOptions) error {
		o.now = now
		return nil
	}
}

func buildKeysetOptions(opts []KeysetOption) (keysetOptions, error) {
	o := defaultKeysetOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	o.client = noDowngradeClient(o.client)
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.refreshDefault < o.refreshMin {
		o.refreshDefault = o.refreshMin
	}
	if o.refreshDefault > o.refreshMax {
		o.refreshDefault = o.refreshMax
	}
	return o, nil
}

// NewStaticKeyset returns a keyset holding the keys of the JWK Set document
// jwks, for tests and air-gapped deployments. Keys that cannot be used are
// skipped and logged as with a remote keyset; a document without a single
// usable key is an error. Only the logger and key-count options apply.
func NewStaticKeyset(jwks []byte, opts ...KeysetOption) (*Keyset, error) {
	o, err := buildKeysetOptions(opts)
	if err != nil {
		return nil, err
	}
	snap, err := parseKeySet(jwks, o.maxKeys)
	if err != nil {
		return nil, err
	}
	logSkips(o.logger, snap.skipped, nil)
	snap.loaded = o.now()
	ks := &Keyset{}
	ks.cur.Store(snap)
	return ks, nil
}

// parseKeySet parses a JWK Set document into a snapshot. Unusable keys are
// skipped (RFC 7517 §5) and listed in the snapshot for the caller to log; a
// document that is not a JWK Set, holds more than maxKeys entries or no
// usable key at all is an error, which names the first skipped key's
// reason.
func parseKeySet(doc []byte, maxKeys int) (*keySnapshot, error) {
	var set struct {
		Keys    []json.RawMessage `json:"keys"`
		JWKSURI *string           `json:"jwks_uri"`
	}
	if err := json.Unmarshal(doc, &set); err != nil || set.Keys == nil {
		if err == nil && set.JWKSURI != nil {
			// A discovery URL given where a JWK Set URL belongs.
			return nil, fmt.Errorf("grpcjwt: this is an issuer's metadata document, not a JWK Set: "+
				"pass its jwks_uri %s to NewRemoteKeyset, or the issuer to NewIssuerKeyset", quoted(*set.JWKSURI))
		}
		return nil, errors.New("grpcjwt: JWK Set is not a JSON object with a keys array")
	}
	if len(set.Keys) > maxKeys {
		return nil, fmt.Errorf("grpcjwt: JWK Set holds %d keys, more than the limit of %d", len(set.Keys), maxKeys)
	}
	snap := &keySnapshot{byKID: make(map[string][]*verifyKey, len(set.Keys))}
	for i, raw := range set.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			snap.skipped = append(snap.skipped, keySkip{index: i, kid: jwkKID(raw), reason: err.Error(), quiet: errors.Is(err, errEncryptionKey)})
			continue
		}
		dup := false
		for _, o := range snap.byKID[k.kid] {
			if o.algs&k.algs != 0 {
				dup = true
				break
			}
		}
		if dup {
			// Two keys under one kid for the same algorithm: the first in
			// the document wins, so the outcome never depends on map order.
			snap.skipped = append(snap.skipped, keySkip{index: i, kid: k.kid, reason: "its kid and algorithm repeat an earlier key"})
			continue
		}
		snap.byKID[k.kid] = append(snap.byKID[k.kid], k)
		snap.all = append(snap.all, k)
	}
	if len(snap.all) == 0 {
		if len(snap.skipped) > 0 {
			s := snap.skipped[0]
			return nil, fmt.Errorf("grpcjwt: JWK Set holds no usable signing key (%d skipped; key %d: %s)", len(snap.skipped), s.index, s.reason)
		}
		return nil, errors.New("grpcjwt: JWK Set holds no usable signing key")
	}
	snap.held = heldKIDs(snap.all)
	return snap, nil
}

// jwkKID returns the string "kid" of a JWK, or "".
func jwkKID(raw []byte) string {
	var k struct {
		Kid any `json:"kid"`
	}
	if json.Unmarshal(raw, &k) != nil {
		return ""
	}
	kid, _ := k.Kid.(string)
	return kid
}

// lookup returns the keys that may verify a token with this kid and alg,
// refreshing a remote keyset once (rate limited, shared with concurrent
// callers) when none are held. ctx bounds only this caller's wait.
func (ks *Keyset) lookup(ctx context.Context, kid string, a alg, limit int) ([]*verifyKey, error) {
	snap := ks.fresh()
	if keys, known := snap.find(kid, a, limit); len(keys) > 0 {
		return keys, nil
	} else if known {
		return nil, fmt.Errorf("%w: the key named by kid %q allows %s, not %s", ErrAlgorithm, kid, snap.kidAlgs(kid), a)
	}
	if ks.remote == nil {
		return nil, ErrUnknownKey
	}
	joined, err := ks.remote.fetchMode(ctx, fetchOnDemand)
	snap = ks.fresh()
	keys, known := snap.find(kid, a, limit)
	if len(keys) == 0 && !known && joined && err == nil {
		// The fetch joined may predate the key: ask once more.
		_, err = ks.remote.fetchMode(ctx, fetchFollowUp)
		snap = ks.fresh()
		keys, known = snap.find(kid, a, limit)
	}
	if len(keys) > 0 {
		return keys, nil
	} else if known {
		return nil, fmt.Errorf("%w: the key named by kid %q allows %s, not %s", ErrAlgorithm, kid, snap.kidAlgs(kid), a)
	}
	err = opaqueFetchError(err)
	switch {
	case snap == nil && err != nil:
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	case snap == nil:
		return nil, ErrKeysUnavailable
	case errors.Is(err, errRateLimited):
		return nil, fmt.Errorf("%w: refresh skipped, %w; %s", ErrUnknownKey, err, snap.held)
	case err != nil:
		return nil, fmt.Errorf("%w: refresh failed: %w; %s", ErrUnknownKey, err, snap.held)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownKey, snap.held)
}

// heldKIDs names the keys a snapshot holds, for an unknown-key error: the
// issuer's own values, so that an operator can compare them with the
// issuer's JWK Set (the token's kid is not verified and is not named).
// Each snapshot formats it once, as it is built, not per refusal.
func heldKIDs(keys []*verifyKey) string {
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.kid)
	}
	if len(kids) > 10 {
		return fmt.Sprintf("the keyset holds %d keys, kids %s and %d more", len(kids), quotedList(kids[:10]), len(kids)-10)
	}
	return "the keyset holds kids " + quotedList(kids)
}

// errFetchFailed stands in, in errors that reach Verify's callers, for the
// cause of a failed fetch: network errors name internal hosts and
// addresses, so their text stays in the keyset's log.
var errFetchFailed = errors.New("JWKS fetch failed (the keyset log has the cause)")

// opaqueFetchError keeps the classes a caller may test for (its own ctx
// ending, a closed keyset, the rate limit) and hides the rest.
func opaqueFetchError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errRateLimited), errors.Is(err, ErrKeysetClosed):
		return err
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", errFetchFailed, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", errFetchFailed, context.DeadlineExceeded)
	}
	return errFetchFailed
}

// find returns the keys of the snapshot that may verify a token with this
// kid and alg: the one key for a known kid (parseKeySet keeps at most one
// per kid and algorithm), or for a token without kid at most limit keys
// that allow alg. known reports whether a non-empty kid is in the set.
func (s *keySnapshot) find(kid string, a alg, limit int) (keys []*verifyKey, known bool) {
	if s == nil {
		return nil, false
	}
	if kid == "" {
		for _, k := range s.all {
			if k.algs.has(a) {
				keys = append(keys, k)
				if len(keys) == limit {
					break
				}
			}
		}
		return keys, false
	}
	byKID, ok := s.byKID[kid]
	if !ok {
		return nil, false
	}
	for i, k := range byKID {
		if k.algs.has(a) {
			return byKID[i : i+1 : i+1], true
		}
	}
	return nil, true
}

// fresh returns the current snapshot, or nil when there is none or it has
// outlived the maximum staleness.
func (ks *Keyset) fresh() *keySnapshot {
	s := ks.cur.Load()
	if s == nil || ks.remote == nil || ks.remote.o.maxStaleness == 0 {
		return s
	}
	if ks.remote.o.now().Sub(s.loaded) > ks.remote.o.maxStaleness {
		return nil
	}
	return s
}

// usable reports whether a key that verified a cached token may still be
// trusted: it is still published and not past the maximum staleness.
func (ks *Keyset) usable(k *verifyKey) bool {
	if k.removed.Load() {
		return false
	}
	return ks.remote == nil || ks.remote.o.maxStaleness == 0 || ks.fresh() != nil
}

// install publishes snap, carrying over the identity of keys that are still
// published and marking those that are gone as removed.
func (ks *Keyset) install(snap *keySnapshot) {
	old := ks.cur.Load()
	if old != nil {
		for i, k := range snap.all {
			for _, o := range old.byKID[k.kid] {
				if o.sameKey(k) {
					snap.all[i] = o
					same := snap.byKID[k.kid]
					for j := range same {
						if same[j] == k {
							same[j] = o
						}
					}
					break
				}
			}
		}
	}
	ks.cur.Store(snap)
	if old != nil {
		for _, o := range old.all {
			kept := false
			for _, k := range snap.byKID[o.kid] {
				if k == o {
					kept = true
					break
				}
			}
			if !kept {
				o.removed.Store(true)
			}
		}
	}
}

// errRateLimited reports an on-demand refresh refused by the rate limit.
var errRateLimited = errors.New("unknown-key refresh rate limit in force")

// remoteSource fetches and refreshes a remote JWK Set.
type remoteSource struct {
	ks     *Keyset
	url    string
	o      keysetOptions
	ctx    context.Context // the keyset's own; ends at Close
	cancel context.CancelFunc
	loop   chan struct{} // closed when the background loop returns
	wg     sync.WaitGroup

	mu           sync.Mutex
	closed       bool
	call         *fetchCall // the fetch in flight, if any
	lastOnDemand time.Time  // start of the last refresh triggered by an unknown kid
	followUpUsed bool       // a follow-up fetch ran since lastOnDemand
	failing      bool       // inside a run of failed fetches (logged once)
	lastTTL      time.Duration
	skipsSeen    map[string]bool // keySkip ids of the last fetch, logged then
}

// fetchCall is one fetch shared by every caller that waits for it.
type fetchCall struct {
	done chan struct{}
	err  error
}

// NewRemoteKeyset returns a keyset that fetches the JWK Set at jwksURL and
// keeps it current until [Keyset.Close].
//
// ctx bounds the first fetch only (see [WithLazyFetch]); the keyset's
// background refreshes run on a context of its own that ends at Close. The
// URL must be absolute http or https; use https outside tests.
func NewRemoteKeyset(ctx context.Context, jwksURL string, opts ...KeysetOption) (*Keyset, error) {
	u, err := url.Parse(jwksURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return nil, fmt.Errorf("grpcjwt: NewRemoteKeyset: the JWKS URL %s is not an absolute http or https URL", quoted(jwksURL))
	}
	o, err := buildKeysetOptions(opts)
	if err != nil {
		return nil, err
	}
	ks := &Keyset{}
	r := &remoteSource{ks: ks, url: jwksURL, o: o, loop: make(chan struct{})}
	ks.remote = r
	if !o.lazy {
		// The first fetch runs under the caller's ctx and nothing keeps it.
		// The error goes to the caller, so the fetch does not log it.
		if err := r.fetch(ctx, false); err != nil {
			// An issuer's URL given where its JWK Set's belongs says so:
			// asked only of a server that answered, so that an unreachable
			// one costs one timeout, not two.
			var na noAnswer
			if !errors.As(err, &na) && ctx.Err() == nil {
				if md, derr := Discover(ctx, jwksURL, opts...); derr == nil {
					err = fmt.Errorf("%w; %s is an issuer, not a JWK Set URL: use NewIssuerKeyset, or its jwks_uri %s",
						err, quoted(jwksURL), quoted(md.JWKSURI))
				}
			}
			// Wrap ErrKeysUnavailable so that callers can tell an issuer
			// that is down at start-up from a configuration error.
			return nil, fmt.Errorf("%w: first JWKS fetch failed: %w", ErrKeysUnavailable, err)
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.run(!o.lazy)
	return ks, nil
}

// Close stops the keyset's background refresh and waits until every
// goroutine it started has returned. Keys already held stay usable. Close is
// safe to call more than once and on a static keyset.
func (ks *Keyset) Close() error {
	r := ks.remote
	if r == nil {
		return nil
	}
	r.mu.Lock()
	r.closed = true // from here on fetchShared starts no goroutine (no wg.Add)
	r.mu.Unlock()
	r.cancel()
	// Every caller waits for both the loop and the fetch goroutines: a second
	// Close racing the first must not return while a fetch is still running.
	<-r.loop
	r.wg.Wait()
	return nil
}

// run is the background loop: it refreshes on the schedule from the last
// response's caching headers and backs off after failures.
func (r *remoteSource) run(loaded bool) {
	defer close(r.loop)
	var wait time.Duration
	if loaded {
		r.mu.Lock()
		wait = r.jitter(r.lastTTL)
		r.mu.Unlock()
	}
	backoff := time.Duration(0)
	for {
		t := time.NewTimer(wait)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := r.fetchShared(r.ctx, false)
		if r.ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff = nextBackoff(backoff, r.o.refreshMin)
			wait = backoff
			continue
		}
		backoff = 0
		r.mu.Lock()
		wait = r.jitter(r.lastTTL)
		r.mu.Unlock()
	}
}

// nextBackoff doubles the wait after a failed fetch, from one second up to
// limit, with up to 20% random jitter.
func nextBackoff(prev, limit time.Duration) time.Duration {
	d := 2 * prev
	if d < time.Second {
		d = time.Second
	}
	if d > limit {
		d = limit
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// jitter shortens the interval by up to 10% so replicas drift apart.
func (r *remoteSource) jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// fetchShared runs a fetch, or joins the one in flight, and waits for its
// result or for ctx. The fetch itself runs on the keyset's context, so a
// caller that gives up harms no one else. An on-demand fetch (unknown kid)
// is refused with errRateLimited when another started within the minimum
// interval and none is in flight.
func (r *remoteSource) fetchShared(ctx context.Context, onDemand bool) error {
	mode := fetchPeriodic
	if onDemand {
		mode = fetchOnDemand
	}
	_, err := r.fetchMode(ctx, mode)
	return err
}

// fetchKind says who asks for a fetch, for the rate limit.
type fetchKind int

const (
	fetchPeriodic fetchKind = iota // the background schedule: never limited
	fetchOnDemand                  // an unknown kid: one per interval
	fetchFollowUp                  // an unknown kid after joining a fetch it did not start
)

// fetchMode is fetchShared for a kind of request; joined reports whether
// the caller joined a fetch that was already in flight.
//
// A caller that joins a fetch may have joined one that began before its key
// was published, so it may ask once for a follow-up fetch of its own. The
// limit then allows one on-demand and one follow-up fetch per interval:
// still a bound, and a token signed by a key published a moment ago still
// verifies on its first request.
func (r *remoteSource) fetchMode(ctx context.Context, kind fetchKind) (joined bool, err error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false, ErrKeysetClosed
	}
	c := r.call
	joined = c != nil
	if c == nil {
		now := r.o.now()
		limited := !r.lastOnDemand.IsZero() && now.Sub(r.lastOnDemand) < r.o.unknownKIDInterval
		switch {
		case kind == fetchPeriodic:
		case !limited:
			r.lastOnDemand = now
			r.followUpUsed = false
		case kind == fetchFollowUp && !r.followUpUsed:
			r.followUpUsed = true
		default:
			r.mu.Unlock()
			return false, errRateLimited
		}
		c = &fetchCall{done: make(chan struct{})}
		r.call = c
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := r.fetch(r.ctx, true)
			r.mu.Lock()
			r.call = nil
			c.err = err
			r.mu.Unlock()
			close(c.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-c.done:
		return joined, c.err
	case <-ctx.Done():
		return joined, ctx.Err()
	}
}

// fetch downloads and installs the JWK Set once. On failure the keys held
// stay; with logFailure, the first failure of a run is logged, and so is
// the recovery.
func (r *remoteSource) fetch(ctx context.Context, logFailure bool) error {
	start := r.o.now()
	snap, ttl, err := r.download(ctx)
	if r.o.onFetch != nil {
		defer r.reportFetch(start, err)
	}
	r.mu.Lock()
	if err != nil {
		startEpisode := !r.failing && ctx.Err() == nil && logFailure
		if startEpisode {
			r.failing = true
		}
		r.mu.Unlock()
		// Log outside the lock: a slow log handler must not hold up lookups.
		if startEpisode {
			r.o.logger.Warn("grpcjwt: JWKS fetch failed; keeping the keys already held",
				"error", err.Error(), "keys_held", len(r.ks.cur.Load().keysOrNil()))
		}
		return err
	}
	recovered := r.failing
	r.failing = false
	snap.loaded = start
	r.lastTTL = ttl
	r.ks.install(snap)
	seen := r.skipsSeen
	r.skipsSeen = skipIDs(snap.skipped)
	r.mu.Unlock()
	logSkips(r.o.logger, snap.skipped, seen) // only what the last fetch did not skip
	if recovered {
		r.o.logger.Info("grpcjwt: JWKS fetch recovered", "keys", len(snap.all))
	}
	return nil
}

// reportFetch tells the fetch hook how a fetch went.
func (r *remoteSource) reportFetch(start time.Time, err error) {
	now := r.o.now()
	e := FetchEvent{Err: err, Duration: now.Sub(start)}
	if snap := r.ks.cur.Load(); snap != nil {
		e.Keys = len(snap.all)
		if err != nil {
			e.Staleness = now.Sub(snap.loaded)
		}
	}
	r.o.onFetch(e)
}

// kidAlgs is the algorithms the keys published under kid allow.
func (s *keySnapshot) kidAlgs(kid string) algSet {
	var algs algSet
	if s != nil {
		for _, k := range s.byKID[kid] {
			algs |= k.algs
		}
	}
	return algs
}

func (s *keySnapshot) keysOrNil() []*verifyKey {
	if s == nil {
		return nil
	}
	return s.all
}

// download fetches and parses the JWK Set and returns the refresh interval
// its caching headers call for. Error texts never include the URL or body.
func (r *remoteSource) download(ctx context.Context) (*keySnapshot, time.Duration, error) {
	body, header, _, err := getCapped(ctx, r.o, r.url, "application/jwk-set+json, application/json", "JWKS")
	if err != nil {
		return nil, 0, err
	}
	snap, err := parseKeySet(body, r.o.maxKeys)
	if err != nil {
		return nil, 0, fmt.Errorf("%w (JWKS URL %s)", err, redacted(r.url))
	}
	return snap, r.refreshInterval(header, r.o.now()), nil
}

// refreshInterval derives the next refresh from Cache-Control max-age,
// else Expires, else the configured default, clamped to the bounds.
func (r *remoteSource) refreshInterval(h http.Header, now time.Time) time.Duration {
	d := r.o.refreshDefault
	if ttl, ok := cacheLifetime(h, now); ok {
		d = ttl
	}
	d = min(max(d, r.o.refreshMin), r.o.refreshMax)
	if r.o.maxStaleness > 0 {
		// Refresh well before the keys go stale, so that a healthy issuer
		// never lets them lapse.
		d = max(min(d, r.o.maxStaleness/2), time.Second)
	}
	return d
}

// maxCacheLifetime caps a max-age or Expires lifetime; it stands in for
// "the greatest positive integer" of RFC 9111 §1.2.2 when max-age overflows.
const maxCacheLifetime = 365 * 24 * time.Hour

// cacheLifetime reads a response's freshness lifetime (RFC 9111 §4.2.1):
// no-cache or no-store as zero wherever they appear (the most restrictive
// directive wins), else the first max-age (an invalid one as zero, one too
// large to represent as the cap), else Expires minus Date (or now).
func cacheLifetime(h http.Header, now time.Time) (time.Duration, bool) {
	maxAge, haveMaxAge := time.Duration(0), false
	for _, cc := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(cc, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache", "no-store":
				return 0, true
			case "max-age":
				if !haveMaxAge {
					maxAge, haveMaxAge = parseDeltaSeconds(strings.Trim(strings.TrimSpace(val), `"`)), true
				}
			}
		}
	}
	if haveMaxAge {
		return maxAge, true
	}
	if exp := h.Get("Expires"); exp != "" {
		t, err := http.ParseTime(exp)
		if err != nil {
			return 0, true // an invalid Expires means already expired
		}
		base := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			base = d
		}
		return min(max(t.Sub(base), 0), maxCacheLifetime), true
	}
	return 0, false
}

// redacted is u with any password replaced, for error texts.
func redacted(u string) string {
	if pu, err := url.Parse(u); err == nil {
		return pu.Redacted()
	}
	return u
}

// parseDeltaSeconds reads delta-seconds (1*DIGIT, RFC 9111 §1.2.2). A value
// that is not one is invalid freshness information and reads as zero
// (stale, §4.2.1); one too large to represent reads as the cap.
func parseDeltaSeconds(v string) time.Duration {
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > int64(maxCacheLifetime/time.Second) {
		return maxCacheLifetime // only digits, so err is a range error
	}
	return time.Duration(n) * time.Second
}
