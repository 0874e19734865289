package grpcjwt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// maxPolicyBytes caps a policy document.
const maxPolicyBytes = 4 << 20

// policyMembers are the members a rule object of a policy document may
// have.
var policyMembers = []string{"public", "audiences", "issuers", "scopes", "any_scopes", "claims", "certificate_bound"}

// ParsePolicy reads a policy from a JSON document of this form, and
// validates it exactly as [NewPolicy] does:
//
//	{"rules": {
//	  "/pkg.Service/Public":  {"public": true},
//	  "/pkg.Service/Write":   {"scopes": ["write:orders"]},
//	  "/pkg.Service/Read":    {"any_scopes": ["read:orders", "admin"]},
//	  "/pkg.Service/Admin":   {"claims": {"realm_access.roles": ["admin"]}},
//	  "/pkg.Service/*":       {"audiences": ["https://api.example.com"]},
//	  "*":                    {}
//	}}
//
// A rule's members are those of [Rule]: "public", "audiences", "issuers",
// "scopes", "any_scopes", "claims" (an object of claim paths, each with
// an array of values) and "certificate_bound". Names match exactly, and
// at every level of the document an unknown name, a repeated one, or two
// names that differ only in case are errors: a typo or a bad merge never
// relaxes a rule silently (encoding/json alone would take "Public" for
// "public", and the last of two "public" members).
func ParsePolicy(doc []byte) (*Policy, error) {
	if len(doc) > maxPolicyBytes {
		return nil, fmt.Errorf("grpcjwt: policy document larger than %d bytes", maxPolicyBytes)
	}
	if !utf8.Valid(doc) {
		return nil, errors.New("grpcjwt: policy document: not valid UTF-8")
	}
	top, err := parseJSONObject(string(doc), nil)
	if err != nil {
		var syntax any
		if jerr := json.Unmarshal(doc, &syntax); jerr != nil {
			err = jerr // it says where: "invalid character ... after object key"
		}
		return nil, fmt.Errorf("grpcjwt: policy document: %w", err)
	}
	if err := unambiguousJSON(string(doc), 1); err != nil {
		return nil, fmt.Errorf("grpcjwt: policy document: %w", err)
	}
	if err := onlyMembers(top, "rules"); err != nil {
		return nil, fmt.Errorf("grpcjwt: policy document: %w", err)
	}
	rulesJSON, ok := top.get("rules")
	if !ok {
		return nil, errors.New(`grpcjwt: policy document: no "rules" object`)
	}
	ruleMembers, err := parseJSONObject(rulesJSON, nil)
	if err != nil {
		return nil, errors.New(`grpcjwt: policy document: "rules" is not an object`)
	}
	rules := make(map[string]Rule, len(ruleMembers))
	for _, m := range ruleMembers {
		r, err := parseRule(m.value)
		if err != nil {
			return nil, fmt.Errorf("grpcjwt: policy rule %q: %w", m.name, err)
		}
		rules[m.name] = r
	}
	return NewPolicy(rules)
}

// parseRule reads one rule object of a policy document.
func parseRule(v string) (Rule, error) {
	var r Rule
	m, err := parseJSONObject(v, nil)
	if err != nil {
		return r, errors.New("not an object")
	}
	if err := onlyMembers(m, policyMembers...); err != nil {
		return r, err
	}
	for _, mem := range m {
		switch mem.name {
		case "public", "certificate_bound":
			var b bool
			if mem.value == "null" || json.Unmarshal([]byte(mem.value), &b) != nil {
				return r, fmt.Errorf("%q is not true or false", mem.name)
			}
			if mem.name == "public" {
				r.Public = b
			} else {
				r.CertificateBound = b
			}
		case "claims":
			paths, err := parseJSONObject(mem.value, nil)
			if err != nil {
				return r, errors.New(`"claims" is not an object of claim paths`)
			}
			r.Claims = make(map[string][]string, len(paths))
			for _, p := range paths {
				values, ok := stringArray(p.value)
				if !ok {
					return r, fmt.Errorf("claim %q: not an array of strings", p.name)
				}
				r.Claims[p.name] = values
			}
		default:
			list, ok := stringArray(mem.value)
			if !ok {
				return r, fmt.Errorf("%q is not an array of strings", mem.name)
			}
			switch mem.name {
			case "audiences":
				r.Audiences = list
			case "issuers":
				r.Issuers = list
			case "scopes":
				r.Scopes = list
			case "any_scopes":
				r.AnyScopes = list
			}
		}
	}
	return r, nil
}

