package connectjwt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/connectjwt"
)

// TestMiddlewarePreAuth checks that the Middleware refuses calls without a
// well-formed bearer token before any request body is read, in every
// protocol and kind of call, including a 1 MiB unary request; that it lets
// well-formed tokens through to the Interceptor, which decides; and that
// public procedures and requests that are not RPCs pass.
func TestMiddlewarePreAuth(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	v := ctVerifier(t, is)
	policy := grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{ctEmpty: {Public: true}}))
	logs := &ctLogs{}
	e := ctServe(t, v, true, policy, grpcjwt.WithLogger(slog.New(logs)))
	bare := ctServe(t, v, false, policy) // the Interceptor alone

	large := &testpb.SimpleRequest{Payload: ctPayload(strings.Repeat("x", 1<<20))}
	callLarge := func(e *ctEnv, protocol string, auth []string) ctOutcome {
		c := connect.NewClient[testpb.SimpleRequest, testpb.SimpleResponse](e.client, e.srv.URL+ctUnary, ctProtocolOption(protocol))
		req := connect.NewRequest(large)
		for _, a := range auth {
			req.Header().Add("Authorization", a)
		}
		_, err := c.CallUnary(t.Context(), req)
		return ctOutcomeOf(err, nil)
	}

	for _, protocol := range ctProtocols {
		for _, kind := range ctKinds {
			before := e.impl.bodyReads.Load()
			o := e.call(t.Context(), ctCall{protocol: protocol, kind: kind, n: 2})
			if o.code != connect.CodeUnauthenticated || o.msg != "missing bearer token" {
				t.Errorf("%s, %s without token: got %v", protocol, kind, o)
			}
			if reads := e.impl.bodyReads.Load() - before; reads != 0 {
				t.Errorf("%s, %s without token: the request body was read %d times", protocol, kind, reads)
			}
		}
		before := e.impl.bodyReads.Load()
		if o := callLarge(e, protocol, nil); o.code != connect.CodeUnauthenticated || o.msg != "missing bearer token" {
			t.Errorf("%s, 1 MiB without token: got %v", protocol, o)
		}
		if reads := e.impl.bodyReads.Load() - before; reads != 0 {
			t.Errorf("%s, 1 MiB without token: the request body was read %d times", protocol, reads)
		}
		// Without the middleware connect reads and decodes the whole
		// request before the Interceptor refuses it.
		before = bare.impl.bodyReads.Load()
		if o := callLarge(bare, protocol, nil); o.code != connect.CodeUnauthenticated || o.msg != "missing bearer token" {
			t.Errorf("%s, 1 MiB without token, Interceptor alone: got %v", protocol, o)
		}
		if reads := bare.impl.bodyReads.Load() - before; reads == 0 {
			t.Errorf("%s, 1 MiB without token, Interceptor alone: the body was not read; the check above proves nothing", protocol)
		}

		// A well-formed token passes the middleware; the Interceptor
		// verifies it, and refuses a bad signature.
		forged := ctMint(is, nil, ctAudience)
		forged = forged[:len(forged)-4] + "AAAA"
		if o := e.call(t.Context(), ctCall{protocol: protocol, kind: "unary", auth: ctBearer(forged)}); o.code != connect.CodeUnauthenticated || o.msg != "invalid token signature" {
			t.Errorf("%s, forged token: got %v, want the Interceptor's refusal", protocol, o)
		}
		if o := e.call(t.Context(), ctCall{protocol: protocol, kind: "server", auth: ctBearer(ctMint(is, nil, ctAudience)), n: 1}); o.err != nil || o.sub() != "user-123" {
			t.Errorf("%s, valid token: got %v, subject %q", protocol, o, o.sub())
		}
		// A public procedure passes without a token.
		if o := e.callEmpty(t.Context(), protocol, nil); o.err != nil || o.sub() != ctNoClaims {
			t.Errorf("%s, public procedure without token: got %v", protocol, o)
		}
	}
	// The middleware's refusals are not logged; the Interceptor's are.
	if got := len(logs.find("grpcjwt: call refused", map[string]string{"error": "grpcjwt: missing bearer token"})); got != 0 {
		t.Errorf("%d refusals of the middleware logged, want none", got)
	}
	if got := len(logs.find("grpcjwt: call refused", map[string]string{"reason": "grpcjwt: invalid token signature"})); got != len(ctProtocols) {
		t.Errorf("%d refusals of forged tokens logged, want %d", got, len(ctProtocols))
	}

	// Requests that are not RPCs pass untouched: connect answers them.
	for _, tc := range []struct {
		method, contentType string
		want                int
	}{
		{http.MethodPut, "application/proto", http.StatusMethodNotAllowed},
		{http.MethodPost, "text/plain", http.StatusUnsupportedMediaType},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, e.srv.URL+ctUnary, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", tc.contentType)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s %s: status %d, WWW-Authenticate %q; want %d from connect, no challenge", tc.method, tc.contentType,
				resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.want)
		}
	}
}

