package grpcjwt

import (
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"
)

func TestROCAFingerprint(t *testing.T) {
	// Keys from crypto/rsa are not flagged.
	for range 3 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if rocaVulnerable(k.N) {
			t.Fatalf("a crypto/rsa modulus was flagged as ROCA-vulnerable")
		}
	}
	// A number built to have the fingerprint is flagged: by the Chinese
	// remainder theorem, 65537^k mod every prime is a power of 65537.
	n := new(big.Int).Exp(big.NewInt(65537), big.NewInt(1000003), nil)
	if !rocaVulnerable(n) {
		t.Fatalf("a power of 65537 was not flagged")
	}
	// Moving the residue mod one prime off the subgroup clears it.
	for i, p := range rocaPrimes {
		for r := int64(0); r < p; r++ {
			if rocaSubgroups[i][r] {
				continue
			}
			pb := big.NewInt(p)
			d := (r - new(big.Int).Mod(n, pb).Int64() + p) % p
			off := new(big.Int).Add(n, big.NewInt(d))
			if rocaVulnerable(off) {
				t.Fatalf("a number with residue %d mod %d (off the subgroup) was flagged", r, p)
			}
			return
		}
	}
	t.Fatal("every prime's subgroup is full: the test would flag every modulus")
}