// onlyMembers refuses a member whose name is not one of names, exactly,
// suggesting the right spelling for a name that differs only in case.
func onlyMembers(m jsonObject, names ...string) error {
	for _, mem := range m {
		if slices.Contains(names, mem.name) {
			continue
		}
		for _, n := range names {
			if foldEqual(n, mem.name) {
				return fmt.Errorf("unknown member %q (names match exactly: %q)", mem.name, n)
			}
		}
		return fmt.Errorf("unknown member %q (known: %s)", mem.name, strings.Join(names, ", "))
	}
	return nil
}

// stringArray reads a JSON array of strings; null and other types are not
// one.
func stringArray(v string) ([]string, bool) {
	list := []string{}
	ok := jsonEachString(v, func(s string) { list = append(list, s) })
	return list, ok
}

// PolicyWatcher holds the policy of a JSON file ([ParsePolicy]) and reloads
// it when the file changes, as grpc-go's authz file watcher does. A change
// that does not parse or validate is logged and ignored: the last good
// policy stays. Create it with [WatchPolicyFile], pass it to the
// interceptors with [WithPolicyWatcher], and stop it with Close. It is safe
// for concurrent use.
type PolicyWatcher struct {
	path     string
	interval time.Duration
	log      *slog.Logger
	cur      atomic.Pointer[Policy]
	last     []byte
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
}

// WatchPolicyFile loads the policy at path, failing if it is invalid, and
// checks the file for changes every interval (at least one second) until
// Close. logger receives one line per reload or rejected change; nil
// means [slog.Default].
func WatchPolicyFile(path string, interval time.Duration, logger *slog.Logger) (*PolicyWatcher, error) {
	if interval < time.Second {
		return nil, fmt.Errorf("grpcjwt: WatchPolicyFile: interval %v is under one second", interval)
	}
	if logger == nil {
		logger = slog.Default()
	}
	w := &PolicyWatcher{path: path, interval: interval, log: logger, done: make(chan struct{})}
	doc, err := readPolicyFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParsePolicy(doc)
	if err != nil {
		return nil, err
	}
	w.cur.Store(p)
	w.last = doc
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(ctx)
	return w, nil
}

func readPolicyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("grpcjwt: policy file: %w", err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, maxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("grpcjwt: policy file: %w", err)
	}
	return doc, nil // ParsePolicy refuses a document over the cap
}

func (w *PolicyWatcher) run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.reload()
		}
	}
}

// reload reads the file and installs its policy if it changed and is valid.
func (w *PolicyWatcher) reload() {
	doc, err := readPolicyFile(w.path)
	if err != nil {
		w.log.Error("grpcjwt: policy file unreadable; keeping the current policy", "path", w.path, "error", err.Error())
		return
	}
	if bytes.Equal(doc, w.last) {
		return
	}
	w.last = doc
	p, err := ParsePolicy(doc)
	if err != nil {
		w.log.Error("grpcjwt: policy file rejected; keeping the current policy", "path", w.path, "error", err.Error())
		return
	}
	w.cur.Store(p)
	w.log.Info("grpcjwt: policy reloaded", "path", w.path)
}

// Policy returns the current policy.
func (w *PolicyWatcher) Policy() *Policy { return w.cur.Load() }

// Close stops watching and waits for the watcher's goroutine to return. It
// is safe to call more than once; the last policy stays available.
func (w *PolicyWatcher) Close() error {
	w.once.Do(w.cancel)
	<-w.done
	return nil
}

// WithPolicyWatcher makes the interceptors take the per-method rules from
// w, so that they follow its reloads. It replaces [WithPolicy].
func WithPolicyWatcher(w *PolicyWatcher) Option {
	return func(o *interceptorOptions) { o.watcher = w }
}
