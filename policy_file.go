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
	"sync"
	"sync/atomic"
	"time"
)

// jsonRule is a Rule as it appears in a policy document.
type jsonRule struct {
	Public           bool     `json:"public"`
	Audiences        []string `json:"audiences"`
	Scopes           []string `json:"scopes"`
	CertificateBound bool     `json:"certificate_bound"`
}

// maxPolicyBytes caps a policy document.
const maxPolicyBytes = 4 << 20

// ParsePolicy reads a policy from a JSON document of this form, and
// validates it exactly as [NewPolicy] does:
//
//	{"rules": {
//	  "/pkg.Service/Public":  {"public": true},
//	  "/pkg.Service/Write":   {"scopes": ["write:orders"]},
//	  "/pkg.Service/*":       {"audiences": ["https://api.example.com"]},
//	  "*":                    {}
//	}}
//
// Unknown members and a rule key given twice are errors, so that a typo in
// a field name does not silently relax a rule.
func ParsePolicy(doc []byte) (*Policy, error) {
	if len(doc) > maxPolicyBytes {
		return nil, fmt.Errorf("grpcjwt: policy document larger than %d bytes", maxPolicyBytes)
	}
	var top struct {
		Rules json.RawMessage `json:"rules"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("grpcjwt: policy document: %w", err)
	}
	if dec.More() {
		return nil, errors.New("grpcjwt: policy document: data after the object")
	}
	if top.Rules == nil {
		return nil, errors.New(`grpcjwt: policy document: no "rules" object`)
	}
	keys, err := objectKeys(top.Rules)
	if err != nil {
		return nil, err
	}
	rules := make(map[string]Rule, len(keys))
	for key, raw := range keys {
		var jr jsonRule
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&jr); err != nil {
			return nil, fmt.Errorf("grpcjwt: policy rule %q: %w", key, err)
		}
		rules[key] = Rule(jr)
	}
	return NewPolicy(rules)
}

// objectKeys splits a JSON object into its members, refusing duplicates.
func objectKeys(obj json.RawMessage) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New(`grpcjwt: policy document: "rules" is not an object`)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("grpcjwt: policy document: %w", err)
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("grpcjwt: policy rule %q: %w", key, err)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("grpcjwt: policy rule %q appears twice", key)
		}
		out[key] = raw
	}
	return out, nil
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

// policy returns the policy in force for this call.
func (a *authorizer) policy() *Policy {
	if a.o.watcher != nil {
		return a.o.watcher.Policy()
	}
	return a.o.policy
}
