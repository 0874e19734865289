package connectjwt_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/grpcjwt/grpcjwt"
)

// ctOutClient returns a client of the server-streaming StreamingOutputCall.
func (e *ctEnv) outClient(protocol string) *connect.Client[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse] {
	return connect.NewClient[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse](e.client, e.srv.URL+ctOutStream, ctProtocolOption(protocol))
}

// TestStreamExpiry mirrors the grpc-go interceptors' TestStreamExpiry in
// each protocol: a stream ends when its token expires, even if its handler
// ignores its context, with Unauthenticated "token expired during the
// stream"; a public procedure's optional token and WithStreamExpiry(false)
// do not bound it. It waits for a real token to expire (about 1.5 s); its
// cases run at once so that the wait is paid once.
//
// The challenge of the expiry reaches a connect client in the error's
// metadata, in-body for the Connect protocol and gRPC-Web. In gRPC, once
// the handler has sent a message, the HTTP headers are gone and net/http
// will not send WWW-Authenticate as a trailer: the call ends with the
// code and message alone. A handler that has sent nothing yet (a client
// stream) still gets its challenge to the client, in the HTTP header.
func TestStreamExpiry(t *testing.T) {
	ctLeakCheck(t)
	is := ctIssuer(t)
	v := ctVerifier(t, is, grpcjwt.WithLeeway(0))
	const expiredWWW = `Bearer error="invalid_token", error_description="expired token"`
	const expiredMsg = "token expired during the stream"

	logs := &ctLogs{}
	bounded := ctServe(t, v, false, grpcjwt.WithLogger(slog.New(logs)))
	public := ctServe(t, v, false, grpcjwt.WithPolicy(ctPolicy(t, map[string]grpcjwt.Rule{ctOutStream: {Public: true}})))
	unbounded := ctServe(t, v, false, grpcjwt.WithStreamExpiry(false))
	// Connect to each server first: TLS handshakes under the race
	// detector take long enough to eat into the token's short life.
	warm := ctBearer(ctMint(is, nil, ctAudience))
	for _, e := range []*ctEnv{bounded, public, unbounded} {
		if o := e.call(t.Context(), ctCall{protocol: "connect", kind: "unary", auth: warm}); o.err != nil {
			t.Fatal(o.err)
		}
	}

	exp := time.Now().Add(1500 * time.Millisecond)
	// A fractional NumericDate, so that the token expires 1.5 s from now
	// rather than at the next whole second.
	tok := ctMint(is, func(m map[string]any) { m["exp"] = float64(exp.UnixMilli()) / 1000 }, ctAudience)
	withBearer := func(h interface{ Set(string, string) }) { h.Set("Authorization", "Bearer "+tok) }
	// openOut opens e's server stream in protocol p with the token and
	// payload, bounded by 3 s (cancel ends it sooner); the stream is
	// closed when the case ends.
	openOut := func(t *testing.T, e *ctEnv, p string, payload *testpb.Payload) (*connect.ServerStreamForClient[testpb.StreamingOutputCallResponse], context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		t.Cleanup(cancel)
		req := connect.NewRequest(&testpb.StreamingOutputCallRequest{Payload: payload})
		withBearer(req.Header())
		st, err := e.outClient(p).CallServerStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st, cancel
	}

	// The cases share the wait: they run at once, in goroutines rather
	// than with t.Parallel, whose -parallel limit (GOMAXPROCS) could start
	// one of them after the token expired.
	var wg sync.WaitGroup
	run := func(name string, f func(t *testing.T)) { wg.Go(func() { t.Run(name, f) }) }
	defer wg.Wait()

	for _, p := range ctProtocols {
		run(p+"/server stream ends at expiry", func(t *testing.T) {
			st, _ := openOut(t, bounded, p, nil) // sends until ctx.Done
			n := 0
			var last time.Time
			for st.Receive() {
				if sub := string(st.Msg().GetPayload().GetBody()); sub != "user-123" {
					t.Errorf("message %d: subject %q", n, sub)
				}
				n++
				last = time.Now()
			}
			var ce *connect.Error
			if !errors.As(st.Err(), &ce) || ce.Code() != connect.CodeUnauthenticated || ce.Message() != expiredMsg {
				t.Fatalf("stream ended with %v after %d messages, want Unauthenticated %q", st.Err(), n, expiredMsg)
			}
			if errors.Is(st.Err(), grpcjwt.ErrExpired) {
				t.Errorf("the client's error unwraps to grpcjwt's sentinel: the cause crossed the wire")
			}
			if early := time.Until(exp); early > 50*time.Millisecond {
				t.Errorf("stream ended %v before the token expired", early)
			}
			// One message per 20 ms for 1.5 s, fewer when 18 streams
			// share 2 cores under the race detector; but the stream is
			// live until its token expires.
			if n < 3 || exp.Sub(last) > 500*time.Millisecond {
				t.Errorf("client got %d messages, the last %v before expiry; want several, up to the expiry", n, exp.Sub(last))
			}
			want := []string{expiredWWW}
			if p == "grpc" {
				want = nil // net/http sends no WWW-Authenticate trailer
			}
			if got := ce.Meta().Values("WWW-Authenticate"); !slices.Equal(got, want) {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
		})

		run(p+"/handler that ignores its context cannot send after expiry", func(t *testing.T) {
			st, _ := openOut(t, bounded, p, ctPayload("ignore-ctx"))
			n := 0
			for st.Receive() {
				n++
			}
			if code := connect.CodeOf(st.Err()); code != connect.CodeUnauthenticated {
				t.Fatalf("stream ended with %v after %d messages, want Unauthenticated", st.Err(), n)
			}
			if n == 0 || time.Until(exp) > 50*time.Millisecond {
				t.Errorf("got %d messages, stream ended %v before expiry", n, time.Until(exp))
			}
		})

		run(p+"/client stream ends at expiry", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			c := connect.NewClient[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse](bounded.client, bounded.srv.URL+ctInStream, ctProtocolOption(p))
			st := c.CallClientStream(ctx)
			withBearer(st.RequestHeader())
			// The server only receives: it learns of the expiry from Receive.
			sent := 0
			for st.Send(&testpb.StreamingInputCallRequest{}) == nil && ctx.Err() == nil {
				sent++
				time.Sleep(20 * time.Millisecond)
			}
			_, err := st.CloseAndReceive()
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated || ce.Message() != expiredMsg {
				t.Fatalf("client stream ended with %v after %d messages, want Unauthenticated %q", err, sent, expiredMsg)
			}
			if sent == 0 || time.Until(exp) > 50*time.Millisecond {
				t.Errorf("sent %d messages, stream ended %v before expiry", sent, time.Until(exp))
			}
			// Nothing was sent to the client before: the challenge gets
			// through in every protocol.
			if got := ce.Meta().Values("WWW-Authenticate"); !slices.Equal(got, []string{expiredWWW}) {
				t.Errorf("WWW-Authenticate %q, want %q", got, expiredWWW)
			}
		})

		run(p+"/bidi stream ends at expiry", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			c := connect.NewClient[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse](bounded.client, bounded.srv.URL+ctBidi, ctProtocolOption(p))
			st := c.CallBidiStream(ctx)
			withBearer(st.RequestHeader())
			// The client keeps talking; the server stops at expiry.
			var sender sync.WaitGroup
			defer func() { cancel(); sender.Wait(); st.CloseResponse() }()
			sender.Go(func() {
				defer st.CloseRequest()
				for st.Send(&testpb.StreamingOutputCallRequest{}) == nil {
					select {
					case <-ctx.Done():
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			})
			n := 0
			for {
				if _, err := st.Receive(); err != nil {
					if code := connect.CodeOf(err); code != connect.CodeUnauthenticated || errors.Is(err, io.EOF) {
						t.Fatalf("bidi ended with %v after %d messages, want Unauthenticated", err, n)
					}
					break
				}
				n++
			}
			if n == 0 {
				t.Error("client got no message before expiry")
			}
			if time.Until(exp) > 50*time.Millisecond {
				t.Error("bidi stream ended before the token expired")
			}
		})

		run(p+"/a public procedure's optional token does not bound its stream", func(t *testing.T) {
			st, _ := openOut(t, public, p, nil)
			ctRecvPastExpiry(t, st, exp, "the optional token")
		})

		run(p+"/WithStreamExpiry(false) outlives the token", func(t *testing.T) {
			st, cancel := openOut(t, unbounded, p, nil)
			ctRecvPastExpiry(t, st, exp, "the token")
			cancel() // the test's own bound
			for st.Receive() {
			}
			if code := connect.CodeOf(st.Err()); code != connect.CodeCanceled {
				t.Errorf("after cancel: %v, want Canceled", st.Err())
			}
		})
	}

	wg.Wait()
	// Each protocol's expired server stream was logged as a refusal.
	if got := len(logs.find("grpcjwt: call refused", map[string]string{"method": ctOutStream, "error": "grpcjwt: token expired: during the stream"})); got != 2*len(ctProtocols) {
		t.Errorf("%d expiries of %s logged, want %d; logs:\n%s", got, ctOutStream, 2*len(ctProtocols), logs)
	}
}

// ctRecvPastExpiry reads st until it has received five messages 200 ms or
// more after exp, failing t if the stream ends first or a message names
// another subject than whose's user-123: the stream outlives whose expiry.
func ctRecvPastExpiry(t *testing.T, st *connect.ServerStreamForClient[testpb.StreamingOutputCallResponse], exp time.Time, whose string) {
	t.Helper()
	after := 0
	for after < 5 {
		if !st.Receive() {
			t.Fatalf("stream ended with %v; want it to outlive %s", st.Err(), whose)
		}
		if sub := string(st.Msg().GetPayload().GetBody()); sub != "user-123" {
			t.Fatalf("handler saw subject %q, want %s's user-123", sub, whose)
		}
		if time.Since(exp) > 200*time.Millisecond {
			after++
		}
	}
}