// TestMiddlewareConnectGET checks a Connect unary call made with an HTTP
// GET (a procedure without side effects): refused by the middleware with
// HTTP 401 and the challenge as a header, and accepted with a token.
func TestMiddlewareConnectGET(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	for _, middleware := range []bool{true, false} {
		e := ctServe(t, ctVerifier(t, is), middleware)
		rec := &ctRecorder{base: e.client.Transport}
		c := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](&http.Client{Transport: rec},
			e.srv.URL+ctHealth, connect.WithHTTPGet(), connect.WithIdempotency(connect.IdempotencyNoSideEffects))
		_, err := c.CallUnary(t.Context(), connect.NewRequest(&healthpb.HealthCheckRequest{}))
		o := ctOutcomeOf(err, nil)
		if o.code != connect.CodeUnauthenticated || o.msg != "missing bearer token" || rec.resp.Request.Method != http.MethodGet ||
			rec.resp.StatusCode != http.StatusUnauthorized || rec.resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("middleware %v, GET without token: got %v, HTTP %s %d, WWW-Authenticate %q", middleware, o,
				rec.resp.Request.Method, rec.resp.StatusCode, rec.resp.Header.Get("WWW-Authenticate"))
		}
		req := connect.NewRequest(&healthpb.HealthCheckRequest{})
		req.Header().Set("Authorization", "Bearer "+ctMint(is, nil, ctAudience))
		res, err := c.CallUnary(t.Context(), req)
		if err != nil || res.Header().Get("x-sub") != "user-123" || rec.resp.Request.Method != http.MethodGet {
			t.Errorf("middleware %v, GET with token: %v", middleware, err)
		}
	}
}

// TestMiddlewarePathPrefix checks that the Middleware finds the procedure
// at the end of a path under a prefix.
func TestMiddlewarePathPrefix(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	auth := connectjwt.NewInterceptor(ctVerifier(t, is), grpcjwt.WithLogger(ctDiscard),
		grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{ctEmpty: {Public: true}})))
	impl := &ctServer{}
	e := ctServeHandler(t, impl, auth.Middleware(http.StripPrefix("/api/v1", impl.mux(connect.WithInterceptors(auth)))))
	for _, protocol := range ctProtocols {
		before := impl.bodyReads.Load()
		if o := e.call(t.Context(), ctCall{protocol: protocol, kind: "unary", procedure: "/api/v1" + ctUnary}); o.code != connect.CodeUnauthenticated {
			t.Errorf("%s, protected procedure without token: got %v", protocol, o)
		}
		if reads := impl.bodyReads.Load() - before; reads != 0 {
			t.Errorf("%s: the body was read %d times", protocol, reads)
		}
		c := connect.NewClient[testpb.Empty, testpb.Empty](e.client, e.srv.URL+"/api/v1"+ctEmpty, ctProtocolOption(protocol))
		if _, err := c.CallUnary(t.Context(), connect.NewRequest(&testpb.Empty{})); err != nil {
			t.Errorf("%s, public procedure without token: %v", protocol, err)
		}
	}
}

// ctCert returns a self-signed client certificate and its RFC 8705
// thumbprint (x5t#S256).
func ctCert(t *testing.T, cn string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, base64.RawURLEncoding.EncodeToString(sum[:])
}

// withClientCert returns a copy of e whose client presents cert (none if
// nil) over its own connections.
func (e *ctEnv) withClientCert(t *testing.T, cert *tls.Certificate) *ctEnv {
	t.Helper()
	tr := e.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = nil
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	t.Cleanup(tr.CloseIdleConnections)
	c := *e
	c.client = &http.Client{Transport: tr}
	return &c
}

// TestCertificateBound checks certificate-bound tokens (RFC 8705): behind
// the Middleware, which hands the TLS state to the Interceptor, a bound
// token is accepted over mutual TLS with its certificate only; with the
// Interceptor alone, which sees no certificate, every bound token is
// refused (fail closed), and so is every call to a CertificateBound rule.
func TestCertificateBound(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	v := ctVerifier(t, is)
	alice, aliceX5T := ctCert(t, "alice")
	bob, _ := ctCert(t, "bob")
	bound := ctBearer(ctMint(is, func(m map[string]any) { m["cnf"] = map[string]any{"x5t#S256": aliceX5T} }, ctAudience))
	plain := ctBearer(ctMint(is, nil, ctAudience))
	policy := grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{ctBidi: {CertificateBound: true}}))
	withMW, alone := ctServe(t, v, true, policy), ctServe(t, v, false, policy)
	const notBound = "token not bound to this client certificate"

	for _, tc := range []struct {
		name string
		e    *ctEnv
		auth []string
		kind string
		code connect.Code
	}{
		{"middleware, alice, bound token", withMW.withClientCert(t, &alice), bound, "unary", 0},
		{"middleware, alice, bound token, stream", withMW.withClientCert(t, &alice), bound, "server", 0},
		{"middleware, alice, bound token, bound rule", withMW.withClientCert(t, &alice), bound, "bidi", 0},
		{"middleware, alice, plain token", withMW.withClientCert(t, &alice), plain, "unary", 0},
		{"middleware, alice, plain token, bound rule", withMW.withClientCert(t, &alice), plain, "bidi", connect.CodeUnauthenticated},
		{"middleware, bob, alice's token", withMW.withClientCert(t, &bob), bound, "unary", connect.CodeUnauthenticated},
		{"middleware, no certificate, bound token", withMW.withClientCert(t, nil), bound, "client", connect.CodeUnauthenticated},
		{"interceptor alone, alice, bound token", alone.withClientCert(t, &alice), bound, "unary", connect.CodeUnauthenticated},
		{"interceptor alone, alice, bound token, bound rule", alone.withClientCert(t, &alice), bound, "bidi", connect.CodeUnauthenticated},
		{"interceptor alone, alice, plain token", alone.withClientCert(t, &alice), plain, "server", 0},
	} {
		for _, protocol := range ctProtocols {
			o := tc.e.call(t.Context(), ctCall{protocol: protocol, kind: tc.kind, auth: tc.auth, n: 1})
			if o.code != tc.code {
				t.Errorf("%s, %s: got %v, want %v", tc.name, protocol, o, tc.code)
			}
			if o.code != 0 && o.msg != notBound {
				t.Errorf("%s, %s: message %q, want %q", tc.name, protocol, o.msg, notBound)
			}
			if o.code == 0 && o.sub() != "user-123" {
				t.Errorf("%s, %s: subject %q", tc.name, protocol, o.sub())
			}
		}
	}
}
