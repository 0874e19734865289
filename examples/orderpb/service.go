package orderpb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultVersion is the version string ServerInfo reports when Server.Version is empty.
const DefaultVersion = "orderpb-example/1.0.0"

// Anonymous is the created_by value used when no caller identity is known.
const Anonymous = "anonymous"

// defaultMaxEvents is both the default and the cap of events sent by WatchOrders.
const defaultMaxEvents = 3

// StatusCreated is the status of a newly created order.
const StatusCreated = "created"

// Server is an in-memory, concurrency-safe implementation of OrderServiceServer.
//
// Its handlers hold plain business logic only; authentication and
// authorization are left to interceptors. Set the exported fields before the
// server starts serving and do not change them afterwards.
type Server struct {
	UnimplementedOrderServiceServer

	// CreatedBy, if set, returns the identity of the caller (for example the
	// subject of a verified JWT) and is used to fill Order.created_by in
	// CreateOrder. When it is nil or returns "", Anonymous is used.
	CreatedBy func(ctx context.Context) string

	// Version is returned by ServerInfo; DefaultVersion when empty.
	Version string

	mu     sync.Mutex
	nextID int
	orders map[string]*Order
}

var _ OrderServiceServer = (*Server)(nil)

// NewServer returns an empty Server that reports DefaultVersion.
func NewServer() *Server {
	return &Server{
		Version: DefaultVersion,
		orders:  make(map[string]*Order),
	}
}

// ServerInfo returns the server's version string.
func (s *Server) ServerInfo(context.Context, *ServerInfoRequest) (*ServerInfoResponse, error) {
	v := s.Version
	if v == "" {
		v = DefaultVersion
	}
	return &ServerInfoResponse{Version: v}, nil
}

// GetOrder returns the order with the requested id, or NotFound.
func (s *Server) GetOrder(_ context.Context, req *GetOrderRequest) (*Order, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id is required")
	}
	s.mu.Lock()
	o, ok := s.orders[req.GetId()]
	var out *Order
	if ok {
		out = cloneOrder(o)
	}
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "order %q not found", req.GetId())
	}
	return out, nil
}

// CreateOrder stores a new order with a generated id ("ord-1", "ord-2", ...)
// and returns it.
func (s *Server) CreateOrder(ctx context.Context, req *CreateOrderRequest) (*Order, error) {
	if req.GetItem() == "" {
		return nil, status.Error(codes.InvalidArgument, "item is required")
	}
	if req.GetQuantity() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "quantity must be positive")
	}
	createdBy := Anonymous
	if s.CreatedBy != nil {
		if who := s.CreatedBy(ctx); who != "" {
			createdBy = who
		}
	}

	s.mu.Lock()
	if s.orders == nil { // a zero Server is usable too
		s.orders = make(map[string]*Order)
	}
	s.nextID++
	o := &Order{
		Id:        fmt.Sprintf("ord-%d", s.nextID),
		Item:      req.GetItem(),
		Quantity:  req.GetQuantity(),
		Status:    StatusCreated,
		CreatedBy: createdBy,
	}
	s.orders[o.Id] = o
	out := cloneOrder(o)
	s.mu.Unlock()
	return out, nil
}

// WatchOrders sends min(max_events, 3) events (3 when max_events is 0),
// numbered from 1, and then ends the stream.
func (s *Server) WatchOrders(req *WatchOrdersRequest, stream grpc.ServerStreamingServer[OrderEvent]) error {
	n := req.GetMaxEvents()
	switch {
	case n < 0:
		return status.Error(codes.InvalidArgument, "max_events must not be negative")
	case n == 0 || n > defaultMaxEvents:
		n = defaultMaxEvents
	}
	for i := range n {
		if err := stream.Send(&OrderEvent{Sequence: i + 1, Kind: "heartbeat"}); err != nil {
			return err
		}
	}
	return nil
}

// ImportOrders counts the orders the client sends and reports the count once
// the client closes its side of the stream. The orders are not stored.
func (s *Server) ImportOrders(stream grpc.ClientStreamingServer[Order, ImportOrdersResponse]) error {
	var n int32
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&ImportOrdersResponse{Imported: n})
		}
		if err != nil {
			return err
		}
		n++
	}
}

// Chat sends every message it receives straight back to the client, until the
// client closes its side of the stream.
func (s *Server) Chat(stream grpc.BidiStreamingServer[ChatMessage, ChatMessage]) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&ChatMessage{Text: msg.GetText(), From: msg.GetFrom()}); err != nil {
			return err
		}
	}
}

// cloneOrder returns a copy of o so stored orders never escape the mutex.
func cloneOrder(o *Order) *Order {
	return &Order{
		Id:        o.GetId(),
		Item:      o.GetItem(),
		Quantity:  o.GetQuantity(),
		Status:    o.GetStatus(),
		CreatedBy: o.GetCreatedBy(),
	}
}
