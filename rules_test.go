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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/grpcjwttest"
)

// This file tests the rules of a method (any-of scopes, issuers, claim
// values), policy documents, the application's claims check, the public
// health and reflection rules, the exported Authorizer and the default
// logger, end to end through grpc over bufconn with the it* helpers of
// interceptor_test.go. Its own helpers carry an "rl" prefix.

const (
	rlClientStream = testpb.TestService_StreamingInputCall_FullMethodName
	rlBidi         = testpb.TestService_FullDuplexCall_FullMethodName

	rlRefused       = "grpcjwt: call refused"
	rlScopeMsg      = "token lacks a required scope"
	rlClaimMsg      = "token lacks a required claim value"
	rlClaimWWW      = `Bearer error="insufficient_scope", error_description="token lacks a required claim value"`
	rlIssuerRuleMsg = "token issuer not accepted for this method"
	rlIssuerRuleWWW = `Bearer error="invalid_token", error_description="token issuer not accepted for this method"`
)

// rlMethods names the method each call kind of rlCall reaches.
var rlMethods = map[string]string{
	"unary":  itUnary,
	"stream": itOutStream,
	"client": rlClientStream,
	"bidi":   rlBidi,
	"empty":  itEmpty,
}

// rlScopeWWW is the challenge of a refusal for scopes, naming the rule's.
func rlScopeWWW(scopes string) string {
	return `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="` + scopes + `"`
}

// rlEmpty makes an EmptyCall, which reports its subject in the header only.
func rlEmpty(ctx context.Context, c testpb.TestServiceClient) itOutcome {
	var o itOutcome
	_, err := c.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&o.header), grpc.Trailer(&o.trailer))
	o.code, o.msg = itStatus(err)
	return o
}

// rlCall makes one call of kind (see rlMethods), one message each way.
// subs holds the subject each response named; for the kinds whose
// responses name none (client, empty), the header's.
func rlCall(ctx context.Context, c testpb.TestServiceClient, kind string) itOutcome {
	var o itOutcome
	switch kind {
	case "unary":
		return itCallUnary(ctx, c)
	case "stream":
		return itCallOut(ctx, c, 1)
	case "bidi":
		return itCallBidi(ctx, c, 1)
	case "client":
		o, _ = itCallIn(ctx, c, 1)
	case "empty":
		o = rlEmpty(ctx, c)
	default:
		panic("rlCall: kind " + kind)
	}
	if o.code == codes.OK {
		o.subs = []string{o.sub()}
	}
	return o
}

// rlWant is the expected outcome of one call.
type rlWant struct {
	code codes.Code
	msg  string
	www  string // the exact www-authenticate trailer; "" for none
	sub  string // for a call that goes through: the subject its handler saw
}

func rlOK(sub string) rlWant { return rlWant{code: codes.OK, sub: sub} }

func rlDenied(code codes.Code, msg, www string) rlWant { return rlWant{code: code, msg: msg, www: www} }

// rlCheck makes a call and checks its code, message, trailer, the subject
// the handler saw, and that the handler ran exactly when the call went
// through.
func rlCheck(t *testing.T, what string, ts *itServer, w rlWant, call func() itOutcome) itOutcome {
	t.Helper()
	before := ts.calls.Load()
	o := call()
	ran := ts.calls.Load() - before
	if o.code != w.code || o.msg != w.msg {
		t.Errorf("%s: got %v %q, want %v %q", what, o.code, o.msg, w.code, w.msg)
	}
	itNeverInternal(t, what, o.code)
	var www []string
	if w.www != "" {
		www = []string{w.www}
	}
	if !slices.Equal(o.www(), www) {
		t.Errorf("%s: www-authenticate %q, want %q", what, o.www(), www)
	}
	if w.code == codes.OK {
		if ran != 1 {
			t.Errorf("%s: handler ran %d times, want 1", what, ran)
		}
		if o.sub() != w.sub || !slices.Equal(o.subs, []string{w.sub}) {
			t.Errorf("%s: handler saw subject %q (responses %q), want %q", what, o.sub(), o.subs, w.sub)
		}
	} else {
		if ran != 0 {
			t.Errorf("%s: handler ran %d times for a refused call", what, ran)
		}
		if len(o.subs) != 0 {
			t.Errorf("%s: refused call got responses %q", what, o.subs)
		}
	}
	return o
}

// rlToken mints is's typical token for itAudience with subject sub, the
// given scopes and the extra claims (json.RawMessage for raw JSON, which
// may repeat member names).
func rlToken(is *grpcjwttest.Issuer, sub string, extra map[string]any, scopes ...string) string {
	return itMint(is, func(m map[string]any) {
		m["sub"] = sub
		for k, v := range extra {
			m[k] = v
		}
	}, itAudience, scopes...)
}

// rlRefusals returns the "call refused" records logged since mark (a
// length of logs.records()).
func rlRefusals(logs *itLogs, mark int) []itRecord {
	var out []itRecord
	for _, r := range logs.records()[mark:] {
		if r.msg == rlRefused {
			out = append(out, r)
		}
	}
	return out
}

// rlDecisions records the decisions of WithDecisionHook.
type rlDecisions struct {
	mu   sync.Mutex
	list []grpcjwt.Decision
}

func (d *rlDecisions) hook(_ context.Context, dec grpcjwt.Decision) {
	d.mu.Lock()
	d.list = append(d.list, dec)
	d.mu.Unlock()
}

func (d *rlDecisions) last() (grpcjwt.Decision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.list) == 0 {
		return grpcjwt.Decision{}, false
	}
	return d.list[len(d.list)-1], true
}

