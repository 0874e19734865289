package orderpb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// newClient serves srv over an in-memory bufconn listener and returns a
// client connected to it; both are shut down when the test ends.
func newClient(t *testing.T, srv *Server) OrderServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	RegisterOrderServiceServer(gs, srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewOrderServiceClient(conn)
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status code = %v (err %v), want %v", got, err, want)
	}
}

func TestServerInfo(t *testing.T) {
	c := newClient(t, NewServer())
	resp, err := c.ServerInfo(t.Context(), &ServerInfoRequest{})
	if err != nil {
		t.Fatalf("ServerInfo: %v", err)
	}
	if resp.GetVersion() != DefaultVersion {
		t.Errorf("version = %q, want %q", resp.GetVersion(), DefaultVersion)
	}

	custom := NewServer()
	custom.Version = "v9.9.9"
	resp, err = newClient(t, custom).ServerInfo(t.Context(), &ServerInfoRequest{})
	if err != nil {
		t.Fatalf("ServerInfo: %v", err)
	}
	if resp.GetVersion() != "v9.9.9" {
		t.Errorf("version = %q, want %q", resp.GetVersion(), "v9.9.9")
	}
}

func TestCreateAndGetOrder(t *testing.T) {
	c := newClient(t, NewServer())
	ctx := t.Context()

	first, err := c.CreateOrder(ctx, &CreateOrderRequest{Item: "widget", Quantity: 2})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	if first.GetId() != "ord-1" || first.GetItem() != "widget" || first.GetQuantity() != 2 ||
		first.GetStatus() != StatusCreated || first.GetCreatedBy() != Anonymous {
		t.Errorf("CreateOrder = %v, want ord-1/widget/2/%s/%s", first, StatusCreated, Anonymous)
	}
	second, err := c.CreateOrder(ctx, &CreateOrderRequest{Item: "gadget", Quantity: 1})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	if second.GetId() != "ord-2" {
		t.Errorf("second id = %q, want ord-2", second.GetId())
	}

	got, err := c.GetOrder(ctx, &GetOrderRequest{Id: "ord-1"})
	if err != nil {
		t.Fatalf("GetOrder: %v", err)
	}
	if got.GetId() != "ord-1" || got.GetItem() != "widget" || got.GetQuantity() != 2 ||
		got.GetStatus() != StatusCreated || got.GetCreatedBy() != Anonymous {
		t.Errorf("GetOrder = %v, want the order created first", got)
	}
}

func TestGetOrderNotFound(t *testing.T) {
	c := newClient(t, NewServer())
	_, err := c.GetOrder(t.Context(), &GetOrderRequest{Id: "ord-404"})
	wantCode(t, err, codes.NotFound)
}

func TestInvalidArguments(t *testing.T) {
	c := newClient(t, NewServer())
	ctx := t.Context()

	_, err := c.GetOrder(ctx, &GetOrderRequest{})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.CreateOrder(ctx, &CreateOrderRequest{Quantity: 1})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.CreateOrder(ctx, &CreateOrderRequest{Item: "widget"})
	wantCode(t, err, codes.InvalidArgument)

	stream, err := c.WatchOrders(ctx, &WatchOrdersRequest{MaxEvents: -1})
	if err != nil {
		t.Fatalf("WatchOrders: %v", err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.InvalidArgument)
}

func TestCreateOrderCreatedByHook(t *testing.T) {
	srv := NewServer()
	// The hook reads the caller from metadata here; with grpcjwt it would read
	// the verified claims from the context instead.
	srv.CreatedBy = func(ctx context.Context) string {
		if v := metadata.ValueFromIncomingContext(ctx, "x-user"); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	c := newClient(t, srv)

	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-user", "alice")
	o, err := c.CreateOrder(ctx, &CreateOrderRequest{Item: "widget", Quantity: 1})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	if o.GetCreatedBy() != "alice" {
		t.Errorf("created_by = %q, want alice", o.GetCreatedBy())
	}

	// A hook that knows no caller falls back to Anonymous.
	o, err = c.CreateOrder(t.Context(), &CreateOrderRequest{Item: "widget", Quantity: 1})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	if o.GetCreatedBy() != Anonymous {
		t.Errorf("created_by = %q, want %q", o.GetCreatedBy(), Anonymous)
	}
}

func TestCreateOrderConcurrent(t *testing.T) {
	c := newClient(t, NewServer())
	const n = 20
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			o, err := c.CreateOrder(t.Context(), &CreateOrderRequest{Item: "widget", Quantity: 1})
			if err != nil {
				t.Errorf("CreateOrder: %v", err)
				return
			}
			ids <- o.GetId()
		})
	}
	wg.Wait()
	close(ids)
	seen := make(map[string]bool)
	for id := range ids {
		if seen[id] {
			t.Errorf("duplicate id %q", id)
		}
		seen[id] = true
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("ord-%d", i)
		if !seen[id] {
			t.Errorf("missing id %q", id)
		}
		if _, err := c.GetOrder(t.Context(), &GetOrderRequest{Id: id}); err != nil {
			t.Errorf("GetOrder(%q): %v", id, err)
		}
	}
}

func TestWatchOrders(t *testing.T) {
	c := newClient(t, NewServer())
	for _, tc := range []struct {
		maxEvents int32
		want      int
	}{
		{maxEvents: 0, want: 3},
		{maxEvents: 1, want: 1},
		{maxEvents: 2, want: 2},
		{maxEvents: 3, want: 3},
		{maxEvents: 50, want: 3},
	} {
		t.Run(fmt.Sprintf("max_events=%d", tc.maxEvents), func(t *testing.T) {
			stream, err := c.WatchOrders(t.Context(), &WatchOrdersRequest{MaxEvents: tc.maxEvents})
			if err != nil {
				t.Fatalf("WatchOrders: %v", err)
			}
			var got []*OrderEvent
			for {
				ev, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Recv: %v", err)
				}
				got = append(got, ev)
			}
			if len(got) != tc.want {
				t.Fatalf("got %d events, want %d", len(got), tc.want)
			}
			for i, ev := range got {
				if ev.GetSequence() != int32(i+1) || ev.GetKind() != "heartbeat" {
					t.Errorf("event %d = %v, want sequence %d kind heartbeat", i, ev, i+1)
				}
			}
		})
	}
}

func TestImportOrders(t *testing.T) {
	c := newClient(t, NewServer())
	for _, n := range []int{0, 1, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			stream, err := c.ImportOrders(t.Context())
			if err != nil {
				t.Fatalf("ImportOrders: %v", err)
			}
			for i := range n {
				if err := stream.Send(&Order{Id: fmt.Sprintf("imp-%d", i), Item: "widget", Quantity: 1}); err != nil {
					t.Fatalf("Send: %v", err)
				}
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				t.Fatalf("CloseAndRecv: %v", err)
			}
			if resp.GetImported() != int32(n) {
				t.Errorf("imported = %d, want %d", resp.GetImported(), n)
			}
		})
	}
}

func TestChat(t *testing.T) {
	c := newClient(t, NewServer())
	stream, err := c.Chat(t.Context())
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	msgs := []*ChatMessage{
		{Text: "hello", From: "alice"},
		{Text: "how are you?", From: "alice"},
		{Text: "bye", From: "bob"},
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if got.GetText() != m.GetText() || got.GetFrom() != m.GetFrom() {
			t.Errorf("echo = %v, want %v", got, m)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after CloseSend = %v, want io.EOF", err)
	}
}
