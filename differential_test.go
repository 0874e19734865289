package grpcjwt

// A differential test of grpcjwt's signature acceptance against go-jose's
// (issue 6): for every token of the project's tables (the verifier table of
// verifier_test.go, the Wycheproof JWS and JWK vectors, the RFC 7515 and
// RFC 7520 examples, and a few more below), and for tokens the fuzzer
// derives from real ones, grpcjwt must never accept a signature that go-jose
// rejects; where go-jose accepts one that grpcjwt rejects, the reason must
// be one of the classes of diffStricter, in which grpcjwt is stricter by
// design, and grpcjwt's error must say so. The one token grpcjwt may accept
// and go-jose not is one whose signature go-jose never judged: it refuses
// to parse a header parameter that grpcjwt never reads
// (diffIgnoredHeaderParams).
//
// grpcjwt's acceptance is that of Verifier.verifyJWS, the production steps
// of Verifier.verify up to the claims, run by verifyCompact (vectors_test.go)
// with the default options and a static keyset. go-jose
// parses the token with jose.ParseSignedCompact, allowing every algorithm
// grpcjwt supports plus HS256/384/512 (so that the HMAC difference shows),
// and verifies it with each key of the key document in turn: a token counts
// as accepted by go-jose if some key verifies it, whatever its "kid" says.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/grpcjwt/grpcjwt/internal/testkit"
)

// diffJOSEAlgs is the allow-list given to go-jose.
var diffJOSEAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512,
}

// diffClass is one way in which grpcjwt is stricter than go-jose by design:
// why, when it applies to a token that go-jose verifies with a key, and
// the sentinels grpcjwt's rejection may wrap (with a fragment of its text,
// if any), so that a class cannot hide a rejection for another reason.
type diffClass struct {
	why     string
	applies func(d *diffToken, k *diffKey) bool
	errs    []error
	text    string
}

