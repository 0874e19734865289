package grpcjwt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc"
)

// Rule is what one method, one service or every method requires of a call.
// The zero Rule requires a valid token (with one of the verifier's
// audiences) and nothing more. Every requirement a rule names must hold:
// audiences, issuers, scopes, claims and binding are ANDed.
type Rule struct {
	// Public lets calls through without a token. A token that is present is
	// still verified: if valid, its claims reach the handler; if not, the
	// call proceeds without claims (see [WithStrictPublicTokens]). A public
	// rule names no other requirement.
	Public bool

	// Audiences, if set, narrow the audience check for this method: the
	// token's "aud" must hold one of them, as well as one of the verifier's
	// audiences ([WithAudience]). A rule therefore never admits a token for
	// an audience the verifier does not accept; with
	// [InsecureSkipAudienceCheck], the rule's audiences are the only check.
	// A token for another audience fails with Unauthenticated.
	Audiences []string

	// Issuers, if set, are the issuers whose tokens this method accepts,
	// out of those the verifier trusts (several with
	// [NewMultiIssuerVerifier]): the token's "iss" must equal one of them.
	// A token of another trusted issuer fails with Unauthenticated.
	Issuers []string

	// Scopes are the scopes this method requires: the token must grant
	// every one of them, or the call fails with PermissionDenied.
	Scopes []string

	// AnyScopes, if set, are alternatives: the token must grant at least
	// one of them ("read:orders" or "admin"), or the call fails with
	// PermissionDenied. With Scopes as well, both must hold.
	AnyScopes []string

	// Claims are requirements on other claims, as data: each key is a
	// claim path and the token's claim there must hold one of the listed
	// values, or the call fails with PermissionDenied. Every path must
	// hold. A claim holds a value when it is a string equal to it, an
	// array with an element equal to it, an object with a member named by
	// it (Zitadel's role claims are such objects), or a number or boolean
	// whose JSON text equals it ("true", "42"). An absent claim, or null,
	// holds nothing.
	//
	// A path is a claim name ("roles", "organization_id"), or names
	// joined by dots into nested objects ("realm_access.roles"). A name
	// that holds a dot itself ("https://example.com/roles", Auth0's
	// namespaced claims) is written as a JSON Pointer (RFC 6901), which
	// starts with "/": "/https:~1~1example.com~1roles"
	// ("~1" stands for "/", "~0" for "~").
	//
	// Names match exactly. An object on the path whose member names repeat
	// or differ only in case holds nothing: two readers could see two
	// values.
	Claims map[string][]string

	// CertificateBound accepts only tokens bound to the client's TLS
	// certificate (RFC 8705 "cnf" with "x5t#S256"), presented over mutual
	// TLS with that certificate. A bound token is held to its certificate
	// on every method, whatever this field says.
	CertificateBound bool

	// optional marks the rules of PublicHealthAndReflection, which
	// CheckServer does not require to name a registered service.
	optional bool
}

// DefaultRuleKey is the [Policy] key of the rule for methods that no other
// rule names.
const DefaultRuleKey = "*"

// PublicHealthAndReflection returns the rules that make the gRPC health
// service (grpc.health.v1.Health) and both server reflection services
// (grpc.reflection.v1 and v1alpha) public, so that load balancers,
// Kubernetes probes and grpcurl work without a token. Pass it to
// [NewPolicy] beside your own rules:
//
//	policy, err := grpcjwt.NewPolicy(grpcjwt.PublicHealthAndReflection(), rules)
//
// [Policy.CheckServer] does not report these rules when a service is not
// registered.
func PublicHealthAndReflection() map[string]Rule {
	return map[string]Rule{
		"/grpc.health.v1.Health/*":                    {Public: true, optional: true},
		"/grpc.reflection.v1.ServerReflection/*":      {Public: true, optional: true},
		"/grpc.reflection.v1alpha.ServerReflection/*": {Public: true, optional: true},
	}
}

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
	scopeHeader string       // the scopes, space-separated, for the insufficient_scope trailer
	claims      []claimCheck // Rule.Claims, parsed, in path order
}

// claimCheck is one requirement of Rule.Claims.
type claimCheck struct {
	path   string   // as written
	names  []string // the path's member names
	values []string
}

// defaultRule applies when no policy or no rule matches.
var defaultRule = &ruleEntry{key: "(built-in default: valid token required)"}

