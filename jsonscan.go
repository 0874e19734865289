package grpcjwt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A JWS header and a JWT claims set are each one JSON object, of which the
// verifier reads a handful of members. Decoding them with encoding/json
// (into a map, then member by member) cost more than a quarter of a
// verification; this scanner reads the object in one pass without
// reflection and hands out the members' values as the raw JSON text, which
// the caller converts for the few members it reads.
//
// It is strict (RFC 8259): it accepts exactly the texts that json.Valid
// accepts and that hold an object at the top level, except that arrays and
// objects nest at most jsonMaxDepth deep. Everything it skips is validated
// all the same, so that no token verifies with a header or claims set that
// encoding/json would refuse, and the values it hands out read as
// encoding/json reads them. It does not check UTF-8: the callers reject
// invalid UTF-8 before scanning. FuzzJSONScan holds it to encoding/json.

// jsonMaxDepth bounds the nesting of objects and arrays, the top-level
// object counting as 1. The scanner recurses once per level, so deep
// nesting cannot exhaust the stack; no real header or claims set comes near.
const jsonMaxDepth = 64

var (
	errJSONSyntax    = errors.New("invalid JSON")
	errJSONNotObject = errors.New("not a JSON object")
	errJSONDepth     = errors.New("JSON nested too deeply")
)

// jsonMember is one member of a JSON object: its name, unescaped, and the
// raw JSON text of its value, a substring of the scanned text.
type jsonMember struct {
	name  string
	value string
}

// jsonObject is the members of a JSON object in document order, duplicates
// included.
type jsonObject []jsonMember

// get returns the raw value of the member called name. Names match exactly
// (case-sensitively) and a duplicate name resolves to its last occurrence;
// the claims set and the header, where it matters, refuse duplicates
// before any get (see ambiguousNames, hasDuplicateNames).
func (o jsonObject) get(name string) (string, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].name == name {
			return o[i].value, true
		}
	}
	return "", false
}

// has reports whether the object has a member called name.
func (o jsonObject) has(name string) bool {
	_, ok := o.get(name)
	return ok
}

// hasDuplicateNames reports whether two members share a name.
func (o jsonObject) hasDuplicateNames() bool {
	if len(o) <= 16 {
		for i := range o {
			for j := i + 1; j < len(o); j++ {
				if o[i].name == o[j].name {
					return true
				}
			}
		}
		return false
	}
	// A map keeps an object of thousands of members linear.
	seen := make(map[string]struct{}, len(o))
	for _, m := range o {
		if _, ok := seen[m.name]; ok {
			return true
		}
		seen[m.name] = struct{}{}
	}
	return false
}

// ambiguousNames returns two members' names that encoding/json would
// match to the same struct field: equal, or equal under Unicode simple
// case folding ("scope" and "SCOPE", "sub" and "ſub"); ok is false when
// every name is distinct from the others in that sense.
func (o jsonObject) ambiguousNames() (a, b string, ok bool) {
	if len(o) <= 8 {
		for i := range o {
			for j := i + 1; j < len(o); j++ {
				if foldEqual(o[i].name, o[j].name) {
					return o[i].name, o[j].name, true
				}
			}
		}
		return "", "", false
	}
	if len(o) <= 64 {
		// Compare hashes of the folded names, on the stack, and only
		// names whose hashes are equal: a claims set of tens of members
		// costs no allocation.
		var buf [64]uint64
		hs := buf[:len(o)]
		for i := range o {
			hs[i] = foldHash(o[i].name)
			for j := range i {
				if hs[j] == hs[i] && foldEqual(o[j].name, o[i].name) {
					return o[j].name, o[i].name, true
				}
			}
		}
		return "", "", false
	}
	// A map keeps an object of thousands of members linear.
	seen := make(map[string]string, len(o))
	for _, m := range o {
		k := foldKey(m.name)
		if prev, dup := seen[k]; dup {
			return prev, m.name, true
		}
		seen[k] = m.name
	}
	return "", "", false
}

// foldEqual is strings.EqualFold, which matches as encoding/json's name
// matching does, with a fast answer for two ASCII names.
func foldEqual(a, b string) bool {
	if len(a) != len(b) && isASCII(a) && isASCII(b) {
		return false // the only folds across lengths involve non-ASCII runes
	}
	return strings.EqualFold(a, b)
}

// isASCII reports whether s holds only ASCII bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldRune returns the smallest rune of r's simple folding orbit: runes
// that fold to each other map to the same one.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A' // the orbit of an ASCII letter starts at its upper case
		}
		return r
	}
	for {
		f := unicode.SimpleFold(r)
		if f <= r {
			return f
		}
		r = f
	}
}

// foldKey maps a name to the same key as every name foldEqual to it: each
// rune becomes the smallest rune of its simple folding orbit.
func foldKey(name string) string {
	b := make([]byte, 0, len(name))
	for _, r := range name {
		b = utf8.AppendRune(b, foldRune(r))
	}
	return string(b)
}