// diffStricter lists the classes; TestDifferentialJOSE checks that each one
// occurs among the tables' tokens.
var diffStricter = map[string]diffClass{
	"crlf": {
		why: "a CR or LF in the token: encoding/base64, and so go-jose, skips line breaks even in strict mode " +
			"(and go-jose verifies over the re-encoded segments); grpcjwt refuses them, so that each token has " +
			"one spelling",
		applies: func(d *diffToken, _ *diffKey) bool { return strings.ContainsAny(d.raw, "\r\n") },
		errs:    []error{ErrMalformed}, text: "not unpadded base64url",
	},
	"base64-trailing-bits": {
		why: "a segment whose last character has non-zero unused bits: go-jose decodes base64url leniently " +
			"(and verifies over the re-encoded segments); grpcjwt decodes strictly, so that each token has one spelling",
		applies: func(d *diffToken, _ *diffKey) bool { return d.lenientB64 },
		errs:    []error{ErrMalformed}, text: "not unpadded base64url",
	},
	"hmac": {
		why: "HS256/384/512: a grpcjwt keyset holds public keys only (a symmetric JWK is refused and HMAC " +
			"is never on the allow-list), which rules out key confusion; go-jose verifies HMAC with a symmetric key",
		applies: func(d *diffToken, _ *diffKey) bool { return strings.HasPrefix(d.alg, "HS") },
		errs:    []error{ErrAlgorithm},
	},
	"crit": {
		why: "a crit header (or b64): grpcjwt understands no JWS extension and refuses any crit list " +
			"(RFC 7515 §4.1.11); go-jose processes b64 (RFC 7797)",
		applies: func(d *diffToken, _ *diffKey) bool { return d.hdrHas("crit") || d.hdrHas("b64") },
		errs:    []error{ErrMalformed},
	},
	"jwe-header": {
		why:     "an enc header: grpcjwt refuses whatever looks like a JWE; go-jose's JWS parser ignores enc",
		applies: func(d *diffToken, _ *diffKey) bool { return d.hdrHas("enc") },
		errs:    []error{ErrMalformed}, text: "JWE is not accepted",
	},
	"cty-nested": {
		why: "cty JWT: grpcjwt refuses nested JWTs (RFC 7519 §5.2); go-jose does not look at cty",
		applies: func(d *diffToken, _ *diffKey) bool {
			return strings.HasSuffix(strings.ToLower(d.hdrString("cty")), "jwt")
		},
		errs: []error{ErrMalformed}, text: "nested JWT",
	},
	"header-param-types": {
		why: "alg, kid, typ or cty is not a JSON string (RFC 7515 §4.1): grpcjwt checks the type of each; " +
			"go-jose reads alg and kid only",
		applies: func(d *diffToken, _ *diffKey) bool {
			for _, name := range []string{"alg", "kid", "typ", "cty"} {
				if v, ok := d.hdr[name]; ok && (len(v) == 0 || v[0] != '"') {
					return true
				}
			}
			return false
		},
		errs: []error{ErrMalformed}, text: "is not a string",
	},
	"header-utf8": {
		why: "a header that is not valid UTF-8 (RFC 8259 §8.1): grpcjwt refuses it; go-jose's JSON decoder " +
			"replaces the invalid bytes",
		applies: func(d *diffToken, _ *diffKey) bool { return !utf8.Valid(d.hdrJSON) },
		errs:    []error{ErrMalformed}, text: "not valid UTF-8",
	},
	"json-depth": {
		why: fmt.Sprintf("a header nested deeper than %d arrays and objects: grpcjwt's scanner stops there, "+
			"so that no token can make it recurse further; go-jose's JSON decoder allows 10,000", jsonMaxDepth),
		applies: func(d *diffToken, _ *diffKey) bool {
			return json.Valid(d.hdrJSON) && jsonDepth(d.hdrJSON) > jsonMaxDepth
		},
		errs: []error{ErrMalformed}, text: "header is not a JSON object",
	},
	"typ": {
		why: "a typ header that is not an access token type (RFC 8725 §3.11, RFC 9068): go-jose does not look at typ",
		applies: func(d *diffToken, _ *diffKey) bool {
			return !(&Verifier{o: defaultVerifierOptions()}).typeAccepted(d.hdrString("typ"))
		},
		errs: []error{ErrTokenType},
	},
	"pss-salt": {
		why: "PS256/384/512 with a salt length other than the hash length, which RFC 7518 §3.5 prescribes: " +
			"go-jose accepts any salt length",
		applies: func(d *diffToken, k *diffKey) bool {
			pub, ok := k.jose.(*rsa.PublicKey)
			a := parseAlg(d.alg)
			if !ok || (a != algPS256 && a != algPS384 && a != algPS512) {
				return false
			}
			var buf [64]byte
			digest := a.digest(&buf, []byte(d.signingInput))
			return rsa.VerifyPSS(pub, a.hash(), digest, d.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) != nil &&
				rsa.VerifyPSS(pub, a.hash(), digest, d.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
		},
		errs: []error{ErrSignature},
	},
	"declared-alg": {
		why: "the key's JWK declares another alg: grpcjwt binds a key to its declared alg (RFC 7517 §4.4, " +
			"RFC 8725 §3.1); go-jose ignores a JWK's alg",
		applies: func(d *diffToken, k *diffKey) bool {
			a := parseAlg(d.alg)
			return k.vk != nil && !k.vk.algs.has(a) && keyTypeAllows(k.jose, a)
		},
		errs: []error{ErrAlgorithm, ErrUnknownKey, ErrSignature},
	},
	"kid-binding": {
		why: "the token's kid names another key of the set, or no key: grpcjwt verifies with the key its kid " +
			"names (or, without kid, the first few keys of the alg), while this test hands go-jose every key",
		applies: func(d *diffToken, k *diffKey) bool {
			if k.vk == nil || !k.vk.algs.has(parseAlg(d.alg)) {
				return false
			}
			cands, _ := d.snap.find(d.hdrString("kid"), parseAlg(d.alg), defaultVerifierOptions().maxKeyAttempts)
			return !slices.ContainsFunc(cands, k.vk.sameKey)
		},
		errs: []error{ErrUnknownKey, ErrAlgorithm, ErrSignature},
	},
	"key-use": {
		why: "the key's JWK says it is not for verifying signatures (\"use\" other than \"sig\", or \"key_ops\" " +
			"without \"verify\", RFC 7517 §4.2, §4.3): grpcjwt refuses the key; go-jose ignores use and key_ops",
		applies: func(_ *diffToken, k *diffKey) bool {
			return k.refused("is not sig") || k.refused("key_ops does not allow verify")
		},
		errs: []error{ErrUnknownKey, ErrAlgorithm, ErrSignature},
	},
	"roca": {
		why:     "an RSA modulus with the ROCA fingerprint (CVE-2017-15361): grpcjwt refuses the key",
		applies: func(_ *diffToken, k *diffKey) bool { return k.refused("ROCA") },
		errs:    []error{ErrUnknownKey, ErrAlgorithm, ErrSignature},
	},
	"rsa-key-size": {
		why:     "an RSA key under 2048 bits (RFC 7518 §3.3): grpcjwt refuses the key",
		applies: func(_ *diffToken, k *diffKey) bool { return k.refused("bits, fewer than") },
		errs:    []error{ErrUnknownKey, ErrAlgorithm, ErrSignature},
	},
	"jwk-unknown-alg": {
		why: "the key's JWK declares an alg that is no supported JWA signature algorithm (Wycheproof's \"ES521\"): " +
			"grpcjwt refuses a key it cannot bind to an algorithm",
		applies: func(_ *diffToken, k *diffKey) bool { return k.refused("is not a supported signature algorithm") },
		errs:    []error{ErrUnknownKey, ErrAlgorithm, ErrSignature},
	},
}

// diffIgnoredHeaderParams are the header parameters that go-jose parses
// (and refuses a token over, before it looks at the signature) while
// grpcjwt never reads them, with the start of go-jose's error for each.
// grpcjwt takes its keys from the keyset only (RFC 8725 §3.10): it ignores
// "jwk" and "x5c" (and "jku", "x5u") rather than validate them, the latter
// an X.509 parse of attacker-chosen bytes on every token; and "nonce" is
// ACME's (RFC 8555 §6.5.2). A token go-jose refuses for one of these is the
// one case where grpcjwt accepts a token go-jose does not: go-jose never
// judged its signature.
var diffIgnoredHeaderParams = map[string]string{
	"jwk":   "failed to unmarshal JWK",
	"x5c":   "failed to unmarshal x5c header",
	"nonce": "failed to unmarshal nonce",
}

// keyTypeAllows reports whether the key type alone (not a JWK's alg)
// would let grpcjwt verify a with pub.
func keyTypeAllows(pub any, a alg) bool {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return setOf(algRS256, algRS384, algRS512, algPS256, algPS384, algPS512).has(a)
	case *ecdsa.PublicKey:
		return map[elliptic.Curve]alg{elliptic.P256(): algES256, elliptic.P384(): algES384, elliptic.P521(): algES512}[pub.Curve] == a
	case ed25519.PublicKey:
		return a == algEdDSA
	}
	return false
}