// TestRulesAnyScopes: a rule's AnyScopes admit a token with any one of
// them; with Scopes as well, both must hold. The refusal is
// PermissionDenied with an insufficient_scope challenge that names the
// all-of scopes, then the any-of ones.
func TestRulesAnyScopes(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	anyLogs := &itLogs{}
	anyOnly, _, anyTS := itProtect(t, v, grpcjwt.WithLogger(slog.New(anyLogs)),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itService: {AnyScopes: []string{"read:orders", "admin"}}})))
	bothLogs := &itLogs{}
	both, _, bothTS := itProtect(t, v, grpcjwt.WithLogger(slog.New(bothLogs)),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itService: {
			Scopes: []string{"orders:v2", "tenant:acme"}, AnyScopes: []string{"read:orders", "admin"}}})))
	anyWWW := rlScopeWWW("read:orders admin")

	// A single alternative is a requirement all the same.
	single, _, singleTS := itProtect(t, v, grpcjwt.WithLogger(itDiscard),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itService: {AnyScopes: []string{"admin"}}})))
	for _, kind := range []string{"unary", "stream"} {
		rlCheck(t, "single alternative, held: "+kind, singleTS, rlOK("user-single"),
			func() itOutcome {
				return rlCall(itBearer(t.Context(), rlToken(is, "user-single", nil, "admin")), single, kind)
			})
		rlCheck(t, "single alternative, lacking: "+kind, singleTS, rlDenied(codes.PermissionDenied, rlScopeMsg, rlScopeWWW("admin")),
			func() itOutcome {
				return rlCall(itBearer(t.Context(), rlToken(is, "user-single", nil, "read:orders")), single, kind)
			})
	}
	bothWWW := rlScopeWWW("orders:v2 tenant:acme read:orders admin")

	for i, tc := range []struct {
		name    string
		both    bool // the rule with Scopes and AnyScopes; else AnyScopes alone
		scopes  []string
		ok      bool
		logWant string // the logged "want" of a refusal
	}{
		{name: "first alternative", scopes: []string{"read:orders"}, ok: true},
		{name: "second alternative", scopes: []string{"admin"}, ok: true},
		{name: "both alternatives", scopes: []string{"admin", "read:orders"}, ok: true},
		{name: "an alternative among others", scopes: []string{"profile", "admin", "email"}, ok: true},
		{name: "no scope at all", logWant: `one of ["read:orders" "admin"]`},
		{name: "another scope", scopes: []string{"write:orders"}, logWant: `one of ["read:orders" "admin"]`},
		{name: "alternative in another case", scopes: []string{"READ:orders", "Admin"}, logWant: `one of ["read:orders" "admin"]`},
		{name: "prefix of an alternative", scopes: []string{"read:order", "admi"}, logWant: `one of ["read:orders" "admin"]`},
		{name: "all-of and one alternative", both: true, scopes: []string{"orders:v2", "tenant:acme", "admin"}, ok: true},
		{name: "all-of and both alternatives", both: true, scopes: []string{"read:orders", "orders:v2", "admin", "tenant:acme"}, ok: true},
		{name: "all-of without alternative", both: true, scopes: []string{"orders:v2", "tenant:acme"}, logWant: `one of ["read:orders" "admin"]`},
		{name: "alternatives without all-of", both: true, scopes: []string{"read:orders", "admin"},
			logWant: `all of ["orders:v2" "tenant:acme"], lacking "orders:v2"`},
		{name: "half the all-of and an alternative", both: true, scopes: []string{"orders:v2", "read:orders"},
			logWant: `all of ["orders:v2" "tenant:acme"], lacking "tenant:acme"`},
		{name: "nothing, under both", both: true, logWant: `all of ["orders:v2" "tenant:acme"], lacking "orders:v2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := fmt.Sprintf("user-any-%d", i)
			ctx := itBearer(t.Context(), rlToken(is, sub, nil, tc.scopes...))
			c, ts, logs, www := anyOnly, anyTS, anyLogs, anyWWW
			if tc.both {
				c, ts, logs, www = both, bothTS, bothLogs, bothWWW
			}
			want := rlOK(sub)
			if !tc.ok {
				want = rlDenied(codes.PermissionDenied, rlScopeMsg, www)
			}
			mark := len(logs.records())
			for _, kind := range []string{"unary", "stream", "bidi"} {
				o := rlCheck(t, kind, ts, want, func() itOutcome { return rlCall(ctx, c, kind) })
				if tc.ok {
					if got := strings.Join(o.header.Get("x-scope"), ","); got != strings.Join(tc.scopes, " ") {
						t.Errorf("%s: handler saw scopes %q, want %q", kind, got, strings.Join(tc.scopes, " "))
					}
				}
			}
			recs := rlRefusals(logs, mark)
			if tc.ok {
				if len(recs) != 0 {
					t.Errorf("accepted calls logged refusals:\n%s", logs)
				}
				return
			}
			if len(recs) != 3 {
				t.Fatalf("%d refusals logged, want 3 (one per call); logs:\n%s", len(recs), logs)
			}
			for _, r := range recs {
				if r.attrs["check"] != "scope" || r.attrs["want"] != tc.logWant || r.attrs["code"] != "PermissionDenied" ||
					r.attrs["rule"] != itService || r.attrs["reason"] != grpcjwt.ErrInsufficientScope.Error() {
					t.Errorf("logged %v, want check=scope want=%q code=PermissionDenied rule=%q", r.attrs, tc.logWant, itService)
				}
			}
		})
	}
}

// TestRulesIssuers: a rule's Issuers narrow the issuers a method accepts
// out of those a multi-issuer verifier trusts; other methods accept every
// trusted issuer. A rule naming an issuer the verifier does not trust
// admits nothing.
func TestRulesIssuers(t *testing.T) {
	a, b, stranger := itIssuer(t), itIssuer(t), itIssuer(t)
	multi, err := grpcjwt.NewMultiIssuerVerifier(itVerifier(t, a), itVerifier(t, b))
	if err != nil {
		t.Fatal(err)
	}
	logs := &itLogs{}
	c, _, ts := itProtect(t, multi, grpcjwt.WithLogger(slog.New(logs)), grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		itUnary:     {Issuers: []string{a.URL()}},
		itOutStream: {Issuers: []string{a.URL()}},
		itEmpty:     {Issuers: []string{b.URL(), a.URL()}},
	})))
	tokA := rlToken(a, "alice", nil)
	tokB := rlToken(b, "bob", nil)
	tokStranger := rlToken(stranger, "mallory", nil)
	untrusted := rlDenied(codes.Unauthenticated, "token issuer not trusted",
		`Bearer error="invalid_token", error_description="token issuer not trusted"`)
	notHere := rlDenied(codes.Unauthenticated, rlIssuerRuleMsg, rlIssuerRuleWWW)
	unknownKey := rlDenied(codes.Unauthenticated, "token signed by an unknown key",
		`Bearer error="invalid_token", error_description="token signed by an unknown key"`)

	for _, tc := range []struct {
		name string
		kind string
		tok  string
		want rlWant
	}{
		{"A on A's unary method", "unary", tokA, rlOK("alice")},
		{"A on A's stream method", "stream", tokA, rlOK("alice")},
		{"B on A's unary method", "unary", tokB, notHere},
		{"B on A's stream method", "stream", tokB, notHere},
		{"A on the A-or-B method", "empty", tokA, rlOK("alice")},
		{"B on the A-or-B method", "empty", tokB, rlOK("bob")},
		{"A on a method without issuer rule (bidi)", "bidi", tokA, rlOK("alice")},
		{"B on a method without issuer rule (bidi)", "bidi", tokB, rlOK("bob")},
		{"A on a method without issuer rule (client stream)", "client", tokA, rlOK("alice")},
		{"B on a method without issuer rule (client stream)", "client", tokB, rlOK("bob")},
		{"untrusted issuer on A's method", "unary", tokStranger, untrusted},
		{"untrusted issuer on a method without issuer rule", "bidi", tokStranger, untrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rlCheck(t, tc.kind, ts, tc.want, func() itOutcome { return rlCall(itBearer(t.Context(), tc.tok), c, tc.kind) })
		})
	}
	// The log names the token's issuer and the rule's.
	for _, m := range []string{itUnary, itOutStream} {
		if recs := logs.find(rlRefused, map[string]string{"method": m, "rule": m, "check": "iss",
			"got": fmt.Sprintf("%q", b.URL()), "want": fmt.Sprintf("one of [%q]", a.URL()), "reason": grpcjwt.ErrIssuer.Error()}); len(recs) != 1 {
			t.Errorf("%s: %d refusals of B's token logged with its issuer and the rule's, want 1; logs:\n%s", m, len(recs), logs)
		}
	}

	// A single-issuer verifier (A) with a rule naming B, whom it does not
	// trust: the rule's method admits neither; other methods admit A.
	c1, _, ts1 := itProtect(t, itVerifier(t, a), grpcjwt.WithLogger(itDiscard),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itUnary: {Issuers: []string{b.URL()}}})))
	for _, tc := range []struct {
		name string
		kind string
		tok  string
		want rlWant
	}{
		{"A's token on the method naming B", "unary", tokA, notHere},
		// B's keys are not A's: the signature check, first, refuses it.
		{"B's token on the method naming B", "unary", tokB, unknownKey},
		{"A's token elsewhere", "stream", tokA, rlOK("alice")},
		{"B's token elsewhere", "stream", tokB, unknownKey},
	} {
		t.Run("single issuer: "+tc.name, func(t *testing.T) {
			rlCheck(t, tc.kind, ts1, tc.want, func() itOutcome { return rlCall(itBearer(t.Context(), tc.tok), c1, tc.kind) })
		})
	}
}

// rlRaw is raw JSON for a claim, which may repeat member names.
type rlRaw = json.RawMessage

// TestRulesClaims: Rule.Claims on the claims real providers issue, through
// unary calls and streams: which tokens hold the required values, and for
// those that do not, the PermissionDenied refusal, its challenge and the
// logged check, token value and accepted values.
func TestRulesClaims(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)

	// many is a realm_access object of 20 members, two of which are
	// "roles" and "ROLES" (ambiguity past the small-object fast path).
	var many strings.Builder
	many.WriteString(`{`)
	for i := range 18 {
		fmt.Fprintf(&many, `"m%d":%d,`, i, i)
	}
	many.WriteString(`"roles":["admin"],"ROLES":["user"]}`)

	type claimCase struct {
		name   string
		claims map[string]any
		got    string // the logged value of a refused token; "" for a token that is accepted
		check  string // the logged check, if not the group's only path
		want   string // the logged accepted values, if not the group's
	}
	const ambiguousRealm = `ambiguous (the member names of "realm_access" repeat or differ only in case)`
	const notObjectRealm = `absent ("realm_access" is not an object)`
	groups := []struct {
		name  string
		rule  map[string][]string
		want  string
		cases []claimCase
	}{
		{
			name: "Keycloak realm_access.roles",
			rule: map[string][]string{"realm_access.roles": {"admin"}},
			want: `one of ["admin"]`,
			cases: []claimCase{
				{name: "holds admin", claims: map[string]any{"realm_access": map[string]any{
					"roles": []string{"default-roles-orders", "offline_access", "admin"}}}},
				{name: "roles is the string admin", claims: map[string]any{"realm_access": map[string]any{"roles": "admin"}}},
				{name: "other members beside roles", claims: map[string]any{"realm_access": map[string]any{
					"roles": []string{"admin"}, "groups": []string{"ops"}}}},
				{name: "user only", claims: map[string]any{"realm_access": map[string]any{"roles": []string{"user"}}}, got: `["user"]`},
				{name: "empty roles", claims: map[string]any{"realm_access": map[string]any{"roles": []string{}}}, got: `[]`},
				{name: "admin in another member", claims: map[string]any{"realm_access": map[string]any{
					"roles": []string{"user"}, "groups": []string{"admin"}}}, got: `["user"]`},
				{name: "admin in another case", claims: map[string]any{"realm_access": map[string]any{"roles": []string{"Admin", "ADMIN"}}},
					got: `["Admin" "ADMIN"]`},
				{name: "admin in a nested array", claims: map[string]any{"realm_access": map[string]any{"roles": rlRaw(`[["admin"]]`)}},
					got: `[["admin"]]`},
				{name: "admin as an object in the array", claims: map[string]any{"realm_access": map[string]any{"roles": rlRaw(`[{"admin":true}]`)}},
					got: `[{"admin":true}]`},
				{name: "claim absent", got: "absent"},
				{name: "claim under another case", claims: map[string]any{"Realm_access": map[string]any{"roles": []string{"admin"}}}, got: "absent"},
				{name: "roles absent", claims: map[string]any{"realm_access": map[string]any{"groups": []string{"admin"}}}, got: "absent"},
				{name: "roles null", claims: map[string]any{"realm_access": map[string]any{"roles": nil}}, got: "null"},
				{name: "realm_access null", claims: map[string]any{"realm_access": nil}, got: notObjectRealm},
				{name: "realm_access a string", claims: map[string]any{"realm_access": "admin"}, got: notObjectRealm},
				{name: "realm_access an array", claims: map[string]any{"realm_access": []string{"admin"}}, got: notObjectRealm},
				{name: "realm_access a number", claims: map[string]any{"realm_access": 7}, got: notObjectRealm},
				{name: "ambiguous: roles and ROLES", claims: map[string]any{"realm_access": rlRaw(`{"roles":["user"],"ROLES":["admin"]}`)},
					got: ambiguousRealm},
				{name: "ambiguous: roles (admin) and ROLES", claims: map[string]any{"realm_access": rlRaw(`{"roles":["admin"],"ROLES":["user"]}`)},
					got: ambiguousRealm},
				{name: "duplicate roles, admin last", claims: map[string]any{"realm_access": rlRaw(`{"roles":["user"],"roles":["admin"]}`)},
					got: ambiguousRealm},
				{name: "duplicate roles, admin first", claims: map[string]any{"realm_access": rlRaw(`{"roles":["admin"],"roles":["user"]}`)},
					got: ambiguousRealm},
				{name: "duplicate roles, admin in both", claims: map[string]any{"realm_access": rlRaw(`{"roles":["admin"],"roles":["admin"]}`)},
					got: ambiguousRealm},
				{name: "duplicate by escape", claims: map[string]any{"realm_access": rlRaw(`{"roles":["user"],"rol\u0065s":["admin"]}`)},
					got: ambiguousRealm},
				{name: "ambiguous sibling of roles", claims: map[string]any{"realm_access": rlRaw(`{"roles":["admin"],"x":1,"X":2}`)},
					got: ambiguousRealm},
				{name: "ambiguous among 20 members", claims: map[string]any{"realm_access": rlRaw(many.String())}, got: ambiguousRealm},
			},
		},
		{
			name: "Entra roles",
			rule: map[string][]string{"roles": {"Orders.Admin"}},
			want: `one of ["Orders.Admin"]`,
			cases: []claimCase{
				{name: "holds the app role", claims: map[string]any{"roles": []string{"Orders.Read", "Orders.Admin"}}},
				{name: "another app role", claims: map[string]any{"roles": []string{"Orders.Read"}}, got: `["Orders.Read"]`},
				{name: "no roles", got: "absent"},
				{name: "roles null", claims: map[string]any{"roles": nil}, got: "null"},
			},
		},
		{
			name: "Logto organization token organization_id",
			rule: map[string][]string{"organization_id": {"org-acme", "org-globex"}},
			want: `one of ["org-acme" "org-globex"]`,
			cases: []claimCase{
				{name: "first organization", claims: map[string]any{"organization_id": "org-acme"}},
				{name: "second organization", claims: map[string]any{"organization_id": "org-globex"}},
				{name: "another organization", claims: map[string]any{"organization_id": "org-initech"}, got: `"org-initech"`},
				{name: "another case", claims: map[string]any{"organization_id": "ORG-ACME"}, got: `"ORG-ACME"`},
				{name: "prefix", claims: map[string]any{"organization_id": "org-acme-evil"}, got: `"org-acme-evil"`},
				{name: "empty string", claims: map[string]any{"organization_id": ""}, got: `""`},
				{name: "null", claims: map[string]any{"organization_id": nil}, got: "null"},
				{name: "absent (a user token)", got: "absent"},
			},
		},
		{
			name: "Zitadel project roles object",
			rule: map[string][]string{"urn:zitadel:iam:org:project:roles": {"admin"}},
			want: `one of ["admin"]`,
			cases: []claimCase{
				{name: "admin member", claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{
					"admin": map[string]string{"123": "acme.example"}}}},
				{name: "admin among other roles", claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{
					"user": map[string]string{"123": "acme.example"}, "admin": map[string]string{"456": "globex.example"}}}},
				{name: "user only", claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{
					"user": map[string]string{"123": "acme.example"}}}, got: `{"user":{"123":"acme.example"}}`},
				{name: "admin as a member value, not a name", claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{
					"user": "admin"}}, got: `{"user":"admin"}`},
				{name: "admin nested deeper", claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{
					"user": map[string]string{"admin": "acme.example"}}}, got: `{"user":{"admin":"acme.example"}}`},
				{name: "no roles", claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{}}, got: `{}`},
				{name: "Admin in another case", claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{
					"Admin": map[string]string{"123": "acme.example"}}}, got: `{"Admin":{"123":"acme.example"}}`},
				{name: "ambiguous: admin and ADMIN", claims: map[string]any{"urn:zitadel:iam:org:project:roles": rlRaw(
					`{"admin":{"123":"acme.example"},"ADMIN":{"123":"acme.example"}}`)},
					got: `{"admin":{"123":"acme.example"},"ADMIN":{"123":"acme.example"}}`},
				{name: "duplicate admin", claims: map[string]any{"urn:zitadel:iam:org:project:roles": rlRaw(
					`{"admin":{"123":"acme.example"},"admin":{"456":"globex.example"}}`)},
					got: `{"admin":{"123":"acme.example"},"admin":{"456":"globex.example"}}`},
			},
		},
		{
			name: "Auth0 namespaced claim by JSON Pointer",
			rule: map[string][]string{"/https:~1~1example.com~1roles": {"admin"}},
			want: `one of ["admin"]`,
			cases: []claimCase{
				{name: "holds admin", claims: map[string]any{"https://example.com/roles": []string{"user", "admin"}}},
				{name: "user only", claims: map[string]any{"https://example.com/roles": []string{"user"}}, got: `["user"]`},
				{name: "admin in another namespace", claims: map[string]any{"https://example.org/roles": []string{"admin"}}, got: "absent"},
				{name: "admin in a plain roles claim", claims: map[string]any{"roles": []string{"admin"}}, got: "absent"},
			},
		},
		{
			name: "dotted path does not reach a name with dots",
			rule: map[string][]string{"https://example.com/roles": {"admin"}},
			want: `one of ["admin"]`,
			cases: []claimCase{
				{name: "Auth0 claim", claims: map[string]any{"https://example.com/roles": []string{"admin"}}, got: "absent"},
			},
		},
		{
			name: "boolean email_verified",
			rule: map[string][]string{"email_verified": {"true"}},
			want: `one of ["true"]`,
			cases: []claimCase{
				{name: "true", claims: map[string]any{"email_verified": true}},
				{name: "the string true", claims: map[string]any{"email_verified": "true"}},
				{name: "false", claims: map[string]any{"email_verified": false}, got: "false"},
				{name: "the string True", claims: map[string]any{"email_verified": "True"}, got: `"True"`},
				{name: "one", claims: map[string]any{"email_verified": 1}, got: "1"},
				{name: "null", claims: map[string]any{"email_verified": nil}, got: "null"},
				{name: "absent", got: "absent"},
			},
		},
		{
			name: "number tenant_id",
			rule: map[string][]string{"tenant_id": {"42"}},
			want: `one of ["42"]`,
			cases: []claimCase{
				{name: "42", claims: map[string]any{"tenant_id": 42}},
				{name: "the string 42", claims: map[string]any{"tenant_id": "42"}},
				{name: "42 in an array", claims: map[string]any{"tenant_id": []int{7, 42}}},
				{name: "43", claims: map[string]any{"tenant_id": 43}, got: "43"},
				{name: "420", claims: map[string]any{"tenant_id": 420}, got: "420"},
				{name: "42.0 (another JSON text)", claims: map[string]any{"tenant_id": rlRaw(`42.0`)}, got: "42.0"},
				{name: "4.2e1 (another JSON text)", claims: map[string]any{"tenant_id": rlRaw(`4.2e1`)}, got: "4.2e1"},
				{name: "absent", got: "absent"},
			},
		},
		{
			name: "several paths, all required",
			rule: map[string][]string{"realm_access.roles": {"admin"}, "organization_id": {"org-acme"}, "email_verified": {"true"}},
			cases: []claimCase{
				{name: "all three", claims: map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}},
					"organization_id": "org-acme", "email_verified": true}},
				{name: "role missing", claims: map[string]any{"realm_access": map[string]any{"roles": []string{"user"}},
					"organization_id": "org-acme", "email_verified": true},
					check: "realm_access.roles", got: `["user"]`, want: `one of ["admin"]`},
				{name: "organization missing", claims: map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}},
					"email_verified": true},
					check: "organization_id", got: "absent", want: `one of ["org-acme"]`},
				{name: "email not verified", claims: map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}},
					"organization_id": "org-acme", "email_verified": false},
					check: "email_verified", got: "false", want: `one of ["true"]`},
				{name: "only the role", claims: map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}},
					check: "email_verified", got: "absent", want: `one of ["true"]`}, // the first path in order is reported
			},
		},
	}

	n := 0
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			logs := &itLogs{}
			c, _, ts := itProtect(t, v, grpcjwt.WithLogger(slog.New(logs)),
				grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itService: {Claims: g.rule}})))
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					n++
					sub := fmt.Sprintf("user-claims-%d", n)
					ctx := itBearer(t.Context(), rlToken(is, sub, tc.claims))
					want := rlOK(sub)
					if tc.got != "" {
						want = rlDenied(codes.PermissionDenied, rlClaimMsg, rlClaimWWW)
					}
					mark := len(logs.records())
					for _, kind := range []string{"unary", "stream"} {
						rlCheck(t, kind, ts, want, func() itOutcome { return rlCall(ctx, c, kind) })
					}
					recs := rlRefusals(logs, mark)
					if tc.got == "" {
						if len(recs) != 0 {
							t.Errorf("accepted calls logged refusals:\n%s", logs)
						}
						return
					}
					check, wantValues := tc.check, tc.want
					if check == "" {
						for p := range g.rule {
							check = p
						}
					}
					if wantValues == "" {
						wantValues = g.want
					}
					if len(recs) != 2 {
						t.Fatalf("%d refusals logged, want 2 (unary, stream); logs:\n%s", len(recs), logs)
					}
					for i, r := range recs {
						wantAttrs := map[string]string{"method": []string{itUnary, itOutStream}[i], "rule": itService,
							"code": "PermissionDenied", "reason": grpcjwt.ErrClaimRequirement.Error(),
							"check": check, "got": tc.got, "want": wantValues}
						for k, w := range wantAttrs {
							if r.attrs[k] != w {
								t.Errorf("logged %s=%q, want %q (record %v)", k, r.attrs[k], w, r.attrs)
							}
						}
					}
				})
			}
		})
	}

	// A case-variant or repeated claim name at the top level is refused by
	// the verifier before any rule: Unauthenticated, as a malformed token.
	c, _, ts := itProtect(t, v, grpcjwt.WithLogger(itDiscard),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{itService: {Claims: map[string][]string{"roles": {"admin"}}}})))
	base, err := json.Marshal(is.Claims(itAudience))
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]string{
		"top-level roles and ROLES":  `"roles":["user"],"ROLES":["admin"]`,
		"top-level roles repeated":   `"roles":["user"],"roles":["admin"]`,
		"top-level roles by escapes": `"roles":["user"],"r\u006fles":["admin"]`,
	} {
		raw := append(append(base[:len(base)-1:len(base)-1], ','), extra+"}"...)
		tok := is.Mint(raw)
		rlCheck(t, name, ts, rlDenied(codes.Unauthenticated, "malformed token", `Bearer error="invalid_token", error_description="malformed token"`),
			func() itOutcome { return itCallUnary(itBearer(t.Context(), tok), c) })
	}
}

// TestRulesPolicyDocument: the same rules written as a policy document
// (ParsePolicy: "any_scopes", "issuers", "claims") match the same Go rules
// and decide every call the same way.
func TestRulesPolicyDocument(t *testing.T) {
	a, b := itIssuer(t), itIssuer(t)
	multi, err := grpcjwt.NewMultiIssuerVerifier(itVerifier(t, a), itVerifier(t, b))
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]grpcjwt.Rule{
		itUnary:     {AnyScopes: []string{"read:orders", "admin"}},
		itOutStream: {Issuers: []string{a.URL()}},
		rlBidi: {Claims: map[string][]string{
			"realm_access.roles":            {"admin"},
			"/https:~1~1example.com~1roles": {"orders", "orders-admin"},
		}},
		rlClientStream: {
			Issuers:   []string{b.URL()},
			Scopes:    []string{"orders:v2"},
			AnyScopes: []string{"read:orders", "admin"},
			Claims:    map[string][]string{"organization_id": {"org-acme"}},
		},
		itEmpty: {Public: true},
	}
	doc := fmt.Sprintf(`{"rules": {
	  %q: {"any_scopes": ["read:orders", "admin"]},
	  %q: {"issuers": [%q]},
	  %q: {"claims": {"realm_access.roles": ["admin"], "/https:~1~1example.com~1roles": ["orders", "orders-admin"]}},
	  %q: {"issuers": [%q], "scopes": ["orders:v2"], "any_scopes": ["read:orders", "admin"], "claims": {"organization_id": ["org-acme"]}},
	  %q: {"public": true}
	}}`, itUnary, itOutStream, a.URL(), rlBidi, rlClientStream, b.URL(), itEmpty)
	fromDoc, err := grpcjwt.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatalf("ParsePolicy: %v\n%s", err, doc)
	}
	fromGo := itPolicy(t, rules)
	for m := range rlMethods {
		kg, rg := fromGo.Match(rlMethods[m])
		kd, rd := fromDoc.Match(rlMethods[m])
		if kg != kd || !reflect.DeepEqual(rg, rd) {
			t.Errorf("Match(%s): Go policy %q %+v, document %q %+v", rlMethods[m], kg, rg, kd, rd)
		}
	}

	cGo, _, tsGo := itProtect(t, multi, grpcjwt.WithLogger(itDiscard), grpcjwt.WithPolicy(fromGo))
	cDoc, _, tsDoc := itProtect(t, multi, grpcjwt.WithLogger(itDiscard), grpcjwt.WithPolicy(fromDoc))
	roles := func(realm []string, auth0 ...string) map[string]any {
		m := map[string]any{"realm_access": map[string]any{"roles": realm}}
		if auth0 != nil {
			m["https://example.com/roles"] = auth0
		}
		return m
	}
	scopeAny := rlDenied(codes.PermissionDenied, rlScopeMsg, rlScopeWWW("read:orders admin"))
	scopeBoth := rlDenied(codes.PermissionDenied, rlScopeMsg, rlScopeWWW("orders:v2 read:orders admin"))
	claim := rlDenied(codes.PermissionDenied, rlClaimMsg, rlClaimWWW)
	issuer := rlDenied(codes.Unauthenticated, rlIssuerRuleMsg, rlIssuerRuleWWW)
	for _, tc := range []struct {
		name string
		kind string
		tok  string // "" for none
		want rlWant
	}{
		{"any_scopes: one alternative", "unary", rlToken(a, "u1", nil, "admin"), rlOK("u1")},
		{"any_scopes: none", "unary", rlToken(a, "u2", nil, "write:orders"), scopeAny},
		{"issuers: A", "stream", rlToken(a, "u3", nil), rlOK("u3")},
		{"issuers: B", "stream", rlToken(b, "u4", nil), issuer},
		{"claims: both paths", "bidi", rlToken(b, "u5", roles([]string{"admin"}, "orders")), rlOK("u5")},
		{"claims: pointer path absent", "bidi", rlToken(b, "u6", roles([]string{"admin"})), claim},
		{"claims: dotted path wrong", "bidi", rlToken(b, "u7", roles([]string{"user"}, "orders-admin")), claim},
		{"claims: ambiguous", "bidi", rlToken(b, "u8", map[string]any{
			"realm_access": rlRaw(`{"roles":["admin"],"Roles":["user"]}`), "https://example.com/roles": []string{"orders"}}), claim},
		{"all kinds: all hold", "client", rlToken(b, "u9", map[string]any{"organization_id": "org-acme"}, "orders:v2", "read:orders"), rlOK("u9")},
		{"all kinds: other issuer", "client", rlToken(a, "u10", map[string]any{"organization_id": "org-acme"}, "orders:v2", "read:orders"), issuer},
		{"all kinds: no all-of scope", "client", rlToken(b, "u11", map[string]any{"organization_id": "org-acme"}, "admin"), scopeBoth},
		{"all kinds: no alternative", "client", rlToken(b, "u12", map[string]any{"organization_id": "org-acme"}, "orders:v2"), scopeBoth},
		{"all kinds: other organization", "client", rlToken(b, "u13", map[string]any{"organization_id": "org-globex"}, "orders:v2", "admin"), claim},
		{"public: no token", "empty", "", rlOK(itNoClaims)},
		{"public: token", "empty", rlToken(b, "u14", nil), rlOK("u14")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.tok != "" {
				ctx = itBearer(ctx, tc.tok)
			}
			rlCheck(t, "Go rules", tsGo, tc.want, func() itOutcome { return rlCall(ctx, cGo, tc.kind) })
			rlCheck(t, "policy document", tsDoc, tc.want, func() itOutcome { return rlCall(ctx, cDoc, tc.kind) })
		})
	}

	// Names match exactly: a misspelt member is an error, never ignored.
	for doc, want := range map[string]string{
		`{"rules":{"*":{"any_scope":["admin"]}}}`:                     `unknown member "any_scope"`,
		`{"rules":{"*":{"AnyScopes":["admin"]}}}`:                     `unknown member "AnyScopes"`,
		`{"rules":{"*":{"Claims":{"roles":["admin"]}}}}`:              `names match exactly: "claims"`,
		`{"rules":{"*":{"Issuers":["https://a.example"]}}}`:           `names match exactly: "issuers"`,
		`{"rules":{"*":{"claims":{"roles":"admin"}}}}`:                `claim "roles": not an array of strings`,
		`{"rules":{"*":{"claims":{"roles":[]}}}}`:                     `name at least one value`,
		`{"rules":{"*":{"claims":["roles"]}}}`:                        `"claims" is not an object`,
		`{"rules":{"*":{"any_scopes":["a b"]}}}`:                      `scope "a b" is not a scope-token`,
		`{"rules":{"*":{"issuers":[""]}}}`:                            `empty issuer`,
		`{"rules":{"*":{"public":true,"any_scopes":["admin"]}}}`:      `a public rule cannot require`,
		`{"rules":{"*":{"claims":{"a..b":["x"]}}}}`:                   `claim path "a..b"`,
		`{"rules":{"*":{"claims":{"/a~2b":["x"]}}}}`:                  `claim path "/a~2b"`,
		`{"rules":{"*":{"claims":{"roles":["a"],"roles":["b"]}}}}`:    `roles`,
		`{"rules":{"*":{"any_scopes":["a"],"any_scopes":["b","c"]}}}`: `any_scopes`,
	} {
		if _, err := grpcjwt.ParsePolicy([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy(%s): %v, want an error with %q", doc, err, want)
		}
	}
}

// rlStatusErr is an error of the application's check that carries a gRPC
// status through a GRPCStatus method.
type rlStatusErr struct{ s *status.Status }

func (e rlStatusErr) Error() string              { return "SECRET-CAUSE: custom status" }
func (e rlStatusErr) GRPCStatus() *status.Status { return e.s }

// TestRulesClaimsCheck: WithClaimsCheck runs after the rule with the method
// and the verified claims; its error refuses the call with
// PermissionDenied "permission denied" (its text only in the log and the
// decision), or with the gRPC status it carries; on a public method a
// refused token is ignored.
func TestRulesClaimsCheck(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	type checkCall struct{ method, sub string }
	var (
		mu   sync.Mutex
		seen []checkCall
	)
	check := func(ctx context.Context, method string, c *grpcjwt.Claims) error {
		var verdict string
		if err := c.DecodeClaim("verdict", &verdict); err != nil && !errors.Is(err, grpcjwt.ErrMissingClaim) {
			return err
		}
		mu.Lock()
		seen = append(seen, checkCall{method, c.Subject})
		mu.Unlock()
		switch verdict {
		case "plain":
			return errors.New("SECRET-CAUSE: account flagged by fraud engine")
		case "status":
			return status.Error(codes.FailedPrecondition, "tenant suspended")
		case "custom-status":
			return rlStatusErr{status.New(codes.ResourceExhausted, "quota exceeded")}
		case "ok-status":
			return rlStatusErr{status.New(codes.OK, "")} // an error all the same
		case "nil-status":
			return rlStatusErr{nil}
		}
		return nil
	}
	calls := func() []checkCall {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	logs := &itLogs{}
	decisions := &rlDecisions{}
	opts := []grpcjwt.Option{
		grpcjwt.WithLogger(slog.New(logs)),
		grpcjwt.WithDecisionHook(decisions.hook),
		grpcjwt.WithClaimsCheck(check),
		grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
			itUnary:     {Scopes: []string{"write:orders"}},
			itOutStream: {Scopes: []string{"write:orders"}},
			itEmpty:     {Public: true},
			rlBidi:      {Public: true},
		})),
	}
	c, _, ts := itProtect(t, v, opts...)
	strict, _, strictTS := itProtect(t, v, append(opts, grpcjwt.WithStrictPublicTokens())...)
	verdict := func(sub, v string, scopes ...string) string {
		var extra map[string]any
		if v != "" {
			extra = map[string]any{"verdict": v}
		}
		return rlToken(is, sub, extra, scopes...)
	}
	expired := itMint(is, func(m map[string]any) {
		m["verdict"] = "status"
		m["exp"], m["iat"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
	}, itAudience, "write:orders")
	denied := rlDenied(codes.PermissionDenied, "permission denied", "")

	for _, tc := range []struct {
		name    string
		kinds   []string
		tok     string // "" for none
		want    rlWant
		checked bool   // whether the check runs (with the subject "sub")
		denial  string // for a check that refuses: "" none; else the refusal's (or the ignored token's) cause must hold it
	}{
		{"allowed", []string{"unary", "stream"}, verdict("sub", "", "write:orders"), rlOK("sub"), true, ""},
		{"plain error", []string{"unary", "stream"}, verdict("sub", "plain", "write:orders"), denied, true, "SECRET-CAUSE: account flagged"},
		{"status error", []string{"unary", "stream"}, verdict("sub", "status", "write:orders"),
			rlDenied(codes.FailedPrecondition, "tenant suspended", ""), true, "tenant suspended"},
		{"error with a GRPCStatus method", []string{"unary", "stream"}, verdict("sub", "custom-status", "write:orders"),
			rlDenied(codes.ResourceExhausted, "quota exceeded", ""), true, "SECRET-CAUSE: custom status"},
		{"error whose status is OK", []string{"unary", "stream"}, verdict("sub", "ok-status", "write:orders"), denied, true, "SECRET-CAUSE"},
		{"error whose status is nil", []string{"unary", "stream"}, verdict("sub", "nil-status", "write:orders"), denied, true, "SECRET-CAUSE"},
		{"rule refuses first", []string{"unary", "stream"}, verdict("sub", "status", "read:orders"),
			rlDenied(codes.PermissionDenied, rlScopeMsg, rlScopeWWW("write:orders")), false, ""},
		{"invalid token", []string{"unary", "stream"}, expired,
			rlDenied(codes.Unauthenticated, "expired token", `Bearer error="invalid_token", error_description="expired token"`), false, ""},
		{"no token", []string{"unary", "stream"}, "", rlDenied(codes.Unauthenticated, "missing bearer token", "Bearer"), false, ""},
		{"public, no token", []string{"empty", "bidi"}, "", rlOK(itNoClaims), false, ""},
		{"public, allowed token", []string{"empty", "bidi"}, verdict("sub", ""), rlOK("sub"), true, ""},
		{"public, token the check refuses", []string{"empty", "bidi"}, verdict("sub", "plain"), rlOK(itNoClaims), true, "SECRET-CAUSE"},
		{"public, token the check refuses with a status", []string{"empty", "bidi"}, verdict("sub", "status"), rlOK(itNoClaims), true, "tenant suspended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range tc.kinds {
				ctx := t.Context()
				if tc.tok != "" {
					ctx = itBearer(ctx, tc.tok)
				}
				before, mark := len(calls()), len(logs.records())
				o := rlCheck(t, kind, ts, tc.want, func() itOutcome { return rlCall(ctx, c, kind) })
				got := calls()[before:]
				var want []checkCall
				if tc.checked {
					want = []checkCall{{rlMethods[kind], "sub"}}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: check called with %v, want %v", kind, got, want)
				}
				for _, s := range []string{"SECRET", "fraud", "grpcjwt"} {
					if strings.Contains(o.msg, s) || strings.Contains(fmt.Sprint(o.trailer), s) {
						t.Errorf("%s: status %q / trailer %v reveals %q", kind, o.msg, o.trailer, s)
					}
				}
				d, ok := decisions.last()
				if !ok || d.Method != rlMethods[kind] {
					t.Fatalf("%s: last decision %+v, want one for %s", kind, d, rlMethods[kind])
				}
				if tc.denial == "" {
					if tc.want.code == codes.OK && (!d.Allowed || d.Err != nil || d.Reason != nil) {
						t.Errorf("%s: decision %+v, want allowed without error", kind, d)
					}
					continue
				}
				// The check's refusal: classified ErrDenied, its cause kept.
				if !errors.Is(d.Err, grpcjwt.ErrDenied) || !strings.Contains(fmt.Sprint(d.Err), tc.denial) {
					t.Errorf("%s: decision error %v, want ErrDenied holding %q", kind, d.Err, tc.denial)
				}
				if d.Claims != nil {
					t.Errorf("%s: decision carries the claims of a refused token", kind)
				}
				if tc.want.code == codes.OK {
					// Public: the token is ignored, the call allowed.
					if !d.Allowed || d.Code != codes.OK {
						t.Errorf("%s: decision %+v, want allowed", kind, d)
					}
					continue
				}
				if d.Allowed || d.Code != tc.want.code || d.Reason != grpcjwt.ErrDenied {
					t.Errorf("%s: decision allowed=%v code=%v reason=%v, want denied %v ErrDenied", kind, d.Allowed, d.Code, d.Reason, tc.want.code)
				}
				recs := rlRefusals(logs, mark)
				if len(recs) != 1 || !strings.Contains(recs[0].attrs["error"], tc.denial) ||
					recs[0].attrs["reason"] != grpcjwt.ErrDenied.Error() || recs[0].attrs["code"] != tc.want.code.String() {
					t.Errorf("%s: logged %v, want one refusal with code %v, reason ErrDenied and the cause %q", kind, recs, tc.want.code, tc.denial)
				}
			}
		})
	}

	// With WithStrictPublicTokens, the check's refusal holds on a public
	// method too.
	rlCheck(t, "strict public, token the check refuses", strictTS, denied,
		func() itOutcome { return rlCall(itBearer(t.Context(), verdict("sub", "plain")), strict, "empty") })
	rlCheck(t, "strict public, no token", strictTS, rlOK(itNoClaims),
		func() itOutcome { return rlCall(t.Context(), strict, "empty") })
}

// rlListServices lists the server's services through reflection, as
// `grpcurl list` does: one request on the bidi ServerReflectionInfo stream
// of version "v1", or "v1alpha" (older grpcurl). The two versions' messages
// are the same on the wire, so v1's serve both.
func rlListServices(ctx context.Context, cc grpc.ClientConnInterface, version string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	method := "/grpc.reflection." + version + ".ServerReflection/ServerReflectionInfo"
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method)
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil && err != io.EOF { // io.EOF: the status comes from RecvMsg
		return nil, err
	}
	var resp reflectionv1.ServerReflectionResponse
	if err := st.RecvMsg(&resp); err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	return names, nil
}

// TestRulesPublicHealthAndReflection: with PublicHealthAndReflection, the
// health service and both reflection services answer without a token
// while the application's methods still need one; CheckServer does not
// ask for services that are not registered; a key given twice is an error.
func TestRulesPublicHealthAndReflection(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	policy, err := grpcjwt.NewPolicy(grpcjwt.PublicHealthAndReflection(), map[string]grpcjwt.Rule{
		grpcjwt.DefaultRuleKey: {Scopes: []string{"orders"}},
	})
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	opts := []grpcjwt.Option{grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(itDiscard)}
	srv := grpc.NewServer(grpc.UnaryInterceptor(grpcjwt.UnaryServerInterceptor(v, opts...)),
		grpc.StreamInterceptor(grpcjwt.StreamServerInterceptor(v, opts...)))
	ts := &itServer{}
	testpb.RegisterTestServiceServer(srv, ts)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	if err := policy.CheckServer(srv); err != nil {
		t.Errorf("CheckServer with health and reflection registered: %v", err)
	}
	cc := grpcjwttest.Serve(t, srv)
	c, hc := testpb.NewTestServiceClient(cc), healthpb.NewHealthClient(cc)

	wantServices := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection", "grpc.testing.TestService"}
	for name, ctx := range map[string]context.Context{
		"no token":              t.Context(),
		"invalid token":         itBearer(t.Context(), "garbage"),
		"token without scope":   itBearer(t.Context(), itMint(is, nil, itAudience)),
		"token with the scope":  itBearer(t.Context(), itMint(is, nil, itAudience, "orders")),
		"other scheme":          itAuth(t.Context(), "Basic dXNlcjpwYXNz"),
		"two authorization set": itAuth(t.Context(), "Bearer a", "Bearer b"),
	} {
		t.Run(name, func(t *testing.T) {
			if resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health Check: %v, %v; want SERVING", resp, err)
			}
			wctx, cancel := context.WithCancel(ctx)
			w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			cancel()
			if err != nil {
				t.Errorf("health Watch: %v", err)
			}
			for _, version := range []string{"v1", "v1alpha"} {
				names, err := rlListServices(ctx, cc, version)
				if err != nil || !slices.Equal(names, wantServices) {
					t.Errorf("reflection %s ListServices: %q, %v; want %q", version, names, err, wantServices)
				}
			}
		})
	}
	// The application's methods, on the default rule, still need a token
	// with the scope.
	rlCheck(t, "unary without token", ts, rlDenied(codes.Unauthenticated, "missing bearer token", "Bearer"),
		func() itOutcome { return rlCall(t.Context(), c, "unary") })
	rlCheck(t, "bidi without token", ts, rlDenied(codes.Unauthenticated, "missing bearer token", "Bearer"),
		func() itOutcome { return rlCall(t.Context(), c, "bidi") })
	rlCheck(t, "unary without the scope", ts, rlDenied(codes.PermissionDenied, rlScopeMsg, rlScopeWWW("orders")),
		func() itOutcome { return rlCall(itBearer(t.Context(), itMint(is, nil, itAudience)), c, "unary") })
	rlCheck(t, "unary with the scope", ts, rlOK("user-123"),
		func() itOutcome {
			return rlCall(itBearer(t.Context(), itMint(is, nil, itAudience, "orders")), c, "unary")
		})

	// CheckServer does not ask for the health or reflection services.
	for name, register := range map[string]func(*grpc.Server){
		"TestService and health": func(s *grpc.Server) {
			testpb.RegisterTestServiceServer(s, &itServer{})
			healthpb.RegisterHealthServer(s, health.NewServer())
		},
		"TestService only":          func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, &itServer{}) },
		"reflection v1 only":        func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, &itServer{}); reflection.RegisterV1(s) },
		"nothing registered at all": func(*grpc.Server) {},
	} {
		s := grpc.NewServer()
		register(s)
		p, err := grpcjwt.NewPolicy(grpcjwt.PublicHealthAndReflection(), map[string]grpcjwt.Rule{itService: {Scopes: []string{"orders"}}})
		if err != nil {
			t.Fatal(err)
		}
		err = p.CheckServer(s)
		_, hasTS := s.GetServiceInfo()["grpc.testing.TestService"]
		switch {
		case hasTS && err != nil:
			t.Errorf("%s: CheckServer: %v, want nil", name, err)
		case !hasTS && (err == nil || !strings.Contains(err.Error(), itService)):
			t.Errorf("%s: CheckServer: %v, want an error naming %q", name, err, itService)
		}
		if err != nil && (strings.Contains(err.Error(), "grpc.health") || strings.Contains(err.Error(), "grpc.reflection")) {
			t.Errorf("%s: CheckServer reports the built-in public rules: %v", name, err)
		}
		s.Stop()
	}

	// A key in two maps is an error naming it, whichever maps they are.
	for name, maps := range map[string][]map[string]grpcjwt.Rule{
		"health rule again": {grpcjwt.PublicHealthAndReflection(), {"/grpc.health.v1.Health/*": {Public: true}}},
		"reflection rule with scopes": {{"/grpc.reflection.v1.ServerReflection/*": {Scopes: []string{"admin"}}},
			grpcjwt.PublicHealthAndReflection()},
		"two maps of the application": {{itUnary: {Scopes: []string{"a"}}}, {itUnary: {Scopes: []string{"b"}}}},
		"built-in rules twice":        {grpcjwt.PublicHealthAndReflection(), grpcjwt.PublicHealthAndReflection()},
	} {
		_, err := grpcjwt.NewPolicy(maps...)
		var keys []string
		for _, m := range maps[1:] {
			for k := range m {
				if _, dup := maps[0][k]; dup {
					keys = append(keys, k)
				}
			}
		}
		if err == nil {
			t.Errorf("%s: NewPolicy accepted a key given twice", name)
			continue
		}
		for _, k := range keys {
			if want := fmt.Sprintf("rule %q is given twice", k); !strings.Contains(err.Error(), want) {
				t.Errorf("%s: NewPolicy error %q lacks %q", name, err, want)
			}
		}
	}
}

// TestRulesPolicyMatchAndCheckMethods: Match names the rule of a method
// (exact, service, default, built-in default) and returns a copy;
// CheckMethods reports the keys that name no method of a list.
func TestRulesPolicyMatchAndCheckMethods(t *testing.T) {
	claims := map[string][]string{"realm_access.roles": {"admin"}}
	rules := map[string]grpcjwt.Rule{
		"/shop.Orders/Get":     {Scopes: []string{"read:orders"}, Issuers: []string{"https://a.example"}},
		"/shop.Orders/*":       {AnyScopes: []string{"orders", "admin"}},
		"/shop.Admin/Purge":    {Claims: claims, CertificateBound: true},
		"/shop.Catalog/Browse": {Public: true},
		grpcjwt.DefaultRuleKey: {Audiences: []string{"api://shop"}},
	}
	p, err := grpcjwt.NewPolicy(grpcjwt.PublicHealthAndReflection(), rules)
	if err != nil {
		t.Fatal(err)
	}
	noDefault, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{"/shop.Orders/*": {Scopes: []string{"orders"}}})
	if err != nil {
		t.Fatal(err)
	}
	const builtIn = "(built-in default: valid token required)"
	for _, tc := range []struct {
		name    string
		p       *grpcjwt.Policy
		method  string
		key     string
		rule    grpcjwt.Rule
		public  bool // for the built-in public rules, only Public is compared
		builtin bool
	}{
		{name: "exact", p: p, method: "/shop.Orders/Get", key: "/shop.Orders/Get", rule: rules["/shop.Orders/Get"]},
		{name: "service", p: p, method: "/shop.Orders/List", key: "/shop.Orders/*", rule: rules["/shop.Orders/*"]},
		{name: "exact, claims", p: p, method: "/shop.Admin/Purge", key: "/shop.Admin/Purge", rule: rules["/shop.Admin/Purge"]},
		{name: "exact public", p: p, method: "/shop.Catalog/Browse", key: "/shop.Catalog/Browse", rule: rules["/shop.Catalog/Browse"]},
		{name: "default, sibling method", p: p, method: "/shop.Admin/Other", key: "*", rule: rules["*"]},
		{name: "default, service name prefix", p: p, method: "/shop.OrdersV2/Get", key: "*", rule: rules["*"]},
		{name: "default, service name suffix", p: p, method: "/x.shop.Orders/Get", key: "*", rule: rules["*"]},
		{name: "health", p: p, method: "/grpc.health.v1.Health/Watch", key: "/grpc.health.v1.Health/*", public: true},
		{name: "reflection v1", p: p, method: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
			key: "/grpc.reflection.v1.ServerReflection/*", public: true},
		{name: "reflection v1alpha", p: p, method: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
			key: "/grpc.reflection.v1alpha.ServerReflection/*", public: true},
		{name: "no default: service", p: noDefault, method: "/shop.Orders/Get", key: "/shop.Orders/*", rule: grpcjwt.Rule{Scopes: []string{"orders"}}},
		{name: "no default: other method", p: noDefault, method: "/shop.Admin/Purge", key: builtIn, builtin: true},
		{name: "no default: health is not public", p: noDefault, method: "/grpc.health.v1.Health/Check", key: builtIn, builtin: true},
		{name: "nil policy", p: nil, method: "/shop.Orders/Get", key: builtIn, builtin: true},
	} {
		key, r := tc.p.Match(tc.method)
		if key != tc.key {
			t.Errorf("%s: Match(%s) key %q, want %q", tc.name, tc.method, key, tc.key)
		}
		switch {
		case tc.public:
			if !r.Public || r.Scopes != nil || r.Claims != nil {
				t.Errorf("%s: Match(%s) rule %+v, want public", tc.name, tc.method, r)
			}
		case tc.builtin:
			if !reflect.DeepEqual(r, grpcjwt.Rule{}) {
				t.Errorf("%s: Match(%s) rule %+v, want the zero Rule", tc.name, tc.method, r)
			}
		case !reflect.DeepEqual(r, tc.rule):
			t.Errorf("%s: Match(%s) rule %+v, want %+v", tc.name, tc.method, r, tc.rule)
		}
	}

	// Match returns a copy, and the policy keeps its own: changing either
	// the rule it returned or the maps it was built from changes nothing.
	_, r := p.Match("/shop.Admin/Purge")
	r.Claims["realm_access.roles"] = []string{"user"}
	r.Claims["tenant"] = []string{"x"}
	_, r2 := p.Match("/shop.Orders/Get")
	r2.Scopes[0], r2.Issuers[0] = "changed", "changed"
	claims["extra"] = []string{"x"}
	rules["/shop.Orders/Get"].Scopes[0] = "changed-too"
	if _, r := p.Match("/shop.Admin/Purge"); len(r.Claims) != 1 || !slices.Equal(r.Claims["realm_access.roles"], []string{"admin"}) {
		t.Errorf("claims after changes to copies: %v, want realm_access.roles [admin]", r.Claims)
	}
	if _, r := p.Match("/shop.Orders/Get"); !slices.Equal(r.Scopes, []string{"read:orders"}) || !slices.Equal(r.Issuers, []string{"https://a.example"}) {
		t.Errorf("scopes, issuers after changes to copies: %v, %v", r.Scopes, r.Issuers)
	}
	// CheckMethods.
	all := []string{"/shop.Orders/Get", "/shop.Orders/List", "/shop.Admin/Purge", "/shop.Catalog/Browse"}
	for _, tc := range []struct {
		name    string
		methods []string
		want    []string // substrings of the error; none: nil
	}{
		{"every key names a method", all, nil},
		{"and more methods", append(slices.Clone(all), "/shop.Admin/Other", "/grpc.health.v1.Health/Check"), nil},
		{"method gone", []string{"/shop.Orders/List", "/shop.Admin/Purge", "/shop.Catalog/Browse"},
			[]string{`rule "/shop.Orders/Get": service "shop.Orders" has no method "Get"`}},
		{"service gone", []string{"/shop.Orders/Get", "/shop.Catalog/Browse"},
			[]string{`rule "/shop.Admin/Purge": no service "shop.Admin" is registered`}},
		{"service renamed", []string{"/shop.v2.Orders/Get", "/shop.Admin/Purge", "/shop.Catalog/Browse"},
			[]string{`rule "/shop.Orders/Get": no service "shop.Orders" is registered`, `rule "/shop.Orders/*": no service "shop.Orders" is registered`}},
		{"no methods", nil, []string{`"/shop.Orders/Get"`, `"/shop.Orders/*"`, `"/shop.Admin/Purge"`, `"/shop.Catalog/Browse"`}},
	} {
		err := p.CheckMethods(tc.methods...)
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: CheckMethods: %v, want nil", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: CheckMethods: nil, want an error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: CheckMethods: %q lacks %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "grpc.health") || strings.Contains(err.Error(), "grpc.reflection") || strings.Contains(err.Error(), `rule "*"`) {
			t.Errorf("%s: CheckMethods reports a built-in public rule or the default: %v", tc.name, err)
		}
	}
	if err := (*grpcjwt.Policy)(nil).CheckMethods("/shop.Orders/Get"); err != nil {
		t.Errorf("nil policy: CheckMethods: %v", err)
	}
}

// TestRulesPolicyClaimsNotShared: a Policy is immutable and Match returns a
// copy, Rule.Claims's value lists included: changing a list in place, in
// the rule Match returned or in the map NewPolicy was given, must change
// neither what Match reports nor what is enforced.
func TestRulesPolicyClaimsNotShared(t *testing.T) {
	const method = "/shop.Admin/Purge"
	p, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{method: {Claims: map[string][]string{"realm_access.roles": {"admin"}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, r := p.Match(method)
	r.Claims["realm_access.roles"][0] = "changed-in-returned-rule"
	if _, r := p.Match(method); !slices.Equal(r.Claims["realm_access.roles"], []string{"admin"}) {
		t.Errorf("Match's Claims share their value lists with the policy: after changing a returned rule's list in place, Match gives %v, want [admin]", r.Claims)
	}

	input := map[string][]string{"realm_access.roles": {"admin"}}
	p2, err := grpcjwt.NewPolicy(map[string]grpcjwt.Rule{method: {Claims: input}})
	if err != nil {
		t.Fatal(err)
	}
	input["realm_access.roles"][0] = "changed-in-input"
	if _, r := p2.Match(method); !slices.Equal(r.Claims["realm_access.roles"], []string{"admin"}) {
		t.Errorf("NewPolicy keeps the caller's Claims value lists: after changing one in place, Match gives %v, want [admin]", r.Claims)
	}

	// What is enforced did not change in either case: Match disagrees
	// with the enforced rule.
	is := itIssuer(t)
	v := itVerifier(t, is)
	for name, pol := range map[string]*grpcjwt.Policy{"returned rule changed": p, "input changed": p2} {
		a := grpcjwt.NewAuthorizer(v, grpcjwt.WithPolicy(pol), grpcjwt.WithLogger(itDiscard))
		for role, allowed := range map[string]bool{"admin": true, "changed-in-returned-rule": false, "changed-in-input": false} {
			tok := rlToken(is, "u", map[string]any{"realm_access": map[string]any{"roles": []string{role}}})
			_, _, err := a.Authorize(t.Context(), grpcjwt.Call{Method: method, Authorization: []string{"Bearer " + tok}})
			if (err == nil) != allowed {
				t.Errorf("%s: role %q: Authorize %v, want allowed %v", name, role, err, allowed)
			}
		}
	}
}

// rlSelfSigned makes a self-signed client certificate.
func rlSelfSigned(t *testing.T, cn string) (*x509.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return cert, base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestRulesAuthorizer: Authorize decides as the interceptors do (same
// code, message and challenge), returns the claims in the context, and a
// *Refusal whose cause errors.Is and errors.As reach but whose text, even
// wrapped, never carries the cause.
func TestRulesAuthorizer(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	opts := []grpcjwt.Option{grpcjwt.WithLogger(itDiscard), grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		itUnary: {Scopes: []string{"write:orders"}, Claims: map[string][]string{"tenant": {"acme"}}},
		itEmpty: {Public: true},
	}))}
	a := grpcjwt.NewAuthorizer(v, opts...)
	c, _, _ := itProtect(t, v, opts...)
	// The same interceptor behind one that wraps its error: the cause must
	// not reach the client through the wrapper either.
	wrap := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("outer: %w", err)
		}
		return resp, nil
	}
	cWrapped, _, _ := itServe(t, grpc.ChainUnaryInterceptor(wrap, grpcjwt.UnaryServerInterceptor(v, opts...)))

	mint := func(edit func(map[string]any), aud string, scopes ...string) string {
		return itMint(is, func(m map[string]any) {
			m["tenant"] = "acme"
			if edit != nil {
				edit(m)
			}
		}, aud, scopes...)
	}
	stranger := grpcjwttest.NewKey(is.SigningKey().Algorithm)
	for _, tc := range []struct {
		name     string
		auth     []string
		sentinel error // nil: allowed
		cause    string
	}{
		{"valid", []string{"Bearer " + mint(nil, itAudience, "write:orders")}, nil, ""},
		{"no token", nil, grpcjwt.ErrMissingToken, "grpcjwt: missing bearer token"},
		{"two values", []string{"Bearer a.b.c", "Bearer a.b.c"}, grpcjwt.ErrInvalidRequest, "2 authorization values"},
		{"other scheme", []string{"Basic dXNlcjpwYXNz"}, grpcjwt.ErrInvalidRequest, "scheme is not Bearer"},
		{"malformed", []string{"Bearer abc"}, grpcjwt.ErrMalformed, "grpcjwt: malformed token"},
		{"expired", []string{"Bearer " + mint(func(m map[string]any) {
			m["exp"], m["iat"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
		}, itAudience, "write:orders")}, grpcjwt.ErrExpired, "exp is "},
		{"wrong audience", []string{"Bearer " + mint(nil, "api://billing", "write:orders")}, grpcjwt.ErrAudience, `aud is ["api://billing"]`},
		{"bad signature", []string{"Bearer " + grpcjwttest.Sign(stranger, map[string]any{"kid": is.SigningKey().ID},
			is.Claims(itAudience, "write:orders"))}, grpcjwt.ErrSignature, "grpcjwt: invalid token signature"},
		{"missing scope", []string{"Bearer " + mint(nil, itAudience, "read:orders")}, grpcjwt.ErrInsufficientScope, `lacking "write:orders"`},
		{"wrong tenant", []string{"Bearer " + mint(func(m map[string]any) { m["tenant"] = "globex" }, itAudience, "write:orders")},
			grpcjwt.ErrClaimRequirement, `tenant is "globex"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := context.WithValue(t.Context(), rlCtxKey{}, "base")
			ctx, claims, err := a.Authorize(base, grpcjwt.Call{Method: itUnary, Authorization: tc.auth})
			o := itCallUnary(itAuth(t.Context(), tc.auth...), c)
			if tc.sentinel == nil {
				if err != nil || o.code != codes.OK {
					t.Fatalf("Authorize: %v; interceptor: %v %q; want both to allow", err, o.code, o.msg)
				}
				got, ok := grpcjwt.ClaimsFromContext(ctx)
				if !ok || got != claims || got.Subject != "user-123" || got.Subject != o.sub() {
					t.Errorf("ctx claims %+v (ok %v), returned %p; want the returned claims of user-123", got, ok, claims)
				}
				if ctx.Value(rlCtxKey{}) != "base" {
					t.Error("the returned context does not derive from the caller's")
				}
				if _, ok := grpcjwt.ClaimsFromContext(base); ok {
					t.Error("Authorize put claims in the caller's context")
				}
				return
			}
			if ctx != base || claims != nil {
				t.Errorf("refused: ctx changed (%v) or claims %+v returned", ctx != base, claims)
			}
			var r *grpcjwt.Refusal
			if !errors.As(err, &r) {
				t.Fatalf("Authorize: %T %v, want a *Refusal", err, err)
			}
			var www string
			if len(o.www()) == 1 {
				www = o.www()[0]
			}
			if r.Code != o.code || r.Message != o.msg || r.Challenge != www || len(o.www()) > 1 {
				t.Errorf("Refusal %v %q %q; interceptor %v %q %q", r.Code, r.Message, r.Challenge, o.code, o.msg, o.www())
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.sentinel)
			}
			if r.Err == nil || !strings.Contains(r.Err.Error(), tc.cause) {
				t.Errorf("cause %v, want it to hold %q", r.Err, tc.cause)
			}
			if got, want := r.Error(), status.Error(r.Code, r.Message).Error(); got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
			if s := status.Convert(err); s.Code() != o.code || s.Message() != o.msg {
				t.Errorf("status.Convert: %v %q, want %v %q", s.Code(), s.Message(), o.code, o.msg)
			}
			// Wrapped by an outer layer: the status code survives, the
			// cause stays out.
			wrapped := fmt.Errorf("outer: %w", err)
			s, ok := status.FromError(wrapped)
			if !ok || s.Code() != r.Code {
				t.Errorf("status.FromError(wrapped) = %v %v, want code %v", s.Code(), ok, r.Code)
			}
			wo := itCallUnary(itAuth(t.Context(), tc.auth...), cWrapped)
			if wo.code != r.Code {
				t.Errorf("through a wrapping interceptor: code %v, want %v", wo.code, r.Code)
			}
			for what, msg := range map[string]string{"FromError": s.Message(), "Convert": status.Convert(wrapped).Message(), "client": wo.msg} {
				if !strings.Contains(msg, r.Message) {
					t.Errorf("%s of the wrapped refusal: %q lacks %q", what, msg, r.Message)
				}
				if strings.Contains(msg, r.Err.Error()) || strings.Contains(msg, tc.cause) || strings.Contains(msg, "grpcjwt:") {
					t.Errorf("%s of the wrapped refusal: %q holds the cause %q", what, msg, r.Err)
				}
			}
		})
	}

	// A verified token for another audience: the CheckError names it.
	_, _, err := a.Authorize(t.Context(), grpcjwt.Call{Method: itUnary, Authorization: []string{"Bearer " + mint(nil, "api://billing")}})
	var ce *grpcjwt.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("wrong audience: %v, want a *CheckError inside", err)
	}
	if ce.Check != "aud" || ce.Got != `["api://billing"]` || ce.Want != `one of ["`+itAudience+`"]` || !errors.Is(ce, grpcjwt.ErrAudience) {
		t.Errorf("CheckError %+v, want aud [api://billing] against %s", ce, itAudience)
	}

	// A public method: no token, or an invalid one, gives no claims and no
	// error; a valid one gives its claims.
	for name, auth := range map[string][]string{"no token": nil, "garbage": {"Bearer garbage"}, "two values": {"Bearer a", "Bearer b"}} {
		ctx, claims, err := a.Authorize(t.Context(), grpcjwt.Call{Method: itEmpty, Authorization: auth})
		if _, ok := grpcjwt.ClaimsFromContext(ctx); err != nil || claims != nil || ok {
			t.Errorf("public, %s: claims %v, error %v; want neither", name, claims, err)
		}
	}
	if _, claims, err := a.Authorize(t.Context(), grpcjwt.Call{Method: itEmpty,
		Authorization: []string{"Bearer " + mint(nil, itAudience)}}); err != nil || claims == nil || claims.Subject != "user-123" {
		t.Errorf("public, valid token: claims %+v, error %v", claims, err)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("NewAuthorizer(nil) did not panic")
			}
		}()
		grpcjwt.NewAuthorizer(nil)
	}()
}

