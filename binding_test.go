package grpcjwt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// bindingPKI is a test CA with a server certificate for 127.0.0.1 and two
// client certificates.
type bindingPKI struct {
	pool               *x509.CertPool
	server, alice, bob tls.Certificate
}

func newBindingPKI(t *testing.T) *bindingPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "grpcjwt test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pki := &bindingPKI{pool: x509.NewCertPool()}
	pki.pool.AddCert(ca)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ip bool) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pki.server = leaf(2, "server", x509.ExtKeyUsageServerAuth, true)
	pki.alice = leaf(3, "alice", x509.ExtKeyUsageClientAuth, false)
	pki.bob = leaf(4, "bob", x509.ExtKeyUsageClientAuth, false)
	return pki
}

// thumbprint is the RFC 8705 x5t#S256 of a certificate.
func thumbprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type bindingServer struct {
	testpb.UnimplementedTestServiceServer
}

func (bindingServer) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{}, nil
}

func (bindingServer) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}

func TestCertificateBoundTokens(t *testing.T) {
	pki := newBindingPKI(t)
	is := grpcjwttest.NewIssuer()
	defer is.Close()
	ks, err := grpcjwt.NewStaticKeyset(is.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	v, err := grpcjwt.NewVerifier(ks, grpcjwt.WithIssuer(is.URL()), grpcjwt.WithAudience("api"))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{
		testpb.TestService_UnaryCall_FullMethodName: {CertificateBound: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The server asks for a client certificate but does not require one, so
	// that the interceptor, not the handshake, decides.
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
			ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12,
		})),
		grpc.UnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, grpcjwt.WithPolicy(policy))),
	)
	testpb.RegisterTestServiceServer(srv, bindingServer{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	dial := func(cert *tls.Certificate) testpb.TestServiceClient {
		cfg := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return testpb.NewTestServiceClient(cc)
	}
	alice, bob, anonymous := dial(&pki.alice), dial(&pki.bob), dial(nil)
	bound := func(tp string) string {
		c := is.Claims("api")
		c["cnf"] = map[string]any{"x5t#S256": tp}
		return is.Mint(c)
	}
	withCnf := func(cnf any) string {
		c := is.Claims("api")
		c["cnf"] = cnf
		return is.Mint(c)
	}
	aliceToken, plainToken := bound(thumbprint(pki.alice)), is.Mint(is.Claims("api"))
	const unchecked = "token bound to a proof of possession this server cannot check"
	const notBound = "token not bound to this client certificate"
	cases := []struct {
		name     string
		client   testpb.TestServiceClient
		token    string
		unary    bool // UnaryCall requires binding; EmptyCall does not
		wantCode codes.Code
		wantMsg  string
	}{
		{"bound token over mTLS with its certificate", alice, aliceToken, true, codes.OK, ""},
		{"bound token, another client's certificate", bob, aliceToken, true, codes.Unauthenticated, notBound},
		{"bound token, no client certificate", anonymous, aliceToken, true, codes.Unauthenticated, notBound},
		{"bound token on a method without the rule, wrong certificate", bob, aliceToken, false, codes.Unauthenticated, notBound},
		{"bound token on a method without the rule, its certificate", alice, aliceToken, false, codes.OK, ""},
		{"unbound token where binding is required", alice, plainToken, true, codes.Unauthenticated, notBound},
		{"unbound token where binding is not required", anonymous, plainToken, false, codes.OK, ""},
		{"cnf thumbprint not a SHA-256 digest", alice, bound("abc"), false, codes.Unauthenticated, "malformed token"},
		// A binding this library cannot check is never taken for a plain
		// bearer token (a stolen DPoP token must not work here).
		{"cnf jkt (DPoP)", alice, withCnf(map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}), false, codes.Unauthenticated, unchecked},
		{"cnf jwk", alice, withCnf(map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}}), false, codes.Unauthenticated, unchecked},
		{"cnf kid", alice, withCnf(map[string]any{"kid": "dfd1aa97-6d8d-4575-a0fe-34b96de2bfad"}), false, codes.Unauthenticated, unchecked},
		{"cnf of an unknown kind", alice, withCnf(map[string]any{"x5t#S512": "abc"}), false, codes.Unauthenticated, unchecked},
		{"cnf x5t#S256 and jkt", alice, withCnf(map[string]any{"x5t#S256": thumbprint(pki.alice), "jkt": "x"}), false, codes.Unauthenticated, unchecked},
		{"cnf x5t#S256 not a string", alice, withCnf(map[string]any{"x5t#S256": 7}), false, codes.Unauthenticated, "malformed token"},
		{"cnf x5t#S256 null", alice, withCnf(map[string]any{"x5t#S256": nil}), false, codes.Unauthenticated, "malformed token"},
		{"cnf not an object", alice, withCnf("x"), false, codes.Unauthenticated, "malformed token"},
		{"cnf empty: no binding", anonymous, withCnf(map[string]any{}), false, codes.OK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := grpcjwttest.WithBearer(t.Context(), tc.token)
			var err error
			if tc.unary {
				_, err = tc.client.UnaryCall(ctx, &testpb.SimpleRequest{})
			} else {
				_, err = tc.client.EmptyCall(ctx, &testpb.Empty{})
			}
			st := status.Convert(err)
			if st.Code() != tc.wantCode || (tc.wantMsg != "" && st.Message() != tc.wantMsg) {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
			}
		})
	}
	if _, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{"/a.B/C": {Public: true, CertificateBound: true}}); err == nil {
		t.Error("a public rule requiring binding: want an error")
	}
}
