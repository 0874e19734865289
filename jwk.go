package grpcjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3 requires
// 2048 bits for RS*, and §3.5 for PS*).
const minRSABits = 2048

// alg identifies one supported JWS algorithm; the zero value is "none of
// them".
type alg uint8

const (
	algInvalid alg = iota
	algRS256
	algRS384
	algRS512
	algPS256
	algPS384
	algPS512
	algES256
	algES384
	algES512
	algEdDSA
	algEd25519 // RFC 9864: EdDSA with Ed25519, by its fully-specified name
	algCount
)

// algNames maps each supported algorithm to its JWA name.
var algNames = [algCount]string{
	algRS256: "RS256", algRS384: "RS384", algRS512: "RS512",
	algPS256: "PS256", algPS384: "PS384", algPS512: "PS512",
	algES256: "ES256", algES384: "ES384", algES512: "ES512",
	algEdDSA: "EdDSA", algEd25519: "Ed25519",
}

func (a alg) String() string {
	if a > algInvalid && a < algCount {
		return algNames[a]
	}
	return "invalid"
}

// parseAlg returns the algorithm with the exact (case-sensitive) JWA name.
func parseAlg(name string) alg {
	switch name {
	case "RS256":
		return algRS256
	case "RS384":
		return algRS384
	case "RS512":
		return algRS512
	case "PS256":
		return algPS256
	case "PS384":
		return algPS384
	case "PS512":
		return algPS512
	case "ES256":
		return algES256
	case "ES384":
		return algES384
	case "ES512":
		return algES512
	case "EdDSA":
		return algEdDSA
	case "Ed25519":
		return algEd25519
	}
	return algInvalid
}

// hash returns the digest the algorithm signs; EdDSA signs the message
// itself and returns 0.
func (a alg) hash() crypto.Hash {
	switch a {
	case algRS256, algPS256, algES256:
		return crypto.SHA256
	case algRS384, algPS384, algES384:
		return crypto.SHA384
	case algRS512, algPS512, algES512:
		return crypto.SHA512
	}
	return 0
}

// algSet is a bit set of algorithms.
type algSet uint16

func (s algSet) has(a alg) bool { return a > algInvalid && a < algCount && s&(1<<a) != 0 }

// String lists the set's JWA names, as "[ES256 EdDSA]".
func (s algSet) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for a := algInvalid + 1; a < algCount; a++ {
		if s.has(a) {
			if b.Len() > 1 {
				b.WriteByte(' ')
			}
			b.WriteString(a.String())
		}
	}
	b.WriteByte(']')
	return b.String()
}

