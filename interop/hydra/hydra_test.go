// Interop tests of grpcjwt against Ory Hydra v2, a second real identity
// provider: its JWT access tokens (strategies.access_token: jwt), its
// discovery document and JWK Set, its admin API (clients, key sets, login
// and consent), reached over real HTTP, in front of a real gRPC server
// (bufconn) serving examples/orderpb behind grpcjwt's interceptors.
//
// Each test starts its own Hydra (hydra serve all --dev, dsn: memory, free
// ports on 127.0.0.1, a temporary directory for its config and log) and
// stops it, by its process group, when the test ends. The binary comes from
// GRPCJWT_HYDRA_BIN; without it the tests skip, unless
// GRPCJWT_HYDRA_REQUIRED=1 (interop/hydra/ci.sh sets both):
//
//	bash interop/hydra/ci.sh
//	GRPCJWT_HYDRA_BIN="$(bash interop/hydra/build.sh)" go test -count=1 -race -v ./interop/hydra/
package hydra_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/interop/internal/interoptest"
)

const (
	// envBin is the path of the Hydra binary (interop/hydra/build.sh
	// prints it). envRequired=1 turns a missing binary into a failure.
	// envPIDDir, when set, is a directory where each running Hydra has a
	// file named by its PID, removed once it is stopped: ci.sh kills what
	// is left there after go test, whatever happened to the test binary.
	envBin      = "GRPCJWT_HYDRA_BIN"
	envRequired = "GRPCJWT_HYDRA_REQUIRED"
	envPIDDir   = "GRPCJWT_HYDRA_PIDDIR"

	// The audiences and scopes of the server's policy (interoptest.Serve).
	apiAudience   = interoptest.APIAudience
	otherAudience = interoptest.OtherAudience
	scopeRead     = interoptest.ScopeRead
	scopeWrite    = interoptest.ScopeWrite
	bothScopes    = interoptest.BothScopes

	// Hydra's key sets: access tokens are signed with the newest key of
	// accessTokenSet, ID tokens with the newest of idTokenSet; its JWK Set
	// (/.well-known/jwks.json) publishes the public keys of both.
	accessTokenSet = "hydra.jwt.access-token"
	idTokenSet     = "hydra.openid.id-token"

	// unknownKeyInterval is the keyset's rate limit on refreshes triggered
	// by an unknown kid.
	unknownKeyInterval = 200 * time.Millisecond
	fetchTimeout       = 5 * time.Second

	callTimeout  = interoptest.CallTimeout
	pollDeadline = 15 * time.Second
	pollStep     = interoptest.PollStep

	// startTimeout bounds Hydra's start (migrations of its in-memory
	// SQLite database, key generation) on a loaded CI machine, and each
	// request that generates a 4096-bit RSA key; stopTimeout its graceful
	// shutdown before SIGKILL.
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
	logTailLines = 60
)

// ---- Hydra, the process -------------------------------------------------------

// hydraBinary returns the Hydra binary to run, or skips the test (fails it
// with GRPCJWT_HYDRA_REQUIRED=1) when none is configured.
func hydraBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(envBin)
	if bin == "" {
		msg := fmt.Sprintf("the Ory Hydra interop tests need a Hydra binary: %s is not set; "+
			"run `bash interop/hydra/ci.sh` (it builds Hydra from the Go module proxy, then runs these tests), "+
			"or `%s=\"$(bash interop/hydra/build.sh)\" go test -count=1 -race -v ./interop/hydra/`", envBin, envBin)
		if os.Getenv(envRequired) == "1" {
			t.Fatal(msg + " (" + envRequired + "=1: a missing binary is a failure)")
		}
		t.Skip(msg)
	}
	if !filepath.IsAbs(bin) {
		t.Fatalf("%s=%q: give an absolute path (go test runs in the package's directory)", envBin, bin)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s=%q is not an executable file (%v); build it with `bash interop/hydra/build.sh`", envBin, bin, err)
	}
	return bin
}

// hydra is one Hydra server: its configuration survives a restart (same
// ports, same issuer), its in-memory database (clients, keys) does not.
type hydra struct {
	t          *testing.T
	bin, dir   string
	issuer     string // http://127.0.0.1:PORT/, with the trailing slash
	public     string // http://127.0.0.1:PORT (no trailing slash)
	admin      string // http://127.0.0.1:ADMINPORT
	configPath string
	hc         *http.Client

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	pidFile string
	logs    []string // one log file per run
}