// foldHash is an FNV-1a hash of foldKey(name), computed without building
// it: names that foldEqual have equal hashes.
func foldHash(name string) uint64 {
	h := uint64(14695981039346656037)
	for _, r := range name {
		h ^= uint64(foldRune(r))
		h *= 1099511628211
	}
	return h
}

// errJSONAmbiguous reports an object whose member names repeat or differ
// only in case.
var errJSONAmbiguous = errors.New("an object's member names repeat or differ only in case")

// unambiguousJSON checks that no object in the JSON value v (valid JSON,
// nested depth levels below the top) has two member names that
// ambiguousNames finds: encoding/json would read one of them in place of
// the other.
func unambiguousJSON(v string, depth int) error {
	p := jsonScanner{s: v}
	p.skipSpace()
	switch p.peek() {
	case '{':
		m, err := p.object(depth, nil, true)
		if err != nil {
			return err
		}
		if a, b, ok := m.ambiguousNames(); ok {
			return fmt.Errorf("%w: %s and %s", errJSONAmbiguous, quoted(a), quoted(b))
		}
		for _, mem := range m {
			if err := unambiguousJSON(mem.value, depth+1); err != nil {
				return err
			}
		}
	case '[':
		var err error
		jsonEachValue(v, func(e string) bool {
			err = unambiguousJSON(e, depth+1)
			return err == nil
		})
		return err
	}
	return nil
}

// jsonEachValue calls fn with the raw text of each element of the array v
// (valid JSON) until fn returns false; it reports false if v is not an
// array.
func jsonEachValue(v string, fn func(e string) bool) bool {
	p := jsonScanner{s: v}
	p.skipSpace()
	if p.peek() != '[' {
		return false
	}
	p.i++
	p.skipSpace()
	if p.peek() == ']' {
		return true
	}
	for {
		start := p.i
		if p.value(0) != nil {
			return false
		}
		if !fn(v[start:p.i]) {
			return true
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
			p.skipSpace()
		default:
			return true
		}
	}
}

// parseJSONObject parses s, which must be one JSON object with optional
// whitespace around it and nothing else, and appends its members to dst.
// Passing a buffer of the caller's lets a typical object cost no allocation.
func parseJSONObject(s string, dst jsonObject) (jsonObject, error) {
	p := jsonScanner{s: s}
	p.skipSpace()
	if p.peek() != '{' {
		// encoding/json would tell a syntax error from a non-object; both
		// are just "not a JSON object" to the callers.
		return nil, errJSONNotObject
	}
	dst, err := p.object(1, dst, true)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(s) {
		return nil, errJSONSyntax // trailing data
	}
	return dst, nil
}

// jsonScanner reads JSON text from s starting at i.
type jsonScanner struct {
	s string
	i int
}