// diffKey is one key of a key document as each library sees it.
type diffKey struct {
	name   string
	jose   any        // go-jose's verification key; nil if go-jose refuses the JWK
	vk     *verifyKey // grpcjwt's, or nil with vkErr
	vkErr  error
	joseOK bool // for the token at hand: go-jose verifies it with this key
}

func (k *diffKey) refused(cause string) bool {
	return k.vk == nil && k.vkErr != nil && strings.Contains(k.vkErr.Error(), cause)
}

// diffKeysFromDoc parses every JWK of a key document (a JWK or a JWK Set)
// with both libraries.
func diffKeysFromDoc(t testing.TB, doc []byte) []*diffKey {
	t.Helper()
	var members []json.RawMessage
	if isJWKSet(doc) {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(doc, &set); err != nil {
			t.Fatalf("JWK Set: %v", err)
		}
		members = set.Keys
	} else {
		members = []json.RawMessage{doc}
	}
	var keys []*diffKey
	for i, m := range members {
		k := &diffKey{name: fmt.Sprintf("key %d", i)}
		k.vk, k.vkErr = parseJWK(m)
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(m); err == nil {
			switch {
			case jwk.IsPublic():
				k.jose = jwk.Key
			case jwk.Public().Key != nil:
				k.jose = jwk.Public().Key
			default:
				k.jose = jwk.Key // a symmetric key: verifying is the secret's business
			}
		}
		keys = append(keys, k)
	}
	return keys
}