type hydraOptions struct {
	// loginURL and consentURL are Hydra's urls.login and urls.consent
	// (the login and consent app); empty for its built-in fallbacks.
	loginURL, consentURL string
}

// startHydra starts a Hydra on free ports and stops it when the test ends;
// if the test failed, the tail of its log goes to the test log.
func startHydra(t *testing.T, o hydraOptions) *hydra {
	t.Helper()
	bin := hydraBinary(t)
	ports := freePorts(t, 2)
	h := &hydra{
		t:      t,
		bin:    bin,
		dir:    t.TempDir(),
		issuer: fmt.Sprintf("http://127.0.0.1:%d/", ports[0]),
		public: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		admin:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		hc:     &http.Client{Transport: &http.Transport{}}, // every request has a context with a deadline
	}
	cfg := map[string]any{
		"dsn": "memory",
		"serve": map[string]any{
			"public": map[string]any{"host": "127.0.0.1", "port": ports[0]},
			"admin":  map[string]any{"host": "127.0.0.1", "port": ports[1]},
		},
		"urls": map[string]any{"self": map[string]any{"issuer": h.issuer}},
		// A fixed secret: it only encrypts keys at rest in a database
		// that lives as long as the process.
		"secrets":    map[string]any{"system": []string{"grpcjwt-interop-not-a-secret-0123456789"}},
		"strategies": map[string]any{"access_token": "jwt"},
		"log":        map[string]any{"level": "info", "format": "text"},
		"sqa":        map[string]any{"opt_out": true},
	}
	if o.loginURL != "" {
		cfg["urls"].(map[string]any)["login"] = o.loginURL
		cfg["urls"].(map[string]any)["consent"] = o.consentURL
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	h.configPath = filepath.Join(h.dir, "hydra.json")
	if err := os.WriteFile(h.configPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stop()
		h.hc.CloseIdleConnections()
		if t.Failed() {
			h.logTail()
		}
	})
	h.start()
	return h
}

// freePorts returns n distinct free TCP ports on 127.0.0.1 (listened on at
// once, then released for Hydra).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// start runs Hydra, waits until both its ports answer /health/ready, then
// requests its JWK Set once: a new Hydra creates its two key sets (a
// 4096-bit RSA key each) on first use, which takes from a fraction of a
// second to several on a loaded machine. Every test wants a Hydra that has
// its keys, as one that has been running does.
func (h *hydra) start() {
	t := h.t
	t.Helper()
	h.mu.Lock()
	if h.cmd != nil {
		h.mu.Unlock()
		t.Fatal("hydra: start while running")
	}
	logPath := filepath.Join(h.dir, fmt.Sprintf("hydra-%d.log", len(h.logs)+1))
	logf, err := os.Create(logPath)
	if err != nil {
		h.mu.Unlock()
		t.Fatal(err)
	}
	h.logs = append(h.logs, logPath)
	cmd := exec.Command(h.bin, "serve", "all", "--dev", "--sqa-opt-out", "--config", h.configPath)
	cmd.Dir = h.dir
	// A minimal environment: Hydra reads configuration from environment
	// variables too (DSN, LOG_LEVEL, ...), and the CI's must not leak in.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "TMPDIR=" + h.dir, "SQA_OPT_OUT=true"}
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd)
	began := time.Now()
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		h.mu.Unlock()
		t.Fatalf("hydra: start %s: %v", h.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	h.cmd, h.exited = cmd, exited
	if dir := os.Getenv(envPIDDir); dir != "" {
		h.pidFile = filepath.Join(dir, strconv.Itoa(cmd.Process.Pid))
		if err := os.WriteFile(h.pidFile, []byte(h.bin+"\n"), 0o600); err != nil {
			t.Errorf("hydra: PID file: %v", err)
		}
	}
	h.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for _, u := range []string{h.admin + "/health/ready", h.public + "/health/ready"} {
		for {
			select {
			case <-exited:
				t.Fatalf("hydra: exited during start (%v): see its log below", cmd.ProcessState)
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			resp, err := h.hc.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					cancel()
					break
				}
			}
			cancel()
			if time.Now().After(deadline) {
				t.Fatalf("hydra: %s not ready after %v (last: %v)", u, startTimeout, err)
			}
			time.Sleep(pollStep)
		}
	}
	ready := time.Since(began)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var set struct{ Keys []jwk }
	if err := h.do(ctx, http.MethodGet, h.public+"/.well-known/jwks.json", nil, &set, http.StatusOK); err != nil {
		t.Fatalf("hydra: first JWK Set request: %v", err)
	}
	t.Logf("hydra: pid %d ready in %v, its %d keys generated in %v more; issuer %s, admin %s", cmd.Process.Pid,
		ready.Round(time.Millisecond), len(set.Keys), (time.Since(began) - ready).Round(time.Millisecond), h.issuer, h.admin)
}

