package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestQuickstart runs the quickstart and checks one line per method and
// token kind with the status the rules call for.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
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
			if got := lines[method+" "+kind]; got != code.String() {
				t.Errorf("%s with %s token: printed %q, want %q", method, kind, got, code)
			}
		}
	}
	if n != 20 {
		t.Errorf("expected table has %d entries, want 20 (4 methods x 5 token kinds)", n)
	}
	if !strings.Contains(out.String(), "token lacks a required scope") || !strings.Contains(out.String(), "expired token") {
		t.Errorf("output lacks the status messages:\n%s", out.String())
	}
}
