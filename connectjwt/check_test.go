package connectjwt_test

import (
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/grpcjwt/grpcjwt"
	"github.com/grpcjwt/grpcjwt/connectjwt"
)

// TestCheckProcedures checks the start-up check against the procedures a
// connect server serves, named one by one or by their services'
// descriptors: every rule that names no served service or procedure is
// reported, and only those.
func TestCheckProcedures(t *testing.T) {
	testService := testpb.File_grpc_testing_test_proto.Services().ByName("TestService")
	health := healthpb.File_grpc_health_v1_health_proto.Services().ByName("Health")
	good := ctPolicy(t, map[string]grpcjwt.Rule{
		grpcjwt.DefaultRuleKey: {},
		ctService:              {Scopes: []string{"read"}},
		ctUnary:                {Scopes: []string{"write"}},
		ctHealth:               {Public: true},
	})
	withOptional, err := grpcjwt.NewPolicy(grpcjwt.PublicHealthAndReflection(), map[string]grpcjwt.Rule{ctUnary: {}})
	if err != nil {
		t.Fatal(err)
	}
	typos := ctPolicy(t, map[string]grpcjwt.Rule{
		"/grpc.testing.TestService/UnaryCal": {Scopes: []string{"write"}},
		"/grpc.testing.TestServic/*":         {Public: true},
		ctEmpty:                              {Public: true},
	})
	wantTypos := []string{
		`rule "/grpc.testing.TestService/UnaryCal": service "grpc.testing.TestService" has no method "UnaryCal"`,
		`rule "/grpc.testing.TestServic/*": no service "grpc.testing.TestServic" is registered`,
	}

	for _, tc := range []struct {
		name   string
		policy *grpcjwt.Policy
		check  func(*grpcjwt.Policy) error
		want   []string // substrings of the error, nil for none
	}{
		{"procedures, good", good, func(p *grpcjwt.Policy) error { return connectjwt.CheckProcedures(p, ctProcedures...) }, nil},
		{"services, good", good, func(p *grpcjwt.Policy) error { return connectjwt.CheckServices(p, testService, health) }, nil},
		{"procedures, health not served", good, func(p *grpcjwt.Policy) error { return connectjwt.CheckProcedures(p, ctUnary, ctEmpty) },
			[]string{`rule "/grpc.health.v1.Health/Check": no service "grpc.health.v1.Health" is registered`}},
		{"services, health not served", good, func(p *grpcjwt.Policy) error { return connectjwt.CheckServices(p, testService) },
			[]string{`no service "grpc.health.v1.Health" is registered`}},
		{"procedures, typos", typos, func(p *grpcjwt.Policy) error { return connectjwt.CheckProcedures(p, ctProcedures...) }, wantTypos},
		{"services, typos", typos, func(p *grpcjwt.Policy) error { return connectjwt.CheckServices(p, testService, health) }, wantTypos},
		{"optional rules of PublicHealthAndReflection", withOptional, func(p *grpcjwt.Policy) error { return connectjwt.CheckProcedures(p, ctUnary) }, nil},
		{"nil policy", nil, func(p *grpcjwt.Policy) error { return connectjwt.CheckProcedures(p) }, nil},
		{"nil descriptor", good, func(p *grpcjwt.Policy) error {
			return connectjwt.CheckServices(p, testService, testpb.File_grpc_testing_test_proto.Services().ByName("NoSuchService"))
		}, []string{"connectjwt: service descriptor 1 is nil"}},
	} {
		err := tc.check(tc.policy)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v, want nil", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: nil error, want %q", tc.name, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
		if n := strings.Count(err.Error(), "grpcjwt: rule"); tc.want[0] != "connectjwt: service descriptor 1 is nil" && n != len(tc.want) {
			t.Errorf("%s: error reports %d rules, want %d: %q", tc.name, n, len(tc.want), err)
		}
	}

	// A service without methods still exists for the check.
	var empty protoreflect.ServiceDescriptor = emptyService{testService}
	if err := connectjwt.CheckServices(ctPolicy(t, map[string]grpcjwt.Rule{ctService: {}}), empty); err != nil {
		t.Errorf("service without methods: %v", err)
	}
}

// emptyService is a service descriptor without methods.
type emptyService struct{ protoreflect.ServiceDescriptor }

func (emptyService) Methods() protoreflect.MethodDescriptors { return noMethods{} }

type noMethods struct{ protoreflect.MethodDescriptors }

func (noMethods) Len() int { return 0 }
