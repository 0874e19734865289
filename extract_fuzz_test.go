package grpcjwt

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

// FuzzBearerToken feeds arbitrary authorization values to the metadata
// extraction. Properties: it never panics; an accepted token is non-empty,
// has no surrounding space, fits the size cap and is exactly what follows a
// case-insensitive "Bearer" scheme in the value; two values never pass.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{
		"Bearer abc.def.ghi", "bearer x", "BEARER  y ", " Bearer\tz", "Basic dXNlcjpwYXNz",
		"Bearer", "Bearer ", "", "Bearerabc", "Bearer a b", strings.Repeat("A", 5000),
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	const maxBytes = 4096
	f.Fuzz(func(t *testing.T, value string, twice bool) {
		md := metadata.Pairs("authorization", value)
		if twice {
			md.Append("authorization", value)
		}
		ctx := metadata.NewIncomingContext(context.Background(), md)
		tok, err := bearerFromMD(authorizationMD(ctx), maxBytes)
		if err != nil {
			if tok != "" {
				t.Fatalf("error %v with token %q", err, tok)
			}
			return
		}
		if twice {
			t.Fatalf("two authorization values accepted: %q", value)
		}
		if tok == "" || tok != strings.TrimSpace(tok) {
			t.Fatalf("accepted token %q is empty or has surrounding space", tok)
		}
		if len(value) > maxBytes+64 {
			t.Fatalf("value of %d bytes accepted past the cap", len(value))
		}
		v := strings.TrimSpace(value)
		if len(v) < 7 || !strings.EqualFold(v[:6], "Bearer") || v[6] != ' ' || strings.TrimSpace(v[7:]) != tok {
			t.Fatalf("value %q yielded token %q", value, tok)
		}
	})
}
