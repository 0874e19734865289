package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestConnectExample runs the example in each protocol and checks one line
// per procedure and token kind with the code the rules call for, and the
// challenges of the refusals.
func TestConnectExample(t *testing.T) {
	for _, protocol := range []string{"connect", "grpc", "grpcweb"} {
		t.Run(protocol, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(t.Context(), &out, protocol); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			lines := map[string]string{}
			for _, l := range strings.Split(out.String(), "\n") {
				if f := strings.Fields(l); len(f) >= 3 {
					lines[f[0]+" "+f[1]] = f[2]
				}
			}
			n := 0
			for method, kinds := range expected {
				for kind, code := range kinds {
					n++
					if got := lines[method+" "+kind]; got != codeName(code) {
						t.Errorf("%s with %s token: printed %q, want %q", method, kind, got, codeName(code))
					}
				}
			}
			if n != 20 {
				t.Errorf("expected table has %d entries, want 20 (4 procedures x 5 token kinds)", n)
			}
			for _, want := range []string{
				"token lacks a required scope",
				`Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`,
				`Bearer error="invalid_token", error_description="expired token"`,
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestUnknownProtocol checks that a bad -protocol fails before starting
// anything.
func TestUnknownProtocol(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out, "http3"); err == nil || out.Len() != 0 {
		t.Errorf("run with an unknown protocol: %v, printed %q", err, out.String())
	}
}
