package grpcjwt

import (
	"context"
	"encoding/json"
	"fmt"
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
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("grpcjwt: Discover: the issuer %s is not an absolute http or https URL without query or fragment", quoted(issuer))
	}
	for _, suffix := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		// The test and the cut are both made on the decoded path: the raw
		// string may spell the suffix with escapes (%2E, %2F).
		if i := strings.Index(u.Path, suffix); i >= 0 {
			base := *u
			base.Path, base.RawPath = strings.TrimSuffix(u.Path[:i], "/"), ""
			return nil, fmt.Errorf("grpcjwt: Discover: %s is a metadata URL; pass the issuer itself, %s",
				quoted(issuer), quoted(base.String()))
		}
	}
	o, err := buildKeysetOptions(opts)
	if err != nil {
		return nil, err
	}
	oidcURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	rfc8414 := *u
	rfc8414.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	rfc8414.RawPath = ""

	docURL := oidcURL
	doc, _, status, err := getCapped(ctx, o, oidcURL, "application/json", "metadata")
	if err != nil && status == http.StatusNotFound {
		docURL = rfc8414.String()
		var status2 int
		doc, _, status2, err = getCapped(ctx, o, docURL, "application/json", "metadata")
		if err != nil && status2 == http.StatusNotFound {
			err = notAnIssuer(ctx, o, issuer, oidcURL, docURL)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("grpcjwt: Discover: %w", err)
	}
	var m struct {
		Issuer  *string  `json:"issuer"`
		JWKSURI *string  `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("grpcjwt: Discover: the metadata document at %s is not a JSON object of the expected types", redacted(docURL))
	}
	if m.Issuer == nil {
		return nil, fmt.Errorf("grpcjwt: Discover: the metadata document at %s has no issuer", redacted(docURL))
	}
	if *m.Issuer != issuer {
		return nil, fmt.Errorf("grpcjwt: Discover: the metadata document at %s names the issuer %s, not the configured %s; "+
			"they must match exactly%s", redacted(docURL), quoted(*m.Issuer), quoted(issuer), issuerHint(*m.Issuer, issuer))
	}
	if m.JWKSURI == nil {
		return nil, fmt.Errorf("grpcjwt: Discover: the metadata document at %s has no jwks_uri", redacted(docURL))
	}
	ju, err := url.Parse(*m.JWKSURI)
	if err != nil || (ju.Scheme != "https" && ju.Scheme != "http") || ju.Hostname() == "" {
		return nil, fmt.Errorf("grpcjwt: Discover: the jwks_uri %s of the metadata document at %s is not an absolute http or https URL", quoted(*m.JWKSURI), redacted(docURL))
	}
	if u.Scheme == "https" && ju.Scheme != "https" {
		return nil, fmt.Errorf("grpcjwt: Discover: the https issuer %s advertises the plain-http jwks_uri %s", quoted(issuer), quoted(*m.JWKSURI))
	}
	md := &ProviderMetadata{Issuer: issuer, JWKSURI: *m.JWKSURI}
	for _, name := range m.Algs {
		if parseAlg(name) != algInvalid {
			md.SigningAlgorithms = append(md.SigningAlgorithms, name)
		}
	}
	return md, nil
}

// issuerHint names the usual cause of an issuer mismatch, if it is one.
func issuerHint(doc, configured string) string {
	switch {
	case strings.TrimSuffix(doc, "/") == strings.TrimSuffix(configured, "/"):
		return " (the trailing slash differs: use the document's spelling, as the tokens' iss has it)"
	case strings.TrimPrefix(doc, "https://") == strings.TrimPrefix(configured, "http://"),
		strings.TrimPrefix(doc, "http://") == strings.TrimPrefix(configured, "https://"):
		return " (the scheme differs: a provider behind a proxy may announce http; fix its public URL setting)"
	}
	return ""
}

// notAnIssuer is Discover's error when neither metadata location exists.
// It looks at the URL itself: a JWK Set URL given in place of an issuer
// gets a hint saying so.
func notAnIssuer(ctx context.Context, o keysetOptions, issuer, oidcURL, rfc8414URL string) error {
	err := fmt.Errorf("no metadata document at %s or %s (HTTP 404): is %s the issuer, as the tokens' iss spells it?",
		redacted(oidcURL), redacted(rfc8414URL), quoted(issuer))
	body, _, _, gerr := getCapped(ctx, o, issuer, "application/json", "issuer")
	if gerr != nil {
		return err
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(body, &set) == nil && set.Keys != nil {
		return fmt.Errorf("%s is a JWK Set URL, not an issuer: pass it to NewRemoteKeyset (with WithIssuer), or give NewIssuerKeyset the issuer", quoted(issuer))
	}
	return err
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
