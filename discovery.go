package grpcjwt

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// ProviderMetadata is the part of an issuer's metadata document (OpenID
// Connect Discovery 1.0 §3, RFC 8414 §2) that grpcjwt uses.
type ProviderMetadata struct {
	// Issuer is the document's "issuer", equal to the URL asked for.
	Issuer string
	// JWKSURI is "jwks_uri", where the issuer publishes its keys.
	JWKSURI string
	// SigningAlgorithms are the algorithms of
	// "id_token_signing_alg_values_supported" that grpcjwt supports, for
	// information only: they describe ID tokens, and an issuer may sign
	// its access tokens with other keys and algorithms (Ory Hydra keeps a
	// key set of its own for them). A verifier built on
	// [NewIssuerKeyset] therefore does not narrow its algorithms to this
	// list; each published key is bound to its own algorithm already.
	SigningAlgorithms []string
}

// Discover fetches the metadata of issuer from
// issuer + "/.well-known/openid-configuration", falling back to the RFC
// 8414 location "/.well-known/oauth-authorization-server" (inserted between
// host and path, as RFC 8414 §3.1 places it) when the first answers 404.
//
// The document's "issuer" must equal issuer exactly (OIDC Discovery §4.3,
// RFC 8414 §3.3), or Discover fails: this is what stops a document served
// at one address from speaking for another issuer. The keyset options
// WithHTTPClient, WithFetchTimeout and WithMaxBodySize apply to the fetch;
// ctx bounds it.
func Discover(ctx context.Context, issuer string, opts ...KeysetOption) (*ProviderMetadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("grpcjwt: Discover: the issuer must be an absolute http or https URL without query or fragment")
	}
	o, err := buildKeysetOptions(opts)
	if err != nil {
		return nil, err
	}
	oidcURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	rfc8414 := *u
	rfc8414.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	rfc8414.RawPath = ""

	doc, _, status, err := getCapped(ctx, o, oidcURL, "application/json", "metadata")
	if err != nil && status == http.StatusNotFound {
		doc, _, _, err = getCapped(ctx, o, rfc8414.String(), "application/json", "metadata")
	}
	if err != nil {
		return nil, err
	}
	var m struct {
		Issuer  *string  `json:"issuer"`
		JWKSURI *string  `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, errors.New("grpcjwt: Discover: the metadata document is not a JSON object of the expected types")
	}
	if m.Issuer == nil || *m.Issuer != issuer {
		return nil, errors.New("grpcjwt: Discover: the document's issuer differs from the configured issuer")
	}
	if m.JWKSURI == nil {
		return nil, errors.New("grpcjwt: Discover: the document has no jwks_uri")
	}
	ju, err := url.Parse(*m.JWKSURI)
	if err != nil || (ju.Scheme != "https" && ju.Scheme != "http") || ju.Host == "" {
		return nil, errors.New("grpcjwt: Discover: jwks_uri is not an absolute http or https URL")
	}
	if u.Scheme == "https" && ju.Scheme != "https" {
		return nil, errors.New("grpcjwt: Discover: an https issuer advertises a plain-http jwks_uri")
	}
	md := &ProviderMetadata{Issuer: issuer, JWKSURI: *m.JWKSURI}
	for _, name := range m.Algs {
		if parseAlg(name) != algInvalid {
			md.SigningAlgorithms = append(md.SigningAlgorithms, name)
		}
	}
	return md, nil
}

// NewIssuerKeyset discovers issuer's metadata with [Discover] and returns a
// remote keyset for its jwks_uri, as [NewRemoteKeyset] would. A [Verifier]
// built on it trusts that issuer when no [WithIssuer] is given.
//
// The verifier's algorithms are not narrowed to the ones the metadata
// advertises for ID tokens: an identity provider that starts signing
// access tokens with a key of a new algorithm (a routine rotation) must not
// take the API down. A token's algorithm must still fit the published key
// its "kid" names; [WithAlgorithms] narrows the list explicitly. ctx bounds
// the discovery and the first fetch.
func NewIssuerKeyset(ctx context.Context, issuer string, opts ...KeysetOption) (*Keyset, error) {
	md, err := Discover(ctx, issuer, opts...)
	if err != nil {
		return nil, err
	}
	ks, err := NewRemoteKeyset(ctx, md.JWKSURI, opts...)
	if err != nil {
		return nil, err
	}
	ks.issuer = md.Issuer
	return ks, nil
}