// NewPolicy validates rules and returns the policy they make. Keys are a
// full method name "/pkg.Service/Method", a service wildcard
// "/pkg.Service/*", or [DefaultRuleKey] for all other methods; the most
// specific key wins. Without a default rule, a method that no rule names
// requires a valid token: nothing is public unless a rule says so.
//
// Several maps may be given (see [PublicHealthAndReflection]); a key in
// more than one of them is an error. Every malformed key or contradictory
// rule is reported, joined in one error; see also [Policy.CheckServer] to
// catch keys that name no method.
func NewPolicy(rules ...map[string]Rule) (*Policy, error) {
	p := &Policy{exact: map[string]*ruleEntry{}, service: map[string]*ruleEntry{}}
	var errs []error
	all := map[string]Rule{}
	for _, m := range rules {
		for _, key := range slices.Sorted(maps.Keys(m)) {
			if _, dup := all[key]; dup {
				errs = append(errs, fmt.Errorf("grpcjwt: rule %q is given twice", key))
				continue
			}
			all[key] = m[key]
		}
	}
	for _, key := range slices.Sorted(maps.Keys(all)) {
		e, err := newRuleEntry(key, all[key])
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
	if r.Public && (len(r.Audiences) > 0 || len(r.Issuers) > 0 || len(r.Scopes) > 0 || len(r.AnyScopes) > 0 ||
		len(r.Claims) > 0 || r.CertificateBound) {
		return nil, fmt.Errorf("grpcjwt: rule %q: a public rule cannot require audiences, issuers, scopes, claims or certificate binding", key)
	}
	if slices.Contains(r.Audiences, "") {
		return nil, fmt.Errorf("grpcjwt: rule %q: empty audience", key)
	}
	if slices.Contains(r.Issuers, "") {
		return nil, fmt.Errorf("grpcjwt: rule %q: empty issuer", key)
	}
	for _, s := range slices.Concat(r.Scopes, r.AnyScopes) {
		if !validScopeToken(s) {
			return nil, fmt.Errorf("grpcjwt: rule %q: scope %q is not a scope-token (RFC 6749 §3.3: printable ASCII without space, quote or backslash)", key, s)
		}
	}
	e := &ruleEntry{key: key}
	for _, path := range slices.Sorted(maps.Keys(r.Claims)) {
		names, err := parseClaimPath(path)
		if err != nil {
			return nil, fmt.Errorf("grpcjwt: rule %q: claim path %q: %w", key, path, err)
		}
		values := r.Claims[path]
		if len(values) == 0 || slices.Contains(values, "") {
			return nil, fmt.Errorf("grpcjwt: rule %q: claim %q: name at least one value, none empty", key, path)
		}
		e.claims = append(e.claims, claimCheck{path: path, names: names, values: slices.Clone(values)})
	}
	r = r.clone()
	e.Rule = r
	e.scopeHeader = strings.Join(slices.Concat(r.Scopes, r.AnyScopes), " ")
	return e, nil
}

// validScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// one or more of %x21 / %x23-5B / %x5D-7E.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parseClaimPath splits a claim path into member names: a JSON Pointer
// (RFC 6901) when it starts with "/", else names joined by dots.
func parseClaimPath(path string) ([]string, error) {
	if path == "" {
		return nil, errors.New("empty")
	}
	if !strings.HasPrefix(path, "/") {
		names := strings.Split(path, ".")
		if slices.Contains(names, "") {
			return nil, errors.New(`an empty name between dots (a name with a dot is written as a JSON Pointer, "/a.b")`)
		}
		return names, nil
	}
	names := strings.Split(path[1:], "/")
	for i, n := range names {
		// "~" must be followed by "0" or "1" (RFC 6901 §3).
		for j := 0; j < len(n); j++ {
			if n[j] == '~' {
				if j+1 >= len(n) || (n[j+1] != '0' && n[j+1] != '1') {
					return nil, errors.New(`"~" is not followed by "0" or "1"`)
				}
				j++
			}
		}
		names[i] = strings.ReplaceAll(strings.ReplaceAll(n, "~1", "/"), "~0", "~")
		if names[i] == "" {
			return nil, errors.New("an empty name")
		}
	}
	return names, nil
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

// Match returns the rule that applies to fullMethod ("/pkg.Service/Method")
// and the key that names it: the method's own, its service's
// ("/pkg.Service/*"), [DefaultRuleKey], or, when none matches,
// "(built-in default: valid token required)" with the zero Rule. A nil
// policy matches every method to that built-in default.
func (p *Policy) Match(fullMethod string) (key string, r Rule) {
	e := p.match(fullMethod)
	return e.key, e.Rule.clone()
}

// clone returns a deep copy of r, value lists of Claims included, so that
// a policy never shares a slice or map with its caller.
func (r Rule) clone() Rule {
	r.Audiences = slices.Clone(r.Audiences)
	r.Issuers = slices.Clone(r.Issuers)
	r.Scopes = slices.Clone(r.Scopes)
	r.AnyScopes = slices.Clone(r.AnyScopes)
	if r.Claims != nil {
		m := make(map[string][]string, len(r.Claims))
		for k, v := range r.Claims {
			m[k] = slices.Clone(v)
		}
		r.Claims = m
	}
	return r
}

// A ServiceInfoProvider reports registered services; *grpc.Server is one.
type ServiceInfoProvider interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}

// CheckServer reports every rule whose key names no service or method
// registered on srv, so that a typo fails at start-up rather than leaving a
// method on the default rule. Call it after registering services and before
// serving. The rules of [PublicHealthAndReflection] are not reported.
func (p *Policy) CheckServer(srv ServiceInfoProvider) error {
	var methods []string
	for svc, si := range srv.GetServiceInfo() {
		for _, m := range si.Methods {
			methods = append(methods, "/"+svc+"/"+m.Name)
		}
		if len(si.Methods) == 0 {
			methods = append(methods, "/"+svc+"/") // a service without methods still exists
		}
	}
	return p.CheckMethods(methods...)
}

// CheckMethods is [Policy.CheckServer] for any server: it reports every
// rule whose key names no service or method among methods, full method
// names ("/pkg.Service/Method") such as connect-go's procedures.
func (p *Policy) CheckMethods(methods ...string) error {
	if p == nil {
		// A nil policy (the default of WithPolicy) names no method.
		return nil
	}
	services := map[string][]string{}
	for _, m := range methods {
		svc, name, _ := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		services[svc] = append(services[svc], name)
	}
	var errs []error
	for _, key := range p.sortedKeys() {
		svc, method, _ := strings.Cut(strings.TrimPrefix(key, "/"), "/")
		names, ok := services[svc]
		switch {
		case !ok && p.match(key).optional:
		case !ok:
			errs = append(errs, fmt.Errorf("grpcjwt: rule %q: no service %q is registered", key, svc))
		case method != "*" && !slices.Contains(names, method):
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

// checkClaimRules applies a rule's claim requirements to verified claims.
func checkClaimRules(checks []claimCheck, c *Claims) error {
	var members [claimsMembersOnStack]jsonMember
	top, err := parseJSONObject(c.payload, members[:0])
	if c.payload == "" {
		top, err = nil, nil // Claims built by hand hold no other claim
	}
	if err != nil {
		return &CheckError{Err: ErrClaimRequirement, Check: checks[0].path, Got: "an unreadable claims set", Want: "a JSON object"}
	}
	for _, cc := range checks {
		v, why := lookupClaimPath(top, cc.names)
		if why == "" && claimHolds(v, cc.values) {
			continue
		}
		if why == "" {
			why = formatClaimValue(v)
		}
		return &CheckError{Err: ErrClaimRequirement, Check: cc.path, Got: why, Want: "one of " + quotedList(cc.values)}
	}
	return nil
}

// lookupClaimPath follows names from the claims set's members to a value.
// why says why there is none ("absent", ...), empty when v is the value.
func lookupClaimPath(top jsonObject, names []string) (v, why string) {
	obj := top
	for i, name := range names {
		if i > 0 {
			var err error
			if obj, err = parseJSONObject(v, nil); err != nil {
				return "", fmt.Sprintf("absent (%s is not an object)", quoted(strings.Join(names[:i], ".")))
			}
			if _, _, amb := obj.ambiguousNames(); amb {
				return "", fmt.Sprintf("ambiguous (the member names of %s repeat or differ only in case)", quoted(strings.Join(names[:i], ".")))
			}
		}
		var ok bool
		if v, ok = obj.get(name); !ok {
			return "", "absent"
		}
	}
	return v, ""
}

// claimHolds reports whether the claim value v (raw JSON) holds one of
// values: see Rule.Claims.
func claimHolds(v string, values []string) bool {
	if v == "" {
		return false
	}
	switch v[0] {
	case '"':
		s, _ := jsonString(v)
		return slices.Contains(values, s)
	case '[':
		held := false
		jsonEachValue(v, func(e string) bool {
			if e != "" && e[0] != '[' && e[0] != '{' && claimHolds(e, values) {
				held = true
			}
			return !held
		})
		return held
	case '{':
		m, err := parseJSONObject(v, nil)
		if err != nil {
			return false
		}
		if _, _, amb := m.ambiguousNames(); amb {
			return false
		}
		return slices.ContainsFunc(m, func(mem jsonMember) bool { return slices.Contains(values, mem.name) })
	case 'n':
		return false // null holds nothing
	}
	return slices.Contains(values, v) // a number or a boolean, by its JSON text
}

// formatClaimValue formats a claim's raw JSON value for a CheckError.
func formatClaimValue(v string) string {
	if s, ok := jsonString(v); ok {
		return quoted(s)
	}
	var list []string
	if jsonEachString(v, func(s string) { list = append(list, s) }) {
		return quotedList(list)
	}
	v = strings.Join(strings.Fields(v), " ") // for one line: JSON's white space between tokens
	if len(v) > maxLoggedValue {
		return v[:maxLoggedValue] + fmt.Sprintf("... (%d bytes)", len(v))
	}
	return v
}