// diffKeysFromSnapshot takes the keys of a keyset that grpcjwt loaded (the
// verifier table's keysets hold usable keys only).
func diffKeysFromSnapshot(snap *keySnapshot) []*diffKey {
	var keys []*diffKey
	for _, vk := range snap.all {
		keys = append(keys, &diffKey{name: "kid " + vk.kid, jose: vk.pub, vk: vk})
	}
	return keys
}

// diffToken is a token with what the classes look at, read leniently.
type diffToken struct {
	raw          string
	snap         *keySnapshot
	hdrJSON      []byte
	hdr          map[string]json.RawMessage // nil when the header is not a JSON object
	alg          string
	signingInput string
	sig          []byte
	lenientB64   bool // a segment decodes leniently but not strictly
}

func newDiffToken(raw string, snap *keySnapshot) *diffToken {
	d := &diffToken{raw: raw, snap: snap}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return d
	}
	d.signingInput = parts[0] + "." + parts[1]
	lenient := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil
		}
		if _, err := base64.RawURLEncoding.Strict().DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(s)); err != nil {
			d.lenientB64 = true
		}
		return b
	}
	d.hdrJSON = lenient(parts[0])
	lenient(parts[1])
	d.sig = lenient(parts[2])
	if json.Unmarshal(d.hdrJSON, &d.hdr) == nil {
		d.alg = d.hdrString("alg")
	}
	return d
}

func (d *diffToken) hdrHas(name string) bool {
	_, ok := d.hdr[name]
	return ok
}

func (d *diffToken) hdrString(name string) string {
	var s string
	json.Unmarshal(d.hdr[name], &s)
	return s
}

// joseVerifies reports whether go-jose accepts raw's signature with key.
func joseVerifies(raw string, key any) bool {
	if key == nil {
		return false
	}
	if asEdDSA, sigInput, sig, ok := diffEd25519(raw); ok {
		// go-jose v4.1 predates RFC 9864 and refuses the fully-specified
		// name "Ed25519", which is EdDSA with an Ed25519 key by
		// definition. The oracle: go-jose accepts the token's structure
		// with "alg" spelled "EdDSA", and the key go-jose parsed is an
		// Ed25519 key under which the standard library verifies the
		// signature over the token's own signing input.
		pub, isEd := key.(ed25519.PublicKey)
		if _, err := jose.ParseSignedCompact(asEdDSA, diffJOSEAlgs); err != nil || !isEd {
			return false
		}
		return ed25519.Verify(pub, sigInput, sig)
	}
	jws, err := jose.ParseSignedCompact(raw, diffJOSEAlgs)
	if err != nil {
		return false
	}
	_, err = jws.Verify(key)
	return err == nil
}

// diffEd25519 reports whether raw is a compact JWS whose header's "alg" is
// "Ed25519", and returns it with that alg spelled "EdDSA", its signing
// input and its signature.
func diffEd25519(raw string) (asEdDSA string, sigInput, sig []byte, ok bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", nil, nil, false
	}
	hdr, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return "", nil, nil, false
	}
	var h map[string]any
	if json.Unmarshal(hdr, &h) != nil || h["alg"] != "Ed25519" {
		return "", nil, nil, false
	}
	sig, err = base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return "", nil, nil, false
	}
	edHdr := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(hdr), `"Ed25519"`, `"EdDSA"`, 1)))
	return edHdr + "." + parts[1] + "." + parts[2], []byte(parts[0] + "." + parts[1]), sig, true
}

