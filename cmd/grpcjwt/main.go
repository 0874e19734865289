// Command grpcjwt answers "why was this call refused?" for gRPC servers
// protected by grpcjwt. It verifies a token exactly as the server's
// verifier would, and names the check that failed with the token's value
// and the wanted one; given a policy document and a method, it says which
// rule applies and the decision the interceptor would make; and it checks
// a policy document against the methods a server really has.
//
//	go run github.com/grpcjwt/grpcjwt/cmd/grpcjwt check -issuer https://tenant.logto.app/oidc -audience https://api.example.com @token.txt
//	go run github.com/grpcjwt/grpcjwt/cmd/grpcjwt check -jwks https://tenant.logto.app/oidc/jwks -iss https://tenant.logto.app/oidc -audience https://api.example.com -policy policy.json -method /orders.v1.OrderService/CreateOrder - < token.txt
//	go run github.com/grpcjwt/grpcjwt/cmd/grpcjwt policy -file policy.json -descriptors orders.binpb
//	go run github.com/grpcjwt/grpcjwt/cmd/grpcjwt policy -file policy.json -server localhost:50051 -plaintext
//
// Exit status: 0 when the token verifies (and the call would be allowed) or
// the policy is clean; 1 when the token is refused, the call denied, or,
// for the policy command, the document invalid or one of its rules names
// no method; 2 for a usage or configuration error (a bad flag, an invalid
// policy given to check, discovery or a JWK Set fetch failing, a file that
// cannot be read). See README.md for transcripts.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// Exit statuses.
const (
	exitOK      = 0 // the token verifies, the call is allowed, the policy is clean
	exitRefused = 1 // refused, denied, an invalid policy, a rule naming no method
	exitUsage   = 2 // a usage or configuration error
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "check":
		return runCheck(ctx, args[1:], stdin, stdout, stderr)
	case "policy":
		return runPolicy(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "check", "policy":
				return runContext(ctx, []string{args[1], "-h"}, stdin, stdout, stderr)
			}
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "grpcjwt: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

const usage = `grpcjwt answers "why was this call refused?" for gRPC servers protected by grpcjwt.

Usage:
  grpcjwt check  -issuer URL | -jwks URL -iss ISSUER  -audience AUD  [flags]  TOKEN | @FILE | -
      Verify a token as the server's verifier would: the verdict, the check that
      failed with the token's value and the wanted one, and the verified claims.
      With -policy FILE -method /pkg.Service/Method, also the rule that applies
      and the interceptor's decision (gRPC code, message, www-authenticate).
  grpcjwt policy -file POLICY [-descriptors SET]... [-server HOST:PORT [-plaintext] [-token TOKEN]]
      Validate a policy document as ParsePolicy does; with a descriptor set or a
      server with reflection, name the rules that match no method and show the
      rule each method gets.

Run "grpcjwt check -h" or "grpcjwt policy -h" for the flags.

Exit status: 0 valid / allowed / clean; 1 refused / denied / invalid policy or a
rule naming no method; 2 usage or configuration error.
`
