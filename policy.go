package grpcjwt

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc"
)

// Rule is what one method, one service or every method requires of a call.
// The zero Rule requires a valid token (with one of the verifier's
// audiences) and nothing more.
type Rule struct {
	// Public lets calls through without a token. A token that is present is
	// still verified: if valid, its claims reach the handler; if not, the
	// call proceeds without claims (see [WithStrictPublicTokens]). A public
	// rule names no audiences or scopes.
	Public bool

	// Audiences, if set, are the audiences this method accepts, in place of
	// the verifier's ([WithAudience]): the token's "aud" must contain at
	// least one of them. Issuer, signature and expiry are checked as always.
	Audiences []string

	// Scopes are the scopes this method requires: the token must grant
	// every one of them, or the call fails with PermissionDenied.
	Scopes []string

	// CertificateBound accepts only tokens bound to the client's TLS
	// certificate (RFC 8705 "cnf" with "x5t#S256"), presented over mutual
	// TLS with that certificate. A bound token is held to its certificate
	// on every method, whatever this field says.
	CertificateBound bool
}

// DefaultRuleKey is the [Policy] key of the rule for methods that no other
// rule names.
const DefaultRuleKey = "*"

// Policy maps gRPC methods to rules. Build it with [NewPolicy]; it is
// immutable and safe for concurrent use.
type Policy struct {
	exact   map[string]*ruleEntry // "/pkg.Service/Method"
	service map[string]*ruleEntry // "/pkg.Service/" (from "/pkg.Service/*")
	def     *ruleEntry
}

// ruleEntry is a validated rule with the key that named it.
type ruleEntry struct {
	Rule
	key         string
	scopeHeader string // the scopes, space-separated, for the insufficient_scope trailer
}

// defaultRule applies when no policy or no rule matches.
var defaultRule = &ruleEntry{key: "(built-in default: valid token required)"}

// NewPolicy validates rules and returns the policy they make. Keys are a
// full method name "/pkg.Service/Method", a service wildcard
// "/pkg.Service/*", or [DefaultRuleKey] for all other methods; the most
// specific key wins. Without a default rule, a method that no rule names
// requires a valid token: nothing is public unless a rule says so.
//
// Every malformed key or contradictory rule is reported, joined in one
// error; see also [Policy.CheckServer] to catch keys that name no method.
func NewPolicy(rules map[string]Rule) (*Policy, error) {
	p := &Policy{exact: map[string]*ruleEntry{}, service: map[string]*ruleEntry{}}
	var errs []error
	keys := make([]string, 0, len(rules))
	for k := range rules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		r := rules[key]
		e, err := newRuleEntry(key, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case key == DefaultRuleKey:
			p.def = e
		case strings.HasSuffix(key, "/*"):
			svc, ok := serviceOfKey(key)
			if !ok {
				errs = append(errs, fmt.Errorf("grpcjwt: rule %q: a service rule is \"/pkg.Service/*\"", key))
				continue
			}
			p.service[svc] = e
		default:
			if !validMethodName(key) {
				errs = append(errs, fmt.Errorf("grpcjwt: rule %q: a method rule is \"/pkg.Service/Method\"", key))
				continue
			}
			p.exact[key] = e
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func newRuleEntry(key string, r Rule) (*ruleEntry, error) {
	if r.Public && (len(r.Audiences) > 0 || len(r.Scopes) > 0 || r.CertificateBound) {
		return nil, fmt.Errorf("grpcjwt: rule %q: a public rule cannot require audiences, scopes or certificate binding", key)
	}
	for _, a := range r.Audiences {
		if a == "" {
			return nil, fmt.Errorf("grpcjwt: rule %q: empty audience", key)
		}
	}
	for _, s := range r.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return nil, fmt.Errorf("grpcjwt: rule %q: scope %q is empty or holds a space, quote or backslash", key, s)
		}
	}
	r.Audiences = slices.Clone(r.Audiences)
	r.Scopes = slices.Clone(r.Scopes)
	return &ruleEntry{Rule: r, key: key, scopeHeader: strings.Join(r.Scopes, " ")}, nil
}

// validMethodName reports whether s is "/service/method" with non-empty
// parts, no further slash, no wildcard and no space.
func validMethodName(s string) bool {
	if len(s) < 4 || s[0] != '/' || strings.ContainsAny(s, "* \t") {
		return false
	}
	svc, m, ok := strings.Cut(s[1:], "/")
	return ok && svc != "" && m != "" && !strings.Contains(m, "/")
}

// serviceOfKey turns "/pkg.Service/*" into "/pkg.Service/".
func serviceOfKey(key string) (string, bool) {
	svc := strings.TrimSuffix(key, "*")
	if !validMethodName(svc + "x") {
		return "", false
	}
	return svc, true
}

// match returns the rule for a full method name: exact, then service, then
// the default.
func (p *Policy) match(fullMethod string) *ruleEntry {
	if p == nil {
		return defaultRule
	}
	if e, ok := p.exact[fullMethod]; ok {
		return e
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		if e, ok := p.service[fullMethod[:i+1]]; ok {
			return e
		}
	}
	if p.def != nil {
		return p.def
	}
	return defaultRule
}

// A ServiceInfoProvider reports registered services; *grpc.Server is one.
type ServiceInfoProvider interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}

// CheckServer reports every rule whose key names no service or method
// registered on srv, so that a typo fails at start-up rather than leaving a
// method on the default rule. Call it after registering services and before
// serving.
func (p *Policy) CheckServer(srv ServiceInfoProvider) error {
	if p == nil {
		// A nil policy (the default of WithPolicy) names no method.
		return nil
	}
	info := srv.GetServiceInfo()
	var errs []error
	for _, key := range p.sortedKeys() {
		svc, method, _ := strings.Cut(strings.TrimPrefix(key, "/"), "/")
		si, ok := info[svc]
		if !ok {
			errs = append(errs, fmt.Errorf("grpcjwt: rule %q: no service %q is registered", key, svc))
			continue
		}
		if method == "*" {
			continue
		}
		if !slices.ContainsFunc(si.Methods, func(m grpc.MethodInfo) bool { return m.Name == method }) {
			errs = append(errs, fmt.Errorf("grpcjwt: rule %q: service %q has no method %q", key, svc, method))
		}
	}
	return errors.Join(errs...)
}

// sortedKeys lists the method and service keys in order.
func (p *Policy) sortedKeys() []string {
	var keys []string
	for k := range p.exact {
		keys = append(keys, k)
	}
	for k := range p.service {
		keys = append(keys, k+"*")
	}
	sort.Strings(keys)
	return keys
}
