package connectjwt

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"

	"github.com/grpcjwt/grpcjwt"
)

// errStreamExpired is the cause of a stream context cancelled at its
// token's expiry, and the refusal Send and Receive fail with from then on
// (the call itself ends with the one Authorizer.StreamExpired returns).
var errStreamExpired = &grpcjwt.Refusal{Code: codes.Unauthenticated, Message: "token expired during the stream", Err: grpcjwt.ErrExpired}

// expiringConn refuses to send or receive once the token has expired, as
// grpcjwt's grpc-go stream wrapper does. A handler blocked in Receive when
// the token expires returns at the next message from the client or when
// the client ends the stream; the message received after expiry is
// dropped.
type expiringConn struct {
	connect.StreamingHandlerConn
	ctx context.Context
}

// errExpiredConn returns the error of Send and Receive after expiry.
func errExpiredConn() error {
	ce, _ := refusalError(errStreamExpired)
	return ce
}

func (c *expiringConn) expired() bool {
	return context.Cause(c.ctx) == errStreamExpired
}

func (c *expiringConn) Send(msg any) error {
	if c.expired() {
		return errExpiredConn()
	}
	return c.StreamingHandlerConn.Send(msg)
}

func (c *expiringConn) Receive(msg any) error {
	if c.expired() {
		return errExpiredConn()
	}
	err := c.StreamingHandlerConn.Receive(msg)
	if c.expired() {
		return errExpiredConn()
	}
	return err
}
