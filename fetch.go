package grpcjwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// maxRedirects bounds the redirects a JWKS or metadata fetch follows.
const maxRedirects = 5

// noDowngradeClient returns a copy of c that refuses a redirect from https
// to any other scheme, so that a 30x cannot turn an https JWKS or metadata
// URL into a plain-http one (the check that an https issuer may not name an
// http jwks_uri would mean nothing otherwise), and follows at most
// maxRedirects. Redirects that keep https (or start from http) are
// followed, as http.Client does, after c's own CheckRedirect allows them.
func noDowngradeClient(c *http.Client) *http.Client {
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		for _, prev := range via {
			if prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("refused a redirect from https to %s (%s)", req.URL.Scheme, req.URL.Redacted())
			}
		}
		if len(via) > maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &cc
}

// noAnswer wraps the error of a request that got no HTTP answer (the
// connection failed or timed out), which errors.As finds.
type noAnswer struct{ err error }

func (e noAnswer) Error() string { return e.err.Error() }
func (e noAnswer) Unwrap() error { return e.err }

// getCapped GETs u within the fetch timeout and returns the body of a 200
// answer, refusing one larger than the body cap. what names the document
// in error texts, which name u as well: they reach the operator (the
// constructors' errors, the keyset's log), while the errors a token's
// verification returns hide them (see opaqueFetchError).
func getCapped(ctx context.Context, o keysetOptions, u, accept, what string) (body []byte, header http.Header, status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.fetchTimeout)
	defer cancel()
	shown := redacted(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("grpcjwt: cannot build the %s request for %s", what, shown)
	}
	req.Header.Set("Accept", accept)
	resp, err := o.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named below, once
		}
		return nil, nil, 0, fmt.Errorf("grpcjwt: %s request to %s failed: %w", what, shown, noAnswer{err})
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, resp.StatusCode, fmt.Errorf("grpcjwt: %s endpoint %s answered HTTP %d", what, shown, resp.StatusCode)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, o.maxBodyBytes+1))
	if err != nil {
		return nil, nil, resp.StatusCode, fmt.Errorf("grpcjwt: reading the %s response of %s failed: %w", what, shown, err)
	}
	if int64(len(body)) > o.maxBodyBytes {
		return nil, nil, resp.StatusCode, fmt.Errorf("grpcjwt: %s response of %s larger than %d bytes", what, shown, o.maxBodyBytes)
	}
	return body, resp.Header, resp.StatusCode, nil
}