type rlCtxKey struct{}

// TestRulesAuthorizerCertificateBound: a token bound to a certificate
// (cnf x5t#S256) is refused without Call.TLS or with another certificate,
// and accepted with its own; a rule demanding binding refuses an unbound
// token.
func TestRulesAuthorizerCertificateBound(t *testing.T) {
	is := itIssuer(t)
	v := itVerifier(t, is)
	const boundMethod = "/shop.Admin/Purge"
	opts := []grpcjwt.Option{grpcjwt.WithLogger(itDiscard), grpcjwt.WithPolicy(itPolicy(t, map[string]grpcjwt.Rule{
		boundMethod: {CertificateBound: true},
	}))}
	a := grpcjwt.NewAuthorizer(v, opts...)
	c, _, ts := itProtect(t, v, opts...)
	cert, thumb := rlSelfSigned(t, "alice")
	other, _ := rlSelfSigned(t, "bob")
	bound := rlToken(is, "alice", map[string]any{"cnf": map[string]string{"x5t#S256": thumb}})
	unbound := rlToken(is, "carol", nil)
	withCert := func(certs ...*x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: certs}
	}
	const msg = "token not bound to this client certificate"
	const www = `Bearer error="invalid_token", error_description="` + msg + `"`

	for _, tc := range []struct {
		name   string
		method string
		tok    string
		tls    *tls.ConnectionState
		sub    string // "" refused
	}{
		{"bound, no TLS", itUnary, bound, nil, ""},
		{"bound, TLS without client certificate", itUnary, bound, withCert(), ""},
		{"bound, another certificate", itUnary, bound, withCert(other), ""},
		{"bound, its certificate second in the chain", itUnary, bound, withCert(other, cert), ""},
		{"bound, its certificate", itUnary, bound, withCert(cert), "alice"},
		{"bound, its certificate with a chain", itUnary, bound, withCert(cert, other), "alice"},
		{"bound, on a method demanding binding", boundMethod, bound, withCert(cert), "alice"},
		{"unbound, on a method demanding binding", boundMethod, unbound, withCert(cert), ""},
		{"unbound, elsewhere", itUnary, unbound, nil, "carol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, claims, err := a.Authorize(t.Context(), grpcjwt.Call{Method: tc.method, Authorization: []string{"Bearer " + tc.tok}, TLS: tc.tls})
			if tc.sub != "" {
				if err != nil || claims == nil || claims.Subject != tc.sub {
					t.Fatalf("Authorize: %v, claims %+v; want %s's", err, claims, tc.sub)
				}
				if tc.tok == bound && claims.CertificateThumbprint != thumb {
					t.Errorf("thumbprint %q, want %q", claims.CertificateThumbprint, thumb)
				}
				return
			}
			var r *grpcjwt.Refusal
			if !errors.As(err, &r) || r.Code != codes.Unauthenticated || r.Message != msg || r.Challenge != www ||
				!errors.Is(err, grpcjwt.ErrCertificateBinding) {
				t.Errorf("Authorize: %#v, want Unauthenticated %q wrapping ErrCertificateBinding", err, msg)
			}
		})
	}
	// Over gRPC without TLS, the interceptor refuses the bound token alike.
	rlCheck(t, "interceptor, bound token without TLS", ts, rlDenied(codes.Unauthenticated, msg, www),
		func() itOutcome { return itCallUnary(itBearer(t.Context(), bound), c) })
	rlCheck(t, "interceptor, unbound token", ts, rlOK("carol"),
		func() itOutcome { return itCallUnary(itBearer(t.Context(), unbound), c) })
}

