package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/grpcjwt/grpcjwt"
)

// listFlag is a flag that may be repeated, each value a comma-separated
// list: -audience a -audience b,c gives [a b c].
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments ("check TOKEN -audience A"), and returns the positional ones.
// A lone "-" (stdin) is positional, as the flag package treats it.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// maxTokenInput caps what is read for a token from a file or stdin; the
// verifier's own cap (16 KiB by default) then applies.
const maxTokenInput = 1 << 20

// readToken reads the token named by arg: the token itself, "@path" for a
// file, or "-" for stdin. Surrounding white space and a leading "Bearer "
// (any case, as in an authorization header) are removed.
func readToken(arg string, stdin io.Reader) (string, error) {
	var raw string
	switch {
	case arg == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, maxTokenInput+1))
		if err != nil {
			return "", fmt.Errorf("reading the token from stdin: %w", err)
		}
		if len(b) > maxTokenInput {
			return "", fmt.Errorf("the token on stdin is larger than %d bytes", maxTokenInput)
		}
		raw = string(b)
	case strings.HasPrefix(arg, "@"):
		f, err := os.Open(arg[1:])
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxTokenInput+1))
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		if len(b) > maxTokenInput {
			return "", fmt.Errorf("the token file %s is larger than %d bytes", arg[1:], maxTokenInput)
		}
		raw = string(b)
	default:
		raw = arg
	}
	tok := strings.TrimSpace(raw)
	if scheme, rest, ok := strings.Cut(tok, " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(rest)
	}
	if tok == "" {
		return "", errors.New("the token is empty")
	}
	return tok, nil
}

// printable escapes what a terminal could take for a control sequence:
// every rune that is not printable (C0 and C1 controls, DEL, invalid
// UTF-8) except the newlines and tabs of indentation. Values read from a
// token, verified or not, go through it before they reach the terminal.
func printable(s string) string {
	ok := true
	for _, r := range s {
		if r != '\n' && r != '\t' && (r == utf8.RuneError || !unicode.IsPrint(r)) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t' || unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r) // '\u0085'
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// indentJSON indents a JSON document for display, keeping its members in
// their order (and any repeated names: nothing is reinterpreted), and
// escapes what the terminal must not interpret. ok is false when doc is
// not JSON.
func indentJSON(doc []byte, prefix string) (string, bool) {
	var buf bytes.Buffer
	buf.WriteString(prefix)
	if err := json.Indent(&buf, doc, prefix, "  "); err != nil {
		return "", false
	}
	return printable(buf.String()), true
}

// ruleDoc is a Rule as a policy document spells it.
type ruleDoc struct {
	Public           bool                `json:"public,omitempty"`
	Audiences        []string            `json:"audiences,omitempty"`
	Issuers          []string            `json:"issuers,omitempty"`
	Scopes           []string            `json:"scopes,omitempty"`
	AnyScopes        []string            `json:"any_scopes,omitempty"`
	Claims           map[string][]string `json:"claims,omitempty"`
	CertificateBound bool                `json:"certificate_bound,omitempty"`
}

// formatRule writes a rule in the policy document's JSON form, with a word
// on what the empty rule means.
func formatRule(r grpcjwt.Rule) string {
	b, err := json.Marshal(ruleDoc{Public: r.Public, Audiences: r.Audiences, Issuers: r.Issuers, Scopes: r.Scopes,
		AnyScopes: r.AnyScopes, Claims: r.Claims, CertificateBound: r.CertificateBound})
	if err != nil {
		return fmt.Sprintf("%+v", r) // cannot happen: strings and bools
	}
	s := string(b)
	if s == "{}" {
		s += " (a valid token for one of the verifier's audiences)"
	}
	return printable(s)
}

// className names the class of a refusal: the text of its sentinel
// without the package prefix ("token expired").
func className(reason error) string {
	if reason == nil {
		return "unknown"
	}
	return strings.TrimPrefix(reason.Error(), "grpcjwt: ")
}

// heldWriter holds what is written to it until Release, which passes it
// on to w and lets later writes through; Discard drops it. The keyset logs
// through one during set-up: a key it skipped is worth showing, but a
// failed first fetch is the set-up's own error, printed once.
type heldWriter struct {
	mu       sync.Mutex
	w        io.Writer
	buf      bytes.Buffer
	released bool
	dropped  bool
}

func (h *heldWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.released:
		return h.w.Write(p)
	case h.dropped:
		return len(p), nil
	}
	return h.buf.Write(p)
}

// Release writes what was held and lets later writes through.
func (h *heldWriter) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = true
	h.w.Write(h.buf.Bytes())
	h.buf.Reset()
}

// Discard drops what was held.
func (h *heldWriter) Discard() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	h.dropped = true
}

// stderrLogger logs to w at Warn and above, without timestamps: the
// keyset's warnings (a key skipped, a fetch failing) explain a refusal.
func stderrLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// discard is a logger that writes nothing: the command prints each
// decision itself.
var discard = slog.New(slog.DiscardHandler)

// quotedList formats strings as ["a" "b"], every one of them (the
// library's errors shorten long lists).
func quotedList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}
