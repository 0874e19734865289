package connectjwt

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/grpcjwt/grpcjwt"
)

// CheckProcedures reports every rule of p whose key names no service or
// procedure among procedures ("/pkg.Service/Method", the procedure
// constants of connect's generated code), as [grpcjwt.Policy.CheckServer]
// does for a grpc.Server: a typo in a rule then fails at start-up rather
// than leaving a procedure on the default rule. The rules of
// [grpcjwt.PublicHealthAndReflection] are not reported. A nil policy names
// no procedure and passes.
func CheckProcedures(p *grpcjwt.Policy, procedures ...string) error {
	return p.CheckMethods(procedures...)
}

// CheckServices is [CheckProcedures] for every method of the given
// services, taken from their protobuf descriptors, for instance
// ordersv1.File_orders_v1_orders_proto.Services().ByName("OrderService").
// A nil descriptor (what ByName returns for a name the file does not hold)
// is an error.
func CheckServices(p *grpcjwt.Policy, services ...protoreflect.ServiceDescriptor) error {
	var procedures []string
	for i, sd := range services {
		if sd == nil {
			return fmt.Errorf("connectjwt: service descriptor %d is nil", i)
		}
		prefix := "/" + string(sd.FullName()) + "/"
		methods := sd.Methods()
		if methods.Len() == 0 {
			procedures = append(procedures, prefix) // a service without methods still exists
		}
		for j := range methods.Len() {
			procedures = append(procedures, prefix+string(methods.Get(j).Name()))
		}
	}
	return p.CheckMethods(procedures...)
}