// TestRulesAuthorizerStreamDeadlineAndPreAuthorize: StreamDeadline is the
// token's exp plus the verifier's leeway for protected methods only;
// PreAuthorize refuses what is not one well-formed bearer token, without
// reading it.
func TestRulesAuthorizerStreamDeadlineAndPreAuthorize(t *testing.T) {
	is := itIssuer(t)
	const leeway = 45 * time.Second
	v := itVerifier(t, is, grpcjwt.WithLeeway(leeway))
	policy := itPolicy(t, map[string]grpcjwt.Rule{itEmpty: {Public: true}, itOutStream: {Scopes: []string{"read:orders"}}})
	a := grpcjwt.NewAuthorizer(v, grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(itDiscard))
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	tok := itMint(is, func(m map[string]any) { m["exp"] = exp.Unix() }, itAudience, "read:orders")
	_, claims, err := a.Authorize(t.Context(), grpcjwt.Call{Method: itOutStream, Authorization: []string{"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	if !claims.Expiry.Equal(exp) {
		t.Fatalf("claims expire at %v, want %v", claims.Expiry, exp)
	}
	for _, tc := range []struct {
		name   string
		a      *grpcjwt.Authorizer
		method string
		claims *grpcjwt.Claims
		ok     bool
	}{
		{"protected stream", a, itOutStream, claims, true},
		{"method on the built-in default", a, rlBidi, claims, true},
		{"public method", a, itEmpty, claims, false},
		{"no claims", a, itOutStream, nil, false},
		{"WithStreamExpiry(false)", grpcjwt.NewAuthorizer(v, grpcjwt.WithPolicy(policy), grpcjwt.WithStreamExpiry(false)), itOutStream, claims, false},
		{"WithStreamExpiry(true)", grpcjwt.NewAuthorizer(v, grpcjwt.WithPolicy(policy), grpcjwt.WithStreamExpiry(true)), itOutStream, claims, true},
		{"no policy", grpcjwt.NewAuthorizer(v), itEmpty, claims, true},
	} {
		dl, ok := tc.a.StreamDeadline(tc.method, tc.claims)
		switch {
		case ok != tc.ok:
			t.Errorf("%s: StreamDeadline ok = %v, want %v", tc.name, ok, tc.ok)
		case ok && !dl.Equal(exp.Add(leeway)):
			t.Errorf("%s: StreamDeadline %v, want exp+leeway %v", tc.name, dl, exp.Add(leeway))
		case !ok && !dl.IsZero():
			t.Errorf("%s: StreamDeadline %v with ok=false, want the zero time", tc.name, dl)
		}
	}

	expired := itMint(is, func(m map[string]any) {
		m["exp"], m["iat"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
	}, itAudience)
	const single = "authorization must be a single bearer token"
	malformed := `Bearer error="invalid_token", error_description="malformed token"`
	for _, tc := range []struct {
		name      string
		method    string
		auth      []string
		sentinel  error // nil: passes
		msg       string
		challenge string
	}{
		{"no token", itUnary, nil, grpcjwt.ErrMissingToken, "missing bearer token", "Bearer"},
		{"two values", itUnary, []string{"Bearer " + tok, "Bearer " + tok}, grpcjwt.ErrInvalidRequest, single,
			`Bearer error="invalid_request", error_description="` + single + `"`},
		{"other scheme", itUnary, []string{"Basic dXNlcjpwYXNz"}, grpcjwt.ErrInvalidRequest, single, "Bearer"},
		{"empty token", itUnary, []string{"Bearer "}, grpcjwt.ErrInvalidRequest, single,
			`Bearer error="invalid_request", error_description="` + single + `"`},
		{"one segment", itUnary, []string{"Bearer abc"}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"two segments", itUnary, []string{"Bearer abc.def"}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"four segments", itUnary, []string{"Bearer a.b.c.d"}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"five segments (JWE)", itUnary, []string{"Bearer a.b.c.d.e"}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"empty header segment", itUnary, []string{"Bearer .b.c"}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"empty payload segment", itUnary, []string{"Bearer a..c"}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"empty signature segment", itUnary, []string{"Bearer a.b."}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"not base64url", itUnary, []string{"Bearer a+b.c/d.e="}, grpcjwt.ErrMalformed, "malformed token", malformed},
		{"well-formed garbage", itUnary, []string{"Bearer a.b.c"}, nil, "", ""},
		{"valid token", itUnary, []string{"Bearer " + tok}, nil, "", ""},
		{"expired token (not read)", itUnary, []string{"Bearer " + expired}, nil, "", ""},
		{"public, no token", itEmpty, nil, nil, "", ""},
		{"public, two values", itEmpty, []string{"x", "y"}, nil, "", ""},
		{"public, garbage", itEmpty, []string{"Bearer abc"}, nil, "", ""},
	} {
		err := a.PreAuthorize(tc.method, tc.auth)
		if tc.sentinel == nil {
			if err != nil {
				t.Errorf("%s: PreAuthorize: %v, want nil", tc.name, err)
			}
			continue
		}
		var r *grpcjwt.Refusal
		if !errors.As(err, &r) {
			t.Errorf("%s: PreAuthorize: %T %v, want a *Refusal", tc.name, err, err)
			continue
		}
		if r.Code != codes.Unauthenticated || r.Message != tc.msg || r.Challenge != tc.challenge || !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: Refusal %v %q %q (cause %v), want Unauthenticated %q %q wrapping %v",
				tc.name, r.Code, r.Message, r.Challenge, r.Err, tc.msg, tc.challenge, tc.sentinel)
		}
	}
}

// TestRulesDefaultLogger: without WithLogger, or with WithLogger(nil),
// refusals go to the slog.Default of the moment the interceptor was built:
// the first at Warn, counted, the rest within the minute at Debug; a token
// whose signature failed never has its values logged. It swaps the
// process's default logger, so it must not run in parallel.
func TestRulesDefaultLogger(t *testing.T) {
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	is := itIssuer(t)
	v := itVerifier(t, is) // the keyset logs to itDiscard
	policy := itPolicy(t, map[string]grpcjwt.Rule{itService: {Claims: map[string][]string{"realm_access.roles": {"admin"}}}})

	earlier := &itLogs{}
	slog.SetDefault(slog.New(earlier))
	early := grpcjwt.NewAuthorizer(v, grpcjwt.WithPolicy(policy))
	logs := &itLogs{}
	slog.SetDefault(slog.New(logs))
	if _, _, err := early.Authorize(t.Context(), grpcjwt.Call{Method: itUnary}); err == nil {
		t.Fatal("Authorize without a token: nil error")
	}
	if got := earlier.find(rlRefused, map[string]string{"method": itUnary, "refused_since_last_warning": "1"}); len(got) != 1 || got[0].level != slog.LevelWarn {
		t.Errorf("Authorizer built before the swap: logged %v to the default of its construction, want one Warn; logs:\n%s", got, earlier)
	}
	if len(logs.records()) != 0 {
		t.Errorf("Authorizer built before the swap logged to the new default:\n%s", logs)
	}

	roles := func(r ...string) map[string]any { return map[string]any{"realm_access": map[string]any{"roles": r}} }
	secret := is.Claims(itAudience)
	secret["sub"] = "SECRET-SUB"
	secret["aud"] = []string{itAudience, "SECRET-AUD"}
	secret["realm_access"] = map[string]any{"roles": []string{"SECRET-ROLE"}}
	secret["SECRET-CLAIM"] = "SECRET-VALUE"
	forged := grpcjwttest.Sign(grpcjwttest.NewKey(is.SigningKey().Algorithm), map[string]any{"kid": is.SigningKey().ID}, secret)
	valid := strings.Split(rlToken(is, "user-1", roles("admin")), ".")
	tampered := valid[0] + "." + strings.Split(is.Mint(secret), ".")[1] + "." + valid[2]

	for name, opts := range map[string][]grpcjwt.Option{
		"no WithLogger":   {grpcjwt.WithPolicy(policy)},
		"WithLogger(nil)": {grpcjwt.WithPolicy(policy), grpcjwt.WithLogger(nil)},
	} {
		t.Run(name, func(t *testing.T) {
			c, _, ts := itProtect(t, v, opts...)
			mark := len(logs.records())
			steps := []struct {
				name string
				auth []string
				want rlWant
				logs map[string]string // attributes the step's log record must have
			}{
				{"no token", nil, rlDenied(codes.Unauthenticated, "missing bearer token", "Bearer"),
					map[string]string{"error": "grpcjwt: missing bearer token"}},
				{"signed, without the role", []string{"Bearer " + rlToken(is, "user-2", roles("SIGNED-ROLE"))},
					rlDenied(codes.PermissionDenied, rlClaimMsg, rlClaimWWW),
					map[string]string{"check": "realm_access.roles", "got": `["SIGNED-ROLE"]`, "want": `one of ["admin"]`}},
				{"forged signature", []string{"Bearer " + forged},
					rlDenied(codes.Unauthenticated, "invalid token signature", `Bearer error="invalid_token", error_description="invalid token signature"`),
					map[string]string{"reason": grpcjwt.ErrSignature.Error()}},
				{"tampered payload", []string{"Bearer " + tampered},
					rlDenied(codes.Unauthenticated, "invalid token signature", `Bearer error="invalid_token", error_description="invalid token signature"`),
					map[string]string{"reason": grpcjwt.ErrSignature.Error()}},
				{"allowed", []string{"Bearer " + rlToken(is, "user-1", roles("admin"))}, rlOK("user-1"), nil},
				{"no token again", nil, rlDenied(codes.Unauthenticated, "missing bearer token", "Bearer"),
					map[string]string{"error": "grpcjwt: missing bearer token"}},
			}
			refusals := 0
			for _, s := range steps {
				before := len(logs.records())
				rlCheck(t, s.name, ts, s.want, func() itOutcome { return itCallUnary(itAuth(t.Context(), s.auth...), c) })
				recs := rlRefusals(logs, before)
				if s.logs == nil {
					if len(recs) != 0 {
						t.Errorf("%s: logged %v, want nothing", s.name, recs)
					}
					continue
				}
				refusals++
				if len(recs) != 1 {
					t.Errorf("%s: %d refusals logged to slog.Default, want 1; logs:\n%s", s.name, len(recs), logs)
					continue
				}
				r := recs[0]
				for k, w := range s.logs {
					if r.attrs[k] != w {
						t.Errorf("%s: logged %s=%q, want %q", s.name, k, r.attrs[k], w)
					}
				}
				if r.attrs["method"] != itUnary {
					t.Errorf("%s: logged method %q", s.name, r.attrs["method"])
				}
				count, counted := r.attrs["refused_since_last_warning"]
				switch {
				case refusals == 1 && (r.level != slog.LevelWarn || count != "1"):
					t.Errorf("%s: first refusal logged at %v with refused_since_last_warning=%q, want WARN and 1", s.name, r.level, count)
				case refusals > 1 && (r.level != slog.LevelDebug || counted):
					t.Errorf("%s: refusal %d logged at %v (count %q), want DEBUG without a count", s.name, refusals, r.level, count)
				}
			}
			all := fmt.Sprint(logs.records()[mark:])
			if strings.Contains(all, "SECRET") {
				t.Errorf("the log holds values of a token whose signature did not verify:\n%s", logs)
			}
			if !strings.Contains(all, "SIGNED-ROLE") {
				t.Errorf("the log lacks the value of the verified token's claim:\n%s", logs)
			}
		})
	}
}

// TestRulesClaimsCheckWrappedStatus: a status wrapped by the check's error
// gives the client its code and its own message, never the wrapping text.
func TestRulesClaimsCheckWrappedStatus(t *testing.T) {
	is := itIssuer(t)
	c, _, _ := itProtect(t, itVerifier(t, is), grpcjwt.WithLogger(itDiscard),
		grpcjwt.WithClaimsCheck(func(context.Context, string, *grpcjwt.Claims) error {
			return fmt.Errorf("SECRET detail: %w", status.Error(codes.ResourceExhausted, "quota exceeded"))
		}))
	o := itCallUnary(itBearer(t.Context(), itMint(is, nil, itAudience)), c)
	if o.code != codes.ResourceExhausted || o.msg != "quota exceeded" {
		t.Errorf("got %v %q, want ResourceExhausted %q", o.code, o.msg, "quota exceeded")
	}
}