// stop sends SIGTERM to Hydra's process group and waits for it to exit
// (SIGKILL after stopTimeout). It does nothing when Hydra is not running.
func (h *hydra) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return
	}
	began := time.Now()
	signalGroup(h.cmd, syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(stopTimeout):
		h.t.Errorf("hydra: pid %d still running %v after SIGTERM; sending SIGKILL", h.cmd.Process.Pid, stopTimeout)
		signalGroup(h.cmd, syscall.SIGKILL)
		<-h.exited
	}
	h.t.Logf("hydra: pid %d stopped in %v", h.cmd.Process.Pid, time.Since(began).Round(time.Millisecond))
	if h.pidFile != "" {
		os.Remove(h.pidFile)
		h.pidFile = ""
	}
	h.cmd, h.exited = nil, nil
	h.hc.CloseIdleConnections()
}

// logTail writes the last lines of each of Hydra's logs to the test log.
func (h *hydra) logTail() {
	for _, p := range h.logs {
		b, err := os.ReadFile(p)
		if err != nil {
			h.t.Logf("hydra log %s: %v", p, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > logTailLines {
			lines = lines[len(lines)-logTailLines:]
		}
		h.t.Logf("---- last %d lines of %s ----\n%s", len(lines), filepath.Base(p), strings.Join(lines, "\n"))
	}
}

// ---- Hydra, over HTTP ------------------------------------------------------------

// do sends a JSON request (body may be nil) and decodes a JSON answer into
// out (may be nil); any status but want is an error.
func (h *hydra) do(ctx context.Context, method, u string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d, want %d: %s", method, u, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, u, err, b)
		}
	}
	return nil
}

func (h *hydra) mustDo(t *testing.T, method, u string, body, out any, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	if err := h.do(ctx, method, u, body, out, want); err != nil {
		t.Fatal(err)
	}
}

type discovery struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	TokenEndpoint string   `json:"token_endpoint"`
	AuthEndpoint  string   `json:"authorization_endpoint"`
	IDTokenAlgs   []string `json:"id_token_signing_alg_values_supported"`
}

func (h *hydra) discovery(t *testing.T) discovery {
	t.Helper()
	var d discovery
	h.mustDo(t, http.MethodGet, h.public+"/.well-known/openid-configuration", nil, &d, http.StatusOK)
	return d
}

type jwk struct {
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Use string `json:"use"`
	N   string `json:"n"`
}

// jwks is the public JWK Set, as the verifier's keyset fetches it.
func (h *hydra) jwks(t *testing.T) []jwk {
	t.Helper()
	var set struct{ Keys []jwk }
	h.mustDo(t, http.MethodGet, h.public+"/.well-known/jwks.json", nil, &set, http.StatusOK)
	return set.Keys
}

// keySet is one of Hydra's key sets through the admin API, newest first.
func (h *hydra) keySet(t *testing.T, set string) []jwk {
	t.Helper()
	var s struct{ Keys []jwk }
	h.mustDo(t, http.MethodGet, h.admin+"/admin/keys/"+set, nil, &s, http.StatusOK)
	return s.Keys
}

