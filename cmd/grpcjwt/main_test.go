package main

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestBinary builds the command with go build and runs it as a user
// would: the token on stdin, the verdict on stdout, the exit status.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	bin := filepath.Join(t.TempDir(), "grpcjwt")
	build := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	is := newIssuer(t)
	policy := writeFile(t, "policy.json", testPolicy)
	for _, tc := range []struct {
		token  string
		code   int
		stdout []string
	}{
		{
			token:  is.Mint(is.Claims(testAudience, "write:orders")),
			code:   exitOK,
			stdout: []string{"VALID\n", "ALLOW (the handler gets the verified claims)\n", "\nverified claims:\n"},
		},
		{
			token: is.Mint(is.Claims(testAudience, "read:orders")),
			code:  exitRefused,
			stdout: []string{
				"VALID\n",
				"DENY: PermissionDenied \"token lacks a required scope\"\n",
				`  www-authenticate: Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="write:orders"`,
			},
		},
	} {
		cmd := exec.CommandContext(t.Context(), bin, "check", "-issuer", is.URL(), "-audience", testAudience,
			"-policy", policy, "-method", orderService+"CreateOrder", "-")
		cmd.Stdin = strings.NewReader("Bearer " + tc.token + "\n")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		r := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
		r.expect(t, tc.code, tc.stdout)
		if r.stderr != "" {
			t.Errorf("stderr is not empty")
		}
	}
}

// TestSentinels keeps the command's list of sentinels in step with the
// ones errors.go declares: a refusal's class is named after its sentinel.
func TestSentinels(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "..", "errors.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "Err") || i >= len(vs.Values) {
				continue
			}
			call, ok := vs.Values[i].(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				continue
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok {
				s, _ := strconv.Unquote(lit.Value)
				declared = append(declared, s)
			}
		}
		return true
	})
	var listed []string
	for _, s := range sentinels {
		listed = append(listed, s.Error())
	}
	slices.Sort(declared)
	slices.Sort(listed)
	if !slices.Equal(declared, listed) {
		t.Errorf("errors.go declares the sentinels\n%q\nthe command lists\n%q", declared, listed)
	}
}