// peek returns the next byte, or 0 at the end (NUL is invalid wherever a
// token may start, so the end needs no separate case).
func (p *jsonScanner) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *jsonScanner) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value skips one value starting at the current byte (not whitespace); the
// value sits at nesting depth depth.
func (p *jsonScanner) value(depth int) error {
	switch c := p.peek(); {
	case c == '{':
		_, err := p.object(depth+1, nil, false)
		return err
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		_, err := p.str()
		return err
	case c == '-' || isDigit(c):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return errJSONSyntax
}

// object reads an object starting at its '{', at nesting depth depth. With
// collect, it appends the members to dst (only the top-level object's are
// wanted; nested objects are validated and skipped).
func (p *jsonScanner) object(depth int, dst jsonObject, collect bool) (jsonObject, error) {
	if depth > jsonMaxDepth {
		return nil, errJSONDepth
	}
	p.i++ // '{'
	p.skipSpace()
	if p.peek() == '}' {
		p.i++
		return dst, nil
	}
	for {
		if p.peek() != '"' {
			return nil, errJSONSyntax
		}
		start := p.i
		escaped, err := p.str()
		if err != nil {
			return nil, err
		}
		name := p.s[start:p.i]
		p.skipSpace()
		if p.peek() != ':' {
			return nil, errJSONSyntax
		}
		p.i++
		p.skipSpace()
		vstart := p.i
		if err := p.value(depth); err != nil {
			return nil, err
		}
		if collect {
			if escaped {
				name = jsonUnescape(name[1 : len(name)-1])
			} else {
				name = name[1 : len(name)-1]
			}
			dst = append(dst, jsonMember{name: name, value: p.s[vstart:p.i]})
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
			p.skipSpace()
		case '}':
			p.i++
			return dst, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

// array reads an array starting at its '[', at nesting depth depth.
func (p *jsonScanner) array(depth int) error {
	if depth > jsonMaxDepth {
		return errJSONDepth
	}
	p.i++ // '['
	p.skipSpace()
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
			p.skipSpace()
		case ']':
			p.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// jsonPlain marks the bytes that stand for themselves inside a string:
// everything but the quote, the backslash and the control characters
// U+0000 to U+001F, which RFC 8259 §7 requires to be escaped. Bytes of
// multi-byte UTF-8 sequences are plain.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string starting at its opening quote and reports whether it
// holds escapes.
func (p *jsonScanner) str() (escaped bool, err error) {
	s, i := p.s, p.i+1
	for {
		for i < len(s) && jsonPlain[s[i]] {
			i++
		}
		if i >= len(s) {
			return false, errJSONSyntax // unterminated, or ends in an escape
		}
		switch s[i] {
		case '"':
			p.i = i + 1
			return escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(s) {
				return false, errJSONSyntax
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(s[i+2:]); !ok {
					return false, errJSONSyntax
				}
				i += 6
			default:
				return false, errJSONSyntax
			}
		default:
			return false, errJSONSyntax // a control character
		}
	}
}

// number reads a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonScanner) number() error {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i+1)
	default:
		return errJSONSyntax
	}
	if i < len(s) && s[i] == '.' {
		if i+1 >= len(s) || !isDigit(s[i+1]) {
			return errJSONSyntax
		}
		i = skipDigits(s, i+1)
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return errJSONSyntax
		}
		i = skipDigits(s, i)
	}
	// What follows ("01", "1x") is the caller's to reject: only a
	// delimiter or whitespace may.
	p.i = i
	return nil
}

func (p *jsonScanner) literal(lit string) error {
	if !strings.HasPrefix(p.s[p.i:], lit) {
		return errJSONSyntax
	}
	p.i += len(lit)
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// hex4 parses the four hexadecimal digits of a \u escape.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// jsonUnescape returns the contents s of a string that str accepted, with
// its escapes resolved exactly as encoding/json resolves them: a \u escape
// of a high surrogate followed by one of a low surrogate is one character,
// and any other surrogate escape becomes U+FFFD.
func jsonUnescape(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	// The result is never longer than s: each escape is at least as long
	// as the UTF-8 of what it stands for.
	b := make([]byte, 0, len(s))
	for {
		b = append(b, s[:i]...)
		s = s[i:]
		if len(s) == 0 {
			return string(b)
		}
		// s[0] is a backslash, and str checked what follows it.
		switch c := s[1]; c {
		case 'b':
			b, s = append(b, '\b'), s[2:]
		case 'f':
			b, s = append(b, '\f'), s[2:]
		case 'n':
			b, s = append(b, '\n'), s[2:]
		case 'r':
			b, s = append(b, '\r'), s[2:]
		case 't':
			b, s = append(b, '\t'), s[2:]
		case 'u':
			r, _ := hex4(s[2:])
			s = s[6:]
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					r2, _ = hex4(s[2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r, s = dec, s[6:]
				} else {
					r = utf8.RuneError // a lone surrogate; r2, if any, is read next
				}
			}
			b = utf8.AppendRune(b, r)
		default: // '"', '\\', '/'
			b, s = append(b, c), s[2:]
		}
		if i = strings.IndexByte(s, '\\'); i < 0 {
			i = len(s)
		}
	}
}

// The helpers below read the raw value of a member that the scanner
// returned (so the text is valid JSON); each reports whether the value has
// the JSON type it reads.

// jsonString returns the string value v. A string without escapes is a
// substring of v: claim values share the memory of the claims set.
func jsonString(v string) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	return jsonUnescape(v[1 : len(v)-1]), true
}

// jsonNumber returns the number value v as the nearest float64, as
// encoding/json does; a number beyond the float64 range is refused (as
// encoding/json refuses it for a float64) rather than made infinite.
func jsonNumber(v string) (float64, bool) {
	// The scanner checked the grammar, so a value that starts like a
	// number is one: strconv never sees its extensions ("0x1p3", "Inf",
	// "1_000", "+1", ".5").
	if len(v) == 0 || (v[0] != '-' && !isDigit(v[0])) {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// jsonEachString calls fn with each element of the array v, all of which
// must be strings; it reports false, having called fn for some elements,
// if v is not an array of strings. A null element is not a string.
func jsonEachString(v string, fn func(s string)) bool {
	if len(v) == 0 || v[0] != '[' {
		return false
	}
	p := jsonScanner{s: v, i: 1}
	p.skipSpace()
	if p.peek() == ']' {
		return true
	}
	for {
		if p.peek() != '"' {
			return false
		}
		start := p.i
		if _, err := p.str(); err != nil {
			return false
		}
		fn(jsonUnescape(v[start+1 : p.i-1]))
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
			p.skipSpace()
		case ']':
			return true
		default:
			return false
		}
	}
}
