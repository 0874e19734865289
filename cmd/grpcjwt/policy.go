package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/grpcjwt/grpcjwt"
)

const policyUsage = `Usage: grpcjwt policy -file POLICY [-descriptors SET]... [-server HOST:PORT [-plaintext] [-token TOKEN|@FILE|-]]

Validates a policy document as ParsePolicy does (and so as WatchPolicyFile
loads it), and lists its rules. Given the methods of a server, from a
protobuf descriptor set (protoc --descriptor_set_out=SET, buf build -o SET)
or from a running server's reflection service, it names every rule that
matches no method (Policy.CheckMethods) and prints the rule each method
gets (Policy.Match): review it before rolling the policy out. The document
may also be given as the one argument, in place of -file.

Exit status: 0 when the policy is valid and every rule names a method; 1 when
it is invalid or a rule names no method; 2 for a usage error, a file that
cannot be read or a server that cannot be reached.

Flags:
`

// policyFlags are the flags of the policy command.
type policyFlags struct {
	file        string
	descriptors listFlag
	server      string
	plaintext   bool
	token       string
	timeout     time.Duration
}

func (f *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "file", "", "the policy document (`FILE`)")
	fs.Var(&f.descriptors, "descriptors", "a FileDescriptorSet (`SET`: binary, or JSON when its name ends in .json) holding\n"+
		"the server's services; repeat the flag or separate with commas")
	fs.StringVar(&f.server, "server", "", "a running server (`HOST:PORT`) whose services are listed by gRPC server reflection\n"+
		"(v1, else v1alpha)")
	fs.BoolVar(&f.plaintext, "plaintext", false, "with -server, connect without TLS")
	fs.StringVar(&f.token, "token", "", "with -server, a bearer `TOKEN` (or @FILE, or - for stdin) for a reflection service that\n"+
		"requires one")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "with -server, bounds the connection and the reflection calls")
}