// registeredJWSAlgs are the JWS "alg" names registered with IANA (RFC 7518
// §3.1, RFC 8037, RFC 8812, RFC 9864), supported or not.
var registeredJWSAlgs = []string{"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "ES256K", "Ed25519", "Ed448"}

// headerAlgName names a token's "alg" for an error text. The header is not
// yet verified, so only a registered name, one of a closed set, is
// repeated; any other value is described by its length.
func headerAlgName(name string) string {
	if slices.Contains(registeredJWSAlgs, name) {
		return name
	}
	return fmt.Sprintf("(an unregistered name of %d bytes)", len(name))
}

func setOf(algs ...alg) algSet {
	var s algSet
	for _, a := range algs {
		s |= 1 << a
	}
	return s
}

// allAlgs is the default allow-list: every supported algorithm.
var allAlgs = setOf(algRS256, algRS384, algRS512, algPS256, algPS384, algPS512,
	algES256, algES384, algES512, algEdDSA, algEd25519)

// verifyKey is one usable public key from a JWK Set. It is immutable once
// published in a snapshot, except for removed, which the keyset sets when a
// later snapshot no longer holds the key.
type verifyKey struct {
	kid        string
	algs       algSet // algorithms this key may verify (kty, crv and declared alg)
	pub        crypto.PublicKey
	thumbprint string // RFC 7638 SHA-256 thumbprint: the key's identity across refreshes
	removed    atomic.Bool
}

// rawJWKFields are the members inspected before a key is handed to go-jose.
type rawJWKFields struct {
	Kty    string          `json:"kty"`
	Use    *string         `json:"use"`
	KeyOps json.RawMessage `json:"key_ops"`
	Alg    string          `json:"alg"`
	Kid    json.RawMessage `json:"kid"`
	D      json.RawMessage `json:"d"`
	K      json.RawMessage `json:"k"`
	P      json.RawMessage `json:"p"`
	Q      json.RawMessage `json:"q"`
	Priv   json.RawMessage `json:"priv"`
}

// errEncryptionKey marks a JWK published for encryption ("use":"enc", or a
// JWE key-management "alg"), which a JWK Set rightly holds beside its
// signing keys (Keycloak publishes one): the keyset skips it quietly.
var errEncryptionKey = errors.New("an encryption key")

// jweKeyAlgs are the JWE key-management algorithms of public keys (RFC 7518
// §4.1).
var jweKeyAlgs = []string{"RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512",
	"ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"}

// parseJWK turns one JWK into a verification key, or says why it cannot be
// used. The reasons are logged by the keyset; they never fail the set.
func parseJWK(data []byte) (*verifyKey, error) {
	var raw rawJWKFields
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if raw.D != nil || raw.K != nil || raw.P != nil || raw.Q != nil || raw.Priv != nil {
		// A published private or symmetric key is a misconfiguration at the
		// issuer; refuse to use it at all rather than guess.
		return nil, errors.New("holds private or symmetric key material")
	}
	if raw.Use != nil && *raw.Use != "sig" {
		if *raw.Use == "enc" {
			return nil, fmt.Errorf("%w: use %q is not sig", errEncryptionKey, *raw.Use)
		}
		return nil, fmt.Errorf("use %q is not sig", *raw.Use)
	}
	if raw.KeyOps != nil {
		if err := checkKeyOps(raw.KeyOps); err != nil {
			return nil, err
		}
	}
	var kid string
	if raw.Kid != nil {
		if err := json.Unmarshal(raw.Kid, &kid); err != nil {
			return nil, errors.New("kid is not a string")
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("kty %q: %w", raw.Kty, err)
	}
	var algs algSet
	switch pub := jwk.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, fewer than %d", pub.N.BitLen(), minRSABits)
		}
		if rocaVulnerable(pub.N) {
			return nil, errors.New("RSA modulus has the ROCA weakness (CVE-2017-15361)")
		}
		algs = setOf(algRS256, algRS384, algRS512, algPS256, algPS384, algPS512)
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			algs = setOf(algES256)
		case elliptic.P384():
			algs = setOf(algES384)
		case elliptic.P521():
			algs = setOf(algES512)
		default:
			return nil, errors.New("unsupported curve")
		}
	case ed25519.PublicKey:
		algs = setOf(algEdDSA, algEd25519)
	default:
		return nil, fmt.Errorf("unsupported key type %q", raw.Kty)
	}
	if raw.Alg != "" {
		a := parseAlg(raw.Alg)
		if a == algInvalid {
			if slices.Contains(jweKeyAlgs, raw.Alg) {
				return nil, fmt.Errorf("%w: alg %q is not a signature algorithm", errEncryptionKey, raw.Alg)
			}
			return nil, fmt.Errorf("alg %q is not a supported signature algorithm", raw.Alg)
		}
		if !algs.has(a) {
			return nil, fmt.Errorf("alg %q does not fit the key type", raw.Alg)
		}
		algs = setOf(a)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint: %w", err)
	}
	return &verifyKey{kid: kid, algs: algs, pub: jwk.Key, thumbprint: string(tp)}, nil
}

// checkKeyOps holds a JWK's "key_ops" to RFC 7517 §4.3: an array of
// strings without duplicates, here one that allows "verify". A null, a
// value of another type, a member that is not a string or a repeated one
// makes the key unusable.
func checkKeyOps(raw json.RawMessage) error {
	var ops []any
	if err := json.Unmarshal(raw, &ops); err != nil || ops == nil {
		return errors.New("key_ops is not an array")
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		s, ok := op.(string)
		if !ok {
			return errors.New("key_ops holds a value that is not a string")
		}
		if seen[s] {
			return fmt.Errorf("key_ops repeats %q", s)
		}
		seen[s] = true
	}
	if !seen["verify"] {
		return errors.New("key_ops does not allow verify")
	}
	return nil
}

// sameKey reports whether k and o are the same published key, so that a key
// that survives a refresh keeps its identity (and its cached tokens).
func (k *verifyKey) sameKey(o *verifyKey) bool {
	return k.kid == o.kid && k.algs == o.algs && k.thumbprint == o.thumbprint
}
