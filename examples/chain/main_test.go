package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestChain runs the program and checks the code printed for each call, and
// that the access log recorded every call's final code, denials and the
// recovered panic included.
func TestChain(t *testing.T) {
	var out, logs bytes.Buffer
	if err := run(t.Context(), &out, &logs); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nlogs:\n%s", err, out.String(), logs.String())
	}

	want := [][2]string{
		{"Health.Check", "OK"},
		{"ServerInfo", "OK"},
		{"CreateOrder", "OK"},
		{"GetOrder", "Unauthenticated"},
		{"GetOrder", "OK"},
		{"CreateOrder", "PermissionDenied"},
		{"CreateOrder", "Internal"},
		{"WatchOrders", "OK"},
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("printed %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != want[i][0] || f[1] != want[i][1] {
			t.Errorf("line %d: %q, want method %s and code %s", i+1, l, want[i][0], want[i][1])
		}
	}
	if !strings.Contains(lines[2], "by user-123") {
		t.Errorf("CreateOrder line %q does not show created_by from the token's subject", lines[2])
	}
	if strings.Contains(out.String(), "planted bug") {
		t.Errorf("the panic value reached the client:\n%s", out.String())
	}

	// logging is outermost: one "finished call" line per call, with the
	// final code even when auth rejected the call or the handler panicked.
	finished := 0
	codes := map[string]int{}
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if !strings.Contains(l, `msg="finished call"`) {
			continue
		}
		finished++
		for _, c := range []string{"OK", "Unauthenticated", "PermissionDenied", "Internal"} {
			if strings.Contains(l, "grpc.code="+c+" ") {
				codes[c]++
			}
		}
	}
	if finished != len(want) {
		t.Errorf("access log has %d finished-call lines, want %d:\n%s", finished, len(want), logs.String())
	}
	wantCodes := map[string]int{"OK": 5, "Unauthenticated": 1, "PermissionDenied": 1, "Internal": 1}
	for c, n := range wantCodes {
		if codes[c] != n {
			t.Errorf("access log has %d calls with grpc.code=%s, want %d", codes[c], c, n)
		}
	}
	if !strings.Contains(logs.String(), `msg="recovered from panic"`) {
		t.Errorf("the recovered panic was not logged")
	}
	if !strings.Contains(logs.String(), "auth.sub=user-123") {
		t.Errorf("the access log does not carry the token's subject")
	}
}
