package grpcjwt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// getCapped GETs u within the fetch timeout and returns the body of a 200
// answer, refusing one larger than the body cap. what names the document
// in error texts, which never include the URL (url.Error would).
func getCapped(ctx context.Context, o keysetOptions, u, accept, what string) (body []byte, header http.Header, status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("grpcjwt: cannot build the %s request", what)
	}
	req.Header.Set("Accept", accept)
	resp, err := o.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL from the text
		}
		return nil, nil, 0, fmt.Errorf("grpcjwt: %s request failed: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, resp.StatusCode, fmt.Errorf("grpcjwt: %s endpoint answered HTTP %d", what, resp.StatusCode)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, o.maxBodyBytes+1))
	if err != nil {
		return nil, nil, resp.StatusCode, fmt.Errorf("grpcjwt: reading the %s response failed: %w", what, err)
	}
	if int64(len(body)) > o.maxBodyBytes {
		return nil, nil, resp.StatusCode, fmt.Errorf("grpcjwt: %s response larger than %d bytes", what, o.maxBodyBytes)
	}
	return body, resp.Header, resp.StatusCode, nil
}