// addKey has Hydra generate a key of alg with kid and add it to set
// (POST /admin/keys/{set}); the set's other keys stay.
func (h *hydra) addKey(t *testing.T, set, alg, kid string) jwk {
	t.Helper()
	var s struct{ Keys []jwk }
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout) // an RSA key takes seconds
	defer cancel()
	if err := h.do(ctx, http.MethodPost, h.admin+"/admin/keys/"+set,
		map[string]string{"alg": alg, "kid": kid, "use": "sig"}, &s, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	if len(s.Keys) != 1 || s.Keys[0].Kid != kid || s.Keys[0].Alg != alg {
		t.Fatalf("POST /admin/keys/%s (%s, %s): got %+v", set, alg, kid, s.Keys)
	}
	return s.Keys[0]
}

type client struct {
	ID, Secret string
}

// createClient registers an OAuth 2.0 client (POST /admin/clients); Hydra
// picks its ID and secret.
func (h *hydra) createClient(t *testing.T, c map[string]any) client {
	t.Helper()
	var out struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	h.mustDo(t, http.MethodPost, h.admin+"/admin/clients", c, &out, http.StatusCreated)
	if out.ID == "" || out.Secret == "" {
		t.Fatalf("POST /admin/clients: no client_id or client_secret: %+v", out)
	}
	return client{ID: out.ID, Secret: out.Secret}
}