func runPolicy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f policyFlags
	fs := flag.NewFlagSet("grpcjwt policy", flag.ContinueOnError)
	f.register(fs)
	fs.SetOutput(stderr)
	if wantsHelp(args) {
		fs.SetOutput(stdout)
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), policyUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "grpcjwt policy: "+format+"\n(run grpcjwt policy -h for the flags)\n", a...)
		return exitUsage
	}
	switch {
	case len(pos) == 1 && f.file == "":
		f.file = pos[0]
	case len(pos) > 0:
		return usageErr("unexpected arguments %q", pos)
	}
	if f.file == "" {
		return usageErr("give the policy document: -file POLICY")
	}
	if f.plaintext && f.server == "" {
		return usageErr("-plaintext goes with -server")
	}
	var token string
	if f.token != "" {
		if f.server == "" {
			return usageErr("-token goes with -server")
		}
		if token, err = readToken(f.token, stdin); err != nil {
			return usageErr("-token: %v", err)
		}
	}

	doc, err := os.ReadFile(f.file)
	if err != nil {
		fmt.Fprintf(stderr, "grpcjwt policy: %v\n", err)
		return exitUsage
	}
	policy, err := grpcjwt.ParsePolicy(doc)
	if err != nil {
		fmt.Fprintf(stdout, "INVALID: %s\n", f.file)
		for _, e := range joined(err) {
			fmt.Fprintf(stdout, "  %s\n", printable(e.Error()))
		}
		return exitRefused
	}
	keys := ruleKeys(doc)
	fmt.Fprintf(stdout, "%s: valid, %d rule%s\n", f.file, len(keys), plural(int64(len(keys))))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, key := range keys {
		_, rule := policy.Match(matchable(key))
		fmt.Fprintf(tw, "  %s\t%s\n", printable(key), formatRule(rule))
	}
	tw.Flush()

	// The methods the policy is for.
	var methods []string
	var sources []string
	for _, path := range f.descriptors {
		m, err := descriptorMethods(path)
		if err != nil {
			fmt.Fprintf(stderr, "grpcjwt policy: %v\n", err)
			return exitUsage
		}
		methods = append(methods, m...)
		sources = append(sources, path)
	}
	if f.server != "" {
		rctx, cancel := context.WithTimeout(ctx, f.timeout)
		m, version, err := reflectMethods(rctx, f.server, f.plaintext, token)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "grpcjwt policy: server reflection at %s: %v\n", f.server, err)
			return exitUsage
		}
		methods = append(methods, m...)
		sources = append(sources, fmt.Sprintf("%s (server reflection %s)", f.server, version))
	}
	if len(sources) == 0 {
		fmt.Fprintln(stdout, "\nno -descriptors or -server: the rules were not checked against any method")
		return exitOK
	}
	slices.Sort(methods)
	methods = slices.Compact(methods)

	// A service without methods is listed as "/pkg.Service/" so that
	// CheckMethods knows it exists (as CheckServer does); the table
	// shows methods only.
	var real []string
	services := map[string]bool{}
	for _, m := range methods {
		svc, name, _ := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		services[svc] = true
		if name != "" {
			real = append(real, m)
		}
	}
	fmt.Fprintf(stdout, "\n%d method%s in %d service%s, from %s\n", len(real), plural(int64(len(real))),
		len(services), plural(int64(len(services))), strings.Join(sources, ", "))
	used := map[string]bool{}
	unnamed := 0 // methods no rule names, on the built-in default
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  METHOD\tRULE\tREQUIRES")
	for _, m := range real {
		key, rule := policy.Match(m)
		used[key] = true
		if key != grpcjwt.DefaultRuleKey && !strings.HasPrefix(key, "/") {
			unnamed++
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", printable(m), printable(key), formatRule(rule))
	}
	tw.Flush()

	err = policy.CheckMethods(methods...)
	bad := joined(err)
	if len(bad) > 0 {
		fmt.Fprintf(stdout, "\nFAIL: %d rule%s name%s no method:\n", len(bad), plural(int64(len(bad))), verbS(len(bad)))
		for _, e := range bad {
			fmt.Fprintf(stdout, "  %s\n", printable(e.Error()))
		}
	}
	// Rules that name something real but apply to none of its methods:
	// a service rule whose every method has a rule of its own, or a
	// default that no method falls to. Worth a look, not a failure.
	// (A method rule always applies to its method, if it exists.)
	var idle []string
	for _, key := range keys {
		svc, _, _ := strings.Cut(strings.TrimPrefix(key, "/"), "/")
		if !used[key] && (key == grpcjwt.DefaultRuleKey || (strings.HasSuffix(key, "/*") && services[svc])) {
			idle = append(idle, key)
		}
	}
	if len(idle) > 0 || unnamed > 0 {
		fmt.Fprintln(stdout)
	}
	for _, key := range idle {
		fmt.Fprintf(stdout, "note: rule %q applies to none of these methods: each has a more specific rule, or there is none\n", printable(key))
	}
	if unnamed > 0 {
		fmt.Fprintf(stdout, "note: no rule names %d of these methods: they need a valid token (the built-in default),\n"+
			"      unless the server skips grpcjwt for them (as with selector for health and reflection)\n", unnamed)
	}
	if len(bad) > 0 {
		return exitRefused
	}
	fmt.Fprintln(stdout, "\nOK: every rule names a method")
	return exitOK
}

// joined splits an error made by errors.Join into its parts.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// ruleKeys returns the keys of the "rules" object of a policy document
// that ParsePolicy accepted, sorted.
func ruleKeys(doc []byte) []string {
	var d struct {
		Rules map[string]json.RawMessage `json:"rules"`
	}
	if json.Unmarshal(doc, &d) != nil {
		return nil
	}
	return slices.Sorted(maps.Keys(d.Rules))
}

// matchable turns a rule key into a method name that Policy.Match gives
// that rule: "/pkg.S/*" stays (its last segment names no method), "*"
// becomes a method no service rule covers.
func matchable(key string) string {
	if key == grpcjwt.DefaultRuleKey {
		return "/ /*" // no service or method rule can have this name
	}
	return key
}

