// Package orderpb is a small example gRPC service, OrderService, used to
// show how grpcjwt protects gRPC methods with JWT access tokens.
//
// The service mixes every kind of RPC: a public unary method (ServerInfo),
// unary methods meant to need an audience (GetOrder) or the scope
// write:orders (CreateOrder), a server stream (WatchOrders), a client stream
// (ImportOrders) and a bidirectional stream (Chat). Server, in service.go, is
// an in-memory implementation with plain business logic and no dependency on
// the grpcjwt package itself.
//
// orders.pb.go and orders_grpc.pb.go are generated from orders.proto and are
// committed. They were generated with:
//
//   - protoc 3.21.12 (libprotoc), from Debian's protobuf-compiler package:
//     apt-get install -y protobuf-compiler
//   - protoc-gen-go v1.36.12:
//     go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//   - protoc-gen-go-grpc v1.5.1:
//     go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
//
// With the plugins on PATH (e.g. export PATH="$PATH:$(go env GOPATH)/bin"),
// regenerate from the module root with:
//
//	go generate ./examples/orderpb
package orderpb

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative orders.proto