// diffVerdict compares the two libraries on raw and returns the outcome:
// "agree/accept", "agree/reject", "stricter/<class>" (several classes,
// joined by "+", when go-jose accepts with several keys), or
// "go-jose-parse/..." for a token grpcjwt accepts and go-jose refuses to
// parse over a header parameter grpcjwt never reads. It returns an error
// for a disagreement nothing listed explains, in particular for a signature
// grpcjwt accepts and go-jose rejects.
func diffVerdict(raw string, snap *keySnapshot, keys []*diffKey) (string, error) {
	vk, gerr := verifyCompact(snap, raw)
	anyJOSE := false
	for _, k := range keys {
		k.joseOK = joseVerifies(raw, k.jose)
		anyJOSE = anyJOSE || k.joseOK
	}
	if gerr == nil {
		for _, k := range keys {
			if k.vk != nil && k.vk.sameKey(vk) && k.joseOK {
				return "agree/accept", nil
			}
		}
		if _, perr := jose.ParseSignedCompact(raw, diffJOSEAlgs); perr != nil {
			d := newDiffToken(raw, snap)
			for name, msg := range diffIgnoredHeaderParams {
				if d.hdrHas(name) && strings.HasPrefix(perr.Error(), msg) {
					return "go-jose-parse/ignored header parameter " + name, nil
				}
			}
			return "", fmt.Errorf("SECURITY: grpcjwt accepts (key %q) a token go-jose refuses to parse: %v", vk.kid, perr)
		}
		return "", fmt.Errorf("SECURITY: grpcjwt accepts a signature (key %q) that go-jose rejects with that key", vk.kid)
	}
	if !anyJOSE {
		return "agree/reject", nil
	}
	// go-jose accepts with at least one key: each such key needs a class
	// that applies and fits grpcjwt's error.
	d := newDiffToken(raw, snap)
	var found []string
	for _, k := range keys {
		if !k.joseOK {
			continue
		}
		var classes []string
		for _, name := range slices.Sorted(maps.Keys(diffStricter)) {
			c := diffStricter[name]
			if c.applies(d, k) && slices.ContainsFunc(c.errs, func(e error) bool { return errors.Is(gerr, e) }) &&
				strings.Contains(gerr.Error(), c.text) {
				classes = append(classes, name)
			}
		}
		if len(classes) == 0 {
			return "", fmt.Errorf("go-jose verifies with %s, grpcjwt rejects with %v, and no stricter-by-design class explains it", k.name, gerr)
		}
		found = append(found, classes[0])
	}
	slices.Sort(found)
	return "stricter/" + strings.Join(slices.Compact(found), "+"), nil
}

// diffCase is one token of the tables with its keys.
type diffCase struct {
	name string
	raw  string
	snap *keySnapshot
	keys []*diffKey
}

// diffDocCase builds a case from a key document, loaded the way a keyset
// loads it (a document grpcjwt cannot load leaves it without keys).
func diffDocCase(t testing.TB, name string, doc []byte, raw string) diffCase {
	snap, _, _ := loadKeys(doc)
	return diffCase{name: name, raw: raw, snap: snap, keys: diffKeysFromDoc(t, doc)}
}