// m2mClient registers a client_credentials client allowed both audiences
// and both scopes.
func (h *hydra) m2mClient(t *testing.T) client {
	t.Helper()
	return h.createClient(t, map[string]any{
		"client_name":                "grpcjwt-m2m",
		"grant_types":                []string{"client_credentials"},
		"scope":                      bothScopes,
		"audience":                   []string{apiAudience, otherAudience},
		"token_endpoint_auth_method": "client_secret_basic",
	})
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// tokenE requests a client_credentials access token for the audiences
// (Hydra's "audience" parameter, space-separated) and scope; it can run on
// any goroutine.
func (h *hydra) tokenE(ctx context.Context, c client, aud []string, scope string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(aud) > 0 {
		form.Set("audience", strings.Join(aud, " "))
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	tr, err := h.tokenRequest(ctx, c, form)
	if err != nil {
		return "", err
	}
	return tr.AccessToken, nil
}

func (h *hydra) tokenRequest(ctx context.Context, c client, form url.Values) (tokenResponse, error) {
	var tr tokenResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.public+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tr, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	resp, err := h.hc.Do(req)
	if err != nil {
		return tr, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		return tr, &tokenError{form.Get("grant_type"), resp.StatusCode, string(body)}
	}
	if !strings.EqualFold(tr.TokenType, "bearer") {
		return tr, fmt.Errorf("token_type %q, want bearer", tr.TokenType)
	}
	return tr, nil
}

// tokenError is a token endpoint's refusal.
type tokenError struct {
	grant  string
	status int
	body   string
}

func (e *tokenError) Error() string {
	return fmt.Sprintf("token request (%s): HTTP %d: %s", e.grant, e.status, e.body)
}

func (h *hydra) token(t *testing.T, c client, aud []string, scope string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	tok, err := h.tokenE(ctx, c, aud, scope)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ---- tokens, unverified (for assertions only) ---------------------------------

// payloadOf decodes the claims set (numbers as json.Number).
func payloadOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %.40q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// claimNames lists a claims set's names, sorted.
func claimNames(m map[string]any) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// strings of a JSON array claim; ok is false if the claim is not an array
// of strings.
func stringArray(v any) (out []string, ok bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out = []string{}
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func numberClaim(t *testing.T, m map[string]any, name string) int64 {
	t.Helper()
	n, ok := m[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %#v, want a number", name, m[name])
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s = %v: %v", name, n, err)
	}
	return i
}

// ---- the protected gRPC server ------------------------------------------------

// fetchCounter counts what the verifier's keyset asks Hydra for: HTTP
// requests by kind (counted on the wire, by a RoundTripper) and the
// keyset's own fetch events (WithFetchHook).
type fetchCounter struct {
	jwksPath      string
	jwksRequests  atomic.Int64
	jwksInFlight  atomic.Int64
	otherRequests atomic.Int64
	fetchOK       atomic.Int64
	fetchFailed   atomic.Int64
	base          http.RoundTripper

	mu     sync.Mutex
	events []fetchRecord
}

// fetchRecord is one keyset fetch: when it ended, and the event.
type fetchRecord struct {
	at time.Time
	ev grpcjwt.FetchEvent
}

func (r fetchRecord) String() string {
	res := "ok"
	if r.ev.Err != nil {
		res = "failed: " + r.ev.Err.Error()
	}
	return fmt.Sprintf("%s took %v, %d keys held, %s", r.at.Format("15:04:05.000"), r.ev.Duration.Round(time.Millisecond), r.ev.Keys, res)
}

// since returns the fetches that ended after t.
func (c *fetchCounter) since(t time.Time) []fetchRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []fetchRecord
	for _, r := range c.events {
		if r.at.After(t) {
			out = append(out, r)
		}
	}
	return out
}

func (c *fetchCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == c.jwksPath {
		c.jwksRequests.Add(1)
		c.jwksInFlight.Add(1)
		defer c.jwksInFlight.Add(-1)
	} else {
		c.otherRequests.Add(1)
	}
	return c.base.RoundTrip(r)
}

func (c *fetchCounter) hook(ev grpcjwt.FetchEvent) {
	c.mu.Lock()
	c.events = append(c.events, fetchRecord{time.Now(), ev})
	c.mu.Unlock()
	if ev.Err != nil {
		c.fetchFailed.Add(1)
	} else {
		c.fetchOK.Add(1)
	}
}

type fetchCounts struct{ jwks, ok, failed int64 }

func (c *fetchCounter) snapshot() fetchCounts {
	return fetchCounts{c.jwksRequests.Load(), c.fetchOK.Load(), c.fetchFailed.Load()}
}

func (a fetchCounts) minus(b fetchCounts) fetchCounts {
	return fetchCounts{a.jwks - b.jwks, a.ok - b.ok, a.failed - b.failed}
}

// harness is one keyset (from Hydra's discovery) + verifier + gRPC server
// over bufconn + client (the calls and their tally: interoptest.Client).
type harness struct {
	*interoptest.Client
	ks      *grpcjwt.Keyset
	v       *grpcjwt.Verifier
	fetches *fetchCounter
}

type config struct {
	audiences []string // default: both
	keyset    []grpcjwt.KeysetOption
	verifier  []grpcjwt.VerifierOption
}

// newHarness discovers Hydra with NewIssuerKeyset(issuer with its trailing
// slash), with no WithIssuer and no WithAlgorithms: the issuer and the
// algorithms are what discovery and the JWK Set say.
func newHarness(t *testing.T, hy *hydra, cfg config) *harness {
	t.Helper()
	logger := interoptest.Logger(t, slog.LevelInfo)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	fc := &fetchCounter{jwksPath: "/.well-known/jwks.json", base: tr}
	ksOpts := append([]grpcjwt.KeysetOption{
		grpcjwt.WithHTTPClient(&http.Client{Transport: fc}),
		grpcjwt.WithUnknownKeyRefreshInterval(unknownKeyInterval),
		grpcjwt.WithFetchTimeout(fetchTimeout),
		grpcjwt.WithKeysetLogger(logger),
		grpcjwt.WithFetchHook(fc.hook),
	}, cfg.keyset...)
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	ks, err := grpcjwt.NewIssuerKeyset(ctx, hy.issuer, ksOpts...)
	if err != nil {
		t.Fatalf("NewIssuerKeyset(%q): %v", hy.issuer, err)
	}
	t.Cleanup(func() { ks.Close() })
	if got := fc.snapshot(); got.jwks != 1 || got.ok != 1 {
		t.Fatalf("NewIssuerKeyset: %+v JWKS requests/fetches, want exactly one of each", got)
	}

	auds := cfg.audiences
	if auds == nil {
		auds = []string{apiAudience, otherAudience}
	}
	vOpts := append([]grpcjwt.VerifierOption{
		grpcjwt.WithAudience(auds...),
		grpcjwt.WithScopeClaims("scp"),
	}, cfg.verifier...)
	v, err := grpcjwt.NewVerifier(ks, vOpts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}

	return &harness{Client: interoptest.Serve(t, v, logger), ks: ks, v: v, fetches: fc}
}

// waitFor polls cond every pollStep until it holds, failing the test after
// pollDeadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	interoptest.WaitFor(t, pollDeadline, what, cond)
}

func verifyCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}
