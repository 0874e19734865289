package grpcjwt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

func TestParseJSONObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want jsonObject
	}{
		{`{}`, jsonObject{}},
		{" \t\r\n{ } \t\r\n", jsonObject{}},
		{`{"a":1}`, jsonObject{{"a", "1"}}},
		{`{ "a" : "x" , "b":[1, 2] ,"c":{"d":null}}`, jsonObject{{"a", `"x"`}, {"b", "[1, 2]"}, {"c", `{"d":null}`}}},
		{`{"a":true,"a":false}`, jsonObject{{"a", "true"}, {"a", "false"}}},
		{`{"":""}`, jsonObject{{"", `""`}}},
		{`{"\u0069ss":"i","k\"\\\/\b\f\n\r\t":0}`, jsonObject{{"iss", `"i"`}, {"k\"\\/\b\f\n\r\t", "0"}}},
		{`{"\ud83d\ude00":-0.5e+3}`, jsonObject{{"\U0001F600", "-0.5e+3"}}},
		{`{"n":[-0,0.0,1E5,1e-5,123456789012345678901234567890]}`, jsonObject{{"n", "[-0,0.0,1E5,1e-5,123456789012345678901234567890]"}}},
		{"{\"\x7f\xc3\xa9\":\"\u2028\"}", jsonObject{{"\x7f\xc3\xa9", "\"\u2028\""}}},
		{`{"a":[[[[]]]],"b":{"c":{"d":{}}}}`, jsonObject{{"a", "[[[[]]]]"}, {"b", `{"c":{"d":{}}}`}}},
	} {
		got, err := parseJSONObject(tc.in, nil)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseJSONObjectRejects(t *testing.T) {
	for _, in := range []string{
		``, ` `, `null`, `[]`, `"x"`, `1`, `true`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{a:1}`,
		`{'a':1}`, `{"a":1,}`, `{,"a":1}`, `{"a":1 "b":2}`, `{"a":1}x`, `{"a":1}{}`, `{"a":1},`,
		`{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`, `{"a":[}`, `{"a":{]}`, `{"a":{"b"}}`,
		`{"a":01}`, `{"a":-}`, `{"a":+1}`, `{"a":.5}`, `{"a":5.}`, `{"a":1e}`, `{"a":1e+}`, `{"a":0x10}`,
		`{"a":1_000}`, `{"a":NaN}`, `{"a":Infinity}`, `{"a":-Infinity}`, `{"a":tru}`, `{"a":True}`,
		`{"a":nul}`, `{"a":nulll}`, `{"a":undefined}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":"\'"}`, `{"a":"\U0041"}`, `{"a":"x`, `{"a":"x\`,
		"{\"a\":\"\x00\"}", "{\"a\":\"\x1f\"}", "{\"a\":\"\n\"}", "{\"a\x01\":1}",
		"\xef\xbb\xbf{}", // a byte order mark is not whitespace
		"{\"a\":1}\x00", "{\v}", "{\f}", "{\u00a0}",
		`{"a":1}/**/`, `{/**/}`,
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
	} {
		if got, err := parseJSONObject(in, nil); err == nil {
			t.Errorf("%q: accepted as %q", in, got)
		}
	}
}

// TestParseJSONObjectDepth checks the nesting bound: up to it the scanner
// follows json.Valid; past it, it refuses at once, however deep the text.
func TestParseJSONObjectDepth(t *testing.T) {
	// nested returns an object of nesting depth d (the object itself
	// counting as 1) built with open and close.
	nested := func(d int, open, close string) string {
		return `{"a":` + strings.Repeat(open, d-1) + "0" + strings.Repeat(close, d-1) + "}"
	}
	for _, oc := range [][2]string{{"[", "]"}, {`{"x":`, "}"}} {
		for _, d := range []int{1, 2, jsonMaxDepth - 1, jsonMaxDepth} {
			in := nested(d, oc[0], oc[1])
			if !json.Valid([]byte(in)) || jsonDepth([]byte(in)) != d {
				t.Fatalf("depth %d: bad test input %s", d, in)
			}
			if _, err := parseJSONObject(in, nil); err != nil {
				t.Errorf("depth %d (%s): %v", d, oc[0], err)
			}
		}
		for _, d := range []int{jsonMaxDepth + 1, 5000, 200000} {
			if _, err := parseJSONObject(nested(d, oc[0], oc[1]), nil); err != errJSONDepth {
				t.Errorf("depth %d (%s): got %v, want %v", d, oc[0], err, errJSONDepth)
			}
		}
	}
}

func TestJSONValueHelpers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{`""`, "", true},
		{`"abc"`, "abc", true},
		{`"a\"b\\c\/d\be\ff\ng\rh\ti"`, "a\"b\\c/d\be\ff\ng\rh\ti", true},
		{`"\u00e9\u00E9"`, "éé", true},
		{`"\ud83d\ude00x"`, "\U0001F600x", true},
		{`"\ud83dx"`, "\uFFFDx", true},            // lone high surrogate
		{`"\ude00\ud83d"`, "\uFFFD\uFFFD", true},  // reversed pair
		{`"\ud83d\ud83d\ude00"`, "\uFFFD😀", true}, // high, then a pair
		{`"\ud83d\n"`, "\uFFFD\n", true},
		{`"\u0000"`, "\x00", true},
		{`null`, "", false},
		{`1`, "", false},
		{`["a"]`, "", false},
	} {
		got, ok := jsonString(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("jsonString(%s) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if tc.ok {
			var want string
			if err := json.Unmarshal([]byte(tc.in), &want); err != nil || want != got {
				t.Errorf("jsonString(%s) = %q; encoding/json says %q (%v)", tc.in, got, want, err)
			}
		}
	}
	// A string without escapes is a substring, not a copy.
	v := `"https://issuer.example"`
	if s, _ := jsonString(v); unsafe.StringData(s) != unsafe.StringData(v[1:]) {
		t.Errorf("jsonString(%s) = %q is a copy", v, s)
	}
	if n := testing.AllocsPerRun(100, func() { jsonString(v) }); n != 0 {
		t.Errorf("jsonString without escapes: %v allocations", n)
	}

	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{`0`, 0, true}, {`-0`, math.Copysign(0, -1), true}, {`1700000000`, 1.7e9, true},
		{`1.5`, 1.5, true}, {`-1.5e3`, -1500, true}, {`1E-400`, 0, true}, {`1e308`, 1e308, true},
		{`1e309`, 0, false}, {`-1e400`, 0, false},
		{`"1"`, 0, false}, {`null`, 0, false}, {`true`, 0, false}, {`[1]`, 0, false}, {`{}`, 0, false},
	} {
		got, ok := jsonNumber(tc.in)
		if ok != tc.ok || (ok && (got != tc.want || math.Signbit(got) != math.Signbit(tc.want))) {
			t.Errorf("jsonNumber(%s) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		var f float64 // encoding/json leaves it alone for null
		if err := json.Unmarshal([]byte(tc.in), &f); (err == nil && tc.in != "null") != tc.ok || (tc.ok && f != got) {
			t.Errorf("jsonNumber(%s) = %v, %v; encoding/json says %v, %v", tc.in, got, ok, f, err)
		}
	}

	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`[]`, nil, true},
		{`[ ]`, nil, true},
		{`["a"]`, []string{"a"}, true},
		{`[ "a" , "b\u0063" ]`, []string{"a", "bc"}, true},
		{`["a",null]`, []string{"a"}, false},
		{`[null]`, nil, false},
		{`[1]`, nil, false},
		{`[["a"]]`, nil, false},
		{`"a"`, nil, false},
		{`null`, nil, false},
	} {
		var got []string
		ok := jsonEachString(tc.in, func(s string) { got = append(got, s) })
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("jsonEachString(%s) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestEachFieldSplitsOnSpaceOnly: a scope list is delimited by U+0020
// alone (RFC 6749 §3.3); every other white space character, ASCII or not,
// stays inside its scope-token.
func TestEachFieldSplitsOnSpaceOnly(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil}, {" ", nil}, {"a", []string{"a"}}, {" a ", []string{"a"}}, {"a b", []string{"a", "b"}},
		{"a   b", []string{"a", "b"}}, {"é à", []string{"é", "à"}},
		{"openid profile email offline_access orders:read", []string{"openid", "profile", "email", "offline_access", "orders:read"}},
	} {
		var got []string
		eachField(tc.in, func(f string) { got = append(got, f) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("eachField(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, sp := range []string{"\t", "\n", "\r", "\v", "\f", "\u00a0", "\u0085", "\u2028", "\u3000", "\u2003", "\u200b"} {
		in := "reports:tenant-7" + sp + "admin"
		var got []string
		eachField(in, func(f string) { got = append(got, f) })
		if !slices.Equal(got, []string{in}) {
			t.Errorf("eachField(%q) = %q, want the one scope-token", in, got)
		}
	}
}

// jsonDepth returns the nesting depth of valid JSON text b (0 for a scalar).
func jsonDepth(b []byte) int {
	depth, maxDepth, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return maxDepth
}

// FuzzJSONScan is a differential test of the scanner against encoding/json:
//   - it accepts a text iff json.Valid does and the text is an object,
//     except that it refuses nesting deeper than jsonMaxDepth;
//   - for accepted UTF-8 text (encoding/json replaces invalid UTF-8, the
//     verifier rejects it before scanning), the members are those of
//     json.Unmarshal into map[string]json.RawMessage, the last of duplicate
//     names winning, and the value helpers read what json.Unmarshal reads.
func FuzzJSONScan(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"iss":"https://issuer.example","exp":1900000000,"aud":["a","b"],"scope":"a b"}`,
		`{"a":1,"a":"2"}`, `{"\u0069ss":"\ud83d\ude00\ud83d"}`, `{"a":[1,{"b":[null,true,false]}],"c":-1.5e-7}`,
		`{"a":"\u00e9\t\"\\\/"}`, ` {"a" : [ ] , "b" : { } } `, `{"a":1e400}`, `{"a":01}`, `[]`, `null`,
		`{"a":"x"}x`, "{\"a\":\"\xff\"}", `{"a":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`,
		`{"exp":-0,"nbf":1E2,"iat":0.5}`, `{"a":"\u0000"}`, `{"aud":["a",null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			return
		}
		got, err := parseJSONObject(string(in), nil)
		valid := json.Valid(in)
		isObject := valid && bytes.TrimLeft(in, " \t\r\n")[0] == '{'
		depth := 0
		if valid {
			depth = jsonDepth(in)
		}
		switch {
		case isObject && depth > jsonMaxDepth:
			if err != errJSONDepth {
				t.Fatalf("depth %d: got %v, want %v", depth, err, errJSONDepth)
			}
			return
		case isObject && err != nil:
			t.Fatalf("valid object %q rejected: %v", in, err)
		case !isObject && err == nil:
			t.Fatalf("%q (json.Valid %v) accepted as %q", in, valid, got)
		case err != nil:
			return
		}
		if !utf8.Valid(in) {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("json.Unmarshal: %v", err)
		}
		last := map[string]string{} // the last value of each name
		for _, m := range got {
			last[m.name] = m.value
		}
		if len(last) != len(want) {
			t.Fatalf("%d distinct names, encoding/json has %d", len(last), len(want))
		}
		for name, raw := range want {
			v, ok := got.get(name)
			if !ok || v != last[name] {
				t.Fatalf("member %q: get gives %q, %v; the last value is %q", name, v, ok, last[name])
			}
			if v != string(raw) {
				t.Fatalf("member %q: scanner %q, encoding/json %q", name, v, raw)
			}
			checkJSONValue(t, v)
		}
	})
}

// checkJSONValue holds the value helpers to encoding/json on v.
func checkJSONValue(t *testing.T, v string) {
	t.Helper()
	var s string
	sErr := json.Unmarshal([]byte(v), &s)
	if got, ok := jsonString(v); ok != (sErr == nil && v[0] == '"') || (ok && got != s) {
		t.Fatalf("jsonString(%s) = %q, %v; encoding/json %q, %v", v, got, ok, s, sErr)
	}
	var f float64
	fErr := json.Unmarshal([]byte(v), &f)
	if got, ok := jsonNumber(v); ok != (fErr == nil && v != "null") || (ok && got != f) {
		t.Fatalf("jsonNumber(%s) = %v, %v; encoding/json %v, %v", v, got, ok, f, fErr)
	}
	// An array of strings: decoded member by member, since into a []string
	// encoding/json turns a null member into "".
	var items []json.RawMessage
	wantOK := json.Unmarshal([]byte(v), &items) == nil && v[0] == '['
	var want []string
	for _, item := range items {
		var s string
		if item[0] != '"' || json.Unmarshal(item, &s) != nil {
			wantOK = false
			break
		}
		want = append(want, s)
	}
	var got []string
	if ok := jsonEachString(v, func(s string) { got = append(got, s) }); ok != wantOK || (ok && !slices.Equal(got, want)) {
		t.Fatalf("jsonEachString(%s) = %q, %v; encoding/json %q, %v", v, got, ok, want, wantOK)
	}
}

// TestParseHeaderOnScanner checks parseHeader's reading of the header
// members through the scanner.
func TestParseHeaderOnScanner(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want jwsHeader
	}{
		{`{"alg":"ES256"}`, jwsHeader{alg: "ES256"}},
		{`{"alg":"RS256","kid":"k1","typ":"at+jwt","cty":"x","crit":["exp"]}`, jwsHeader{alg: "RS256", kid: "k1", typ: "at+jwt", cty: "x", crit: true}},
		{`{"\u0061lg":"ES\u0032\u00356","kid":"a\/b"}`, jwsHeader{alg: "ES256", kid: "a/b"}},
		{`{"alg":"EdDSA","ALG":"none","Kid":"x","jwk":{"kty":"EC"},"x5c":["x"],"jku":"https://x","nonce":1}`, jwsHeader{alg: "EdDSA"}},
		{` {"alg" : "" } `, jwsHeader{}},
	} {
		got, err := parseHeader([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("parseHeader(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		`{"kid":"k"}`, `{"alg":null}`, `{"alg":1}`, `{"alg":["ES256"]}`, `{"alg":"ES256","kid":1}`,
		`{"alg":"ES256","typ":true}`, `{"alg":"ES256","cty":{}}`,
		`{"alg":"ES256","enc":"A128GCM"}`, `{"alg":"ES256","b64":true}`,
		// A repeated name, whatever its values.
		`{"alg":"ES256","alg":"ES256"}`, `{"alg":"none","alg":"ES256"}`, `{"alg":"ES256","kid":"a","kid":"b"}`,
		`{"alg":"ES256","x":1,"x":1}`, `{"alg":"ES256","\u0061lg":"none"}`,
		`{"alg":"ES256"` + strings.Repeat(`,"x":1`, 40) + `}`,
		"{\"alg\":\"ES256\",\"kid\":\"\xff\"}", `{"alg":"ES256"}x`, `["alg"]`, `null`, ``,
	} {
		if got, err := parseHeader([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseHeader(%s) = %+v, %v; want ErrMalformed", in, got, err)
		}
	}
	// Many distinct members are fine (and checked for repeats in linear time).
	var b strings.Builder
	b.WriteString(`{"alg":"ES256"`)
	for i := range 10000 {
		fmt.Fprintf(&b, `,"h%d":%d`, i, i)
	}
	b.WriteString("}")
	if h, err := parseHeader([]byte(b.String())); err != nil || h.alg != "ES256" {
		t.Errorf("header of 10,000 members: %+v, %v", h, err)
	}
	if _, err := parseHeader([]byte(b.String()[:b.Len()-1] + `,"h9999":0}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("header of 10,000 members, one repeated: %v", err)
	}
}

// TestFoldRuneIsTheOrbitsSmallest: foldRune, with its ASCII shortcut, maps
// every rune to the smallest rune of its simple folding orbit, so runes
// that fold to each other meet (the basis of foldKey and foldHash).
func TestFoldRuneIsTheOrbitsSmallest(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		if got := foldRune(r); got != least {
			t.Fatalf("foldRune(%U) = %U, want %U", r, got, least)
		}
	}
}

// TestAmbiguousNamesAgreesWithEqualFold: for objects of every size the
// check takes a different way for (pairs, hashes, a map), ambiguousNames
// finds two names exactly when strings.EqualFold, which is encoding/json's
// matching, finds two, and returns such a pair.
func TestAmbiguousNamesAgreesWithEqualFold(t *testing.T) {
	// Letters with non-ASCII members in their orbit (ſ, the Kelvin sign),
	// so that names collide often and across the ASCII boundary.
	alphabet := []rune{'s', 'S', 'ſ', 'k', 'K', '\u212a', 'a', 'B', 'é', 'É', '_'}
	rng := rand.New(rand.NewPCG(1, 2))
	name := func() string {
		r := make([]rune, 1+rng.IntN(4))
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(r)
	}
	for _, n := range []int{0, 1, 2, 8, 9, 17, 40, 64, 65, 100} {
		for range 200 {
			o := make(jsonObject, 0, n)
			seen := map[string]bool{}
			// Mostly distinct names (a name that folds to none before it),
			// then perhaps one that may fold to an earlier one.
			for len(o) < n {
				s := name()
				if len(o) == n-1 && rng.IntN(2) == 0 {
					o = append(o, jsonMember{name: s})
					break
				}
				if !seen[foldKey(s)] {
					seen[foldKey(s)] = true
					o = append(o, jsonMember{name: s})
				}
			}
			want := false
			for i := range o {
				for j := i + 1; j < len(o); j++ {
					want = want || strings.EqualFold(o[i].name, o[j].name)
				}
			}
			a, b, got := o.ambiguousNames()
			if got != want {
				t.Fatalf("%d names %q: ambiguousNames says %v, EqualFold %v", n, o, got, want)
			}
			if got && !strings.EqualFold(a, b) {
				t.Fatalf("%d names: ambiguousNames returned %q and %q, which do not fold to each other", n, a, b)
			}
		}
	}
}