// diffExtraCases are tokens the other tables lack: each stricter-by-design
// class, and header quirks, on keys whose signatures both libraries check.
func diffExtraCases(t *testing.T) []diffCase {
	var cs []diffCase
	rsaKey := testkit.NewKey("PS256")
	noAlg := jose.JSONWebKey{Key: rsaKey.Signer.Public(), KeyID: rsaKey.ID, Use: "sig"} // no alg: PS* allowed
	rsaDoc := vtJSON(map[string]any{"keys": []any{noAlg}})
	claims := vtJSON(map[string]any{"iss": "https://issuer.example", "exp": 1900000000})
	pss := func(salt int) string {
		input := vtB64(vtJSON(map[string]any{"alg": "PS256", "kid": rsaKey.ID})) + "." + vtB64(claims)
		h := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPSS(rand.Reader, rsaKey.Signer.(*rsa.PrivateKey), crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		return input + "." + vtB64(sig)
	}
	cs = append(cs,
		diffDocCase(t, "extra/PS256 salt = hash length", rsaDoc, pss(rsa.PSSSaltLengthEqualsHash)),
		diffDocCase(t, "extra/PS256 salt 0", rsaDoc, pss(0)),
		diffDocCase(t, "extra/PS256 maximal salt", rsaDoc, pss(rsa.PSSSaltLengthAuto)),
		diffDocCase(t, "extra/PS256 salt 20", rsaDoc, pss(20)),
	)

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallKey := &testkit.Key{ID: "small", Algorithm: "RS256", Signer: small}
	cs = append(cs, diffDocCase(t, "extra/RS256 1024-bit key", vtJSON(map[string]any{"keys": []any{smallKey.Public()}}),
		testkit.Sign(smallKey, nil, map[string]any{"exp": 1900000000})))

	ec := testkit.NewKey("ES256")
	ecDoc := vtJSON(map[string]any{"keys": []any{ec.Public()}})
	sign := func(hdr string) string {
		input := vtB64([]byte(hdr)) + "." + vtB64(claims)
		return input + "." + vtB64(testkit.SignBytes(ec, []byte(input)))
	}
	good := testkit.Sign(ec, nil, map[string]any{"exp": 1900000000})
	h, p, s := vtSplit(good)
	for _, c := range []struct{ name, raw string }{
		{"good", good},
		{"LF in the header", h[:4] + "\n" + h[4:] + "." + p + "." + s},
		{"CRLF in the payload", h + "." + p[:4] + "\r\n" + p[4:] + "." + s},
		{"CR at the end", good + "\r"},
		{"trailing bits of the signature", h + "." + p + "." + s[:len(s)-1] + string(vtFlipTrailing(s[len(s)-1]))},
		{"crit b64 true", sign(`{"alg":"ES256","kid":"` + ec.ID + `","b64":true,"crit":["b64"]}`)},
		{"b64 true without crit", sign(`{"alg":"ES256","kid":"` + ec.ID + `","b64":true}`)},
		{"crit exp", sign(`{"alg":"ES256","kid":"` + ec.ID + `","crit":["exp"],"exp":1}`)},
		{"enc", sign(`{"alg":"ES256","kid":"` + ec.ID + `","enc":"A128GCM"}`)},
		{"duplicate typ", sign(`{"alg":"ES256","kid":"` + ec.ID + `","typ":"id+jwt","typ":"at+jwt"}`)},
		{"duplicate alg", sign(`{"alg":"none","kid":"` + ec.ID + `","alg":"ES256"}`)},
		{"escaped names", sign(`{"\u0061lg":"ES256","\u006bid":"` + ec.ID + `"}`)},
		{"upper-case ALG beside alg", sign(`{"alg":"ES256","ALG":"none","kid":"` + ec.ID + `"}`)},
		{"unknown members of every type", sign(`{"alg":"ES256","kid":"` + ec.ID + `","x":[1,{"y":null}],"z":-1.5e3,"w":true}`)},
		{"header nested 64 deep", sign(`{"alg":"ES256","kid":"` + ec.ID + `","x":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`)},
		{"header nested 65 deep", sign(`{"alg":"ES256","kid":"` + ec.ID + `","x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`)},
		{"header with invalid UTF-8", sign("{\"alg\":\"ES256\",\"kid\":\"" + ec.ID + "\",\"x\":\"\xff\"}")},
		{"header with a lone surrogate escape", sign(`{"alg":"ES256","kid":"` + ec.ID + `","x":"\ud800"}`)},
		{"header with whitespace", sign(" {\n\t\"alg\" : \"ES256\" ,\r\n\"kid\":\"" + ec.ID + "\" } ")},
		{"header trailing comma", sign(`{"alg":"ES256","kid":"` + ec.ID + `",}`)},
		{"x5c not a certificate", sign(`{"alg":"ES256","kid":"` + ec.ID + `","x5c":["bm90IGEgY2VydA"]}`)},
		{"x5c not base64", sign(`{"alg":"ES256","kid":"` + ec.ID + `","x5c":["***"]}`)},
		{"jwk of a private key", sign(`{"alg":"ES256","kid":"` + ec.ID + `","jwk":` + string(vtJSON(jose.JSONWebKey{Key: ec.Signer, KeyID: "p"})) + `}`)},
		{"jwk not a key", sign(`{"alg":"ES256","kid":"` + ec.ID + `","jwk":{"kty":"nope"}}`)},
		{"jwk a string", sign(`{"alg":"ES256","kid":"` + ec.ID + `","jwk":"x"}`)},
		{"jku and x5u", sign(`{"alg":"ES256","kid":"` + ec.ID + `","jku":"https://evil.example/jwks","x5u":"https://evil.example/c"}`)},
		{"nonce a number", sign(`{"alg":"ES256","kid":"` + ec.ID + `","nonce":7}`)},
		{"nonce a string", sign(`{"alg":"ES256","kid":"` + ec.ID + `","nonce":"n"}`)},
		{"kid a number", sign(`{"alg":"ES256","kid":7}`)},
		{"typ a number", sign(`{"alg":"ES256","kid":"` + ec.ID + `","typ":7}`)},
		{"cty JWT", sign(`{"alg":"ES256","kid":"` + ec.ID + `","cty":"JWT"}`)},
		{"kid of another key", sign(`{"alg":"ES256","kid":"other"}`)},
		{"no kid", sign(`{"alg":"ES256"}`)},
	} {
		cs = append(cs, diffDocCase(t, "extra/ES256 "+c.name, ecDoc, c.raw))
	}
	return cs
}

// diffTableCases gathers the tokens of the project's tables.
func diffTableCases(t *testing.T) []diffCase {
	var cs []diffCase

	// The verifier table, with the keys of the keyset each case uses.
	f := newVTFixture(t)
	for _, c := range f.cases() {
		ks := c.keys
		if ks == nil {
			ks = f.remote
		}
		snap := ks.cur.Load()
		if snap == nil {
			t.Fatalf("%s: keyset without keys", c.name)
		}
		cs = append(cs, diffCase{name: "table/" + c.name, raw: c.token, snap: snap, keys: diffKeysFromSnapshot(snap)})
	}

	// Wycheproof's JWS and JWK vectors.
	for _, file := range []struct{ name, schema string }{
		{"json_web_signature_test.json", "json_web_signature_schema_v1.json"},
		{"json_web_key_test.json", "json_web_key_schema_v1.json"},
	} {
		wf := loadWycheproof(t, file.name, file.schema)
		for _, g := range wf.TestGroups {
			for _, tc := range g.Tests {
				cs = append(cs, diffDocCase(t, fmt.Sprintf("wycheproof/%s/tcId %d (%s)", file.name, tc.TcID, tc.Result),
					g.verificationKeys(), tc.JWS))
			}
		}
	}

	// The RFC examples, and one-byte tampers of them.
	for _, c := range []struct{ name, key, jws string }{
		{"RFC7515/A.2/RS256", rfc7515A2Key, rfc7515A2JWS},
		{"RFC7515/A.3/ES256", rfc7515A3Key, rfc7515A3JWS},
		{"RFC7515/A.4/ES512", rfc7515A4Key, rfc7515A4JWS},
		{"RFC7520/4.1/RS256", rfc7520RSAKey, rfc7520Fig13},
		{"RFC7520/4.2/PS384", rfc7520RSAKey, rfc7520Fig20},
		{"RFC7520/4.3/ES512", rfc7520ECKey, rfc7520Fig27},
		{"RFC7520/4.4/HS256", rfc7520HMACKey, rfc7520Fig34},
	} {
		cs = append(cs,
			diffDocCase(t, c.name, []byte(c.key), c.jws),
			diffDocCase(t, c.name+"/tampered payload", []byte(c.key), tamper(t, c.jws, 1)),
			diffDocCase(t, c.name+"/tampered signature", []byte(c.key), tamper(t, c.jws, 2)),
		)
	}
	return append(cs, diffExtraCases(t)...)
}

func TestDifferentialJOSE(t *testing.T) {
	cases := diffTableCases(t)
	tally := map[string]int{}
	for _, c := range cases {
		outcome, err := diffVerdict(c.raw, c.snap, c.keys)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		tally[outcome]++
		if strings.HasPrefix(outcome, "stricter/") {
			t.Logf("%s: %s", c.name, outcome)
		}
	}
	for name := range diffIgnoredHeaderParams {
		if tally["go-jose-parse/ignored header parameter "+name] == 0 {
			t.Errorf("ignored header parameter %q explains no token of the tables", name)
		}
	}
	for name := range diffStricter {
		used := false
		for outcome := range tally {
			used = used || slices.Contains(strings.Split(strings.TrimPrefix(outcome, "stricter/"), "+"), name)
		}
		if !used {
			t.Errorf("stricter-by-design class %q explains no token of the tables", name)
		}
	}
	t.Logf("%d tokens:", len(cases))
	for _, outcome := range slices.Sorted(maps.Keys(tally)) {
		t.Logf("  %-52s %4d", outcome, tally[outcome])
	}
}

// FuzzDifferentialJOSE mutates real tokens (those of FuzzVerify, and PS256
// ones) and holds grpcjwt to go-jose: grpcjwt never accepts a signature
// that go-jose rejects, and when go-jose accepts one that grpcjwt rejects,
// a class of diffStricter explains it.
func FuzzDifferentialJOSE(f *testing.F) {
	keys := fzKeys(f)
	// The RSA key twice: for RS256 under its own kid and, declared PS256,
	// under another.
	ps := &testkit.Key{ID: "fz-ps256", Algorithm: "PS256", Signer: keys[0].Signer}
	doc := fzJWKS(append(slices.Clone(keys), ps))
	snap, err := parseKeySet(doc, 100)
	if err != nil {
		f.Fatal(err)
	}
	dkeys := diffKeysFromDoc(f, doc)

	for _, k := range keys {
		tok := fzSign(f, k, nil, fzClaims())
		h, p, s := vtSplit(tok)
		f.Add(tok)
		f.Add(fzSign(f, k, map[string]any{"kid": nil}, fzClaims()))
		f.Add(fzSign(f, k, map[string]any{"typ": "id+jwt", "crit": []string{"b64"}, "b64": true}, fzClaims()))
		f.Add(h + "." + p + "." + s[:len(s)-1] + string(vtFlipTrailing(s[len(s)-1])))
		f.Add(h + "\n." + p + "." + s)
	}
	// PSS signatures are randomized, so these seeds differ between
	// processes; nothing here depends on them being the same.
	f.Add(testkit.Sign(ps, nil, fzClaims()))
	f.Add(fzSign(f, keys[0], map[string]any{"alg": "PS256"}, fzClaims()))
	input := vtB64(vtJSON(map[string]any{"alg": "PS256", "kid": ps.ID})) + "." + vtB64(vtJSON(fzClaims()))
	digest := sha256.Sum256([]byte(input))
	for _, salt := range []int{0, rsa.PSSSaltLengthAuto} {
		sig, err := rsa.SignPSS(rand.Reader, ps.Signer.(*rsa.PrivateKey), crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(input + "." + vtB64(sig))
	}
	f.Add(vtHMAC("HS256", map[string]any{"kid": keys[1].ID}, vtJSON(fzClaims()), doc))

	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) > 1<<14 {
			return
		}
		if _, err := diffVerdict(raw, snap, dkeys); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
	})
}