func verbS(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

// descriptorMethods lists the methods of every service in the
// FileDescriptorSet at path.
func descriptorMethods(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if strings.HasSuffix(path, ".json") {
		err = protojson.Unmarshal(b, &set)
	} else {
		err = proto.Unmarshal(b, &set)
	}
	if err != nil {
		return nil, fmt.Errorf("%s is not a FileDescriptorSet (protoc --descriptor_set_out, buf build -o): %v", path, err)
	}
	if len(set.GetFile()) == 0 {
		return nil, fmt.Errorf("%s holds no file descriptors: is it a FileDescriptorSet (protoc --descriptor_set_out, buf build -o)?", path)
	}
	var methods []string
	for _, fd := range set.GetFile() {
		methods = append(methods, fileMethods(fd, nil)...)
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("%s defines no service", path)
	}
	return methods, nil
}

// fileMethods lists the methods of the services of fd, only those named
// in want when it is not nil; a service without methods is listed as
// "/pkg.Service/".
func fileMethods(fd *descriptorpb.FileDescriptorProto, want map[string]bool) []string {
	var methods []string
	for _, sd := range fd.GetService() {
		name := sd.GetName()
		if pkg := fd.GetPackage(); pkg != "" {
			name = pkg + "." + name
		}
		if want != nil && !want[name] {
			continue
		}
		if len(sd.GetMethod()) == 0 {
			methods = append(methods, "/"+name+"/")
		}
		for _, md := range sd.GetMethod() {
			methods = append(methods, "/"+name+"/"+md.GetName())
		}
	}
	return methods
}

// reflectMethods lists the methods of the server at target through its
// reflection service: v1, or v1alpha for a server that has only that. It
// returns the version that answered.
func reflectMethods(ctx context.Context, target string, plaintext bool, token string) ([]string, string, error) {
	creds := insecure.NewCredentials()
	if !plaintext {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, "", err
	}
	defer conn.Close()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	// v1 and v1alpha have the same messages, field for field: the v1
	// types serve both.
	for _, version := range []string{"v1", "v1alpha"} {
		methods, err := reflectWith(ctx, conn, "/grpc.reflection."+version+".ServerReflection/ServerReflectionInfo")
		if status.Code(err) == codes.Unimplemented && version == "v1" {
			continue
		}
		if status.Code(err) == codes.Unimplemented {
			err = errors.New("the server has no reflection service (neither grpc.reflection.v1 nor v1alpha): use -descriptors")
		}
		return methods, version, err
	}
	panic("unreachable")
}

// reflectWith lists the services through the reflection method, then asks
// for the file that defines each one.
func reflectWith(ctx context.Context, conn *grpc.ClientConn, method string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "ServerReflectionInfo", ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return nil, err
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) (*reflectionpb.ServerReflectionResponse, error) {
		// A failed stream makes SendMsg return io.EOF; RecvMsg returns
		// the status.
		if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		resp := new(reflectionpb.ServerReflectionResponse)
		if err := cs.RecvMsg(resp); err != nil {
			return nil, err
		}
		if e := resp.GetErrorResponse(); e != nil {
			return nil, status.Error(codes.Code(e.GetErrorCode()), e.GetErrorMessage())
		}
		return resp, nil
	}
	resp, err := ask(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
	})
	if err != nil {
		return nil, err
	}
	var methods []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		name := s.GetName()
		resp, err := ask(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name},
		})
		if err != nil {
			return nil, fmt.Errorf("describing %s: %w", name, err)
		}
		var found []string
		for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			var fd descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(raw, &fd); err != nil {
				return nil, fmt.Errorf("describing %s: a file descriptor does not parse: %v", name, err)
			}
			found = append(found, fileMethods(&fd, map[string]bool{name: true})...)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("the server lists %s but its file descriptors do not define it", name)
		}
		methods = append(methods, found...)
	}
	_ = cs.CloseSend()
	return methods, nil
}