// TestECDSADER holds ecdsaDER, which spares verifySignature math/big, to
// what it replaces: the DER that encoding/asn1 makes of r and s, and the
// verdict of ecdsa.Verify, on real signatures and on edge values of r and s.
func TestECDSADER(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		size := (curve.Params().BitSize + 7) / 8
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("grpcjwt"))
		fixed := func(n *big.Int) []byte { return n.FillBytes(make([]byte, size)) }
		type pair struct{ r, s []byte }
		var pairs []pair
		for range 20 {
			r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, pair{fixed(r), fixed(s)})
		}
		r0, s0 := pairs[0].r, pairs[0].s
		n := curve.Params().N
		ones := bytes.Repeat([]byte{0xff}, size)
		ones[0] >>= 8*size - curve.Params().BitSize // the largest value of size bytes' worth of bits
		for _, v := range [][]byte{
			make([]byte, size), fixed(big.NewInt(1)), fixed(big.NewInt(0x80)), fixed(big.NewInt(0x7f)),
			fixed(new(big.Int).Sub(n, big.NewInt(1))), fixed(n), ones,
		} {
			pairs = append(pairs, pair{v, s0}, pair{r0, v}, pair{v, v})
		}
		for _, p := range pairs {
			R, S := new(big.Int).SetBytes(p.r), new(big.Int).SetBytes(p.s)
			der, ok := ecdsaDER(p.r, p.s)
			if want := R.Sign() > 0 && S.Sign() > 0; ok != want {
				t.Fatalf("%s: ecdsaDER(%x, %x) ok = %v", curve.Params().Name, p.r, p.s, ok)
			}
			if ok {
				want, err := asn1.Marshal(struct{ R, S *big.Int }{R, S})
				if err != nil || !bytes.Equal(der, want) {
					t.Fatalf("%s: ecdsaDER(%x, %x) = %x, encoding/asn1 %x (%v)", curve.Params().Name, p.r, p.s, der, want, err)
				}
			}
			if got, want := ok && ecdsa.VerifyASN1(&priv.PublicKey, digest[:], der), ecdsa.Verify(&priv.PublicKey, digest[:], R, S); got != want {
				t.Fatalf("%s: r=%x s=%x: VerifyASN1 of ecdsaDER %v, ecdsa.Verify %v", curve.Params().Name, p.r, p.s, got, want)
			}
		}
	}
}
