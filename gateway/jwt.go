package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// JWTConfig configures JWTAuth: bearer tokens that are JSON Web Tokens
// signed by a key of the issuer's JSON Web Key Set.
type JWTConfig struct {
	// JWKSURL is where the issuer publishes its keys (required), e.g.
	// https://issuer.example/.well-known/jwks.json. The set is fetched at
	// start, refreshed in the background as its HTTP caching headers
	// allow (at most every MaxRefresh), and refetched when a token names
	// a key id the set lacks (a rotated key), at most every
	// MinRefetch.
	JWKSURL string
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string
	Audience string
	// Realm names the protection space in WWW-Authenticate challenges.
	Realm string
	// ForwardClaims maps claim names to the gRPC metadata keys the call
	// carries them under, e.g. {"sub": "x-user-id"}. A list claim gives
	// one value per element; a missing claim no key. Forwarded keys
	// replace any value an HTTP client sent under the same name.
	ForwardClaims map[string]string
	// Authorize, when set, decides whether a verified token may call the
	// route: an error with codes.PermissionDenied is answered 403 with
	// error="insufficient_scope"; claims are every claim of the token.
	Authorize func(ctx context.Context, claims map[string]any, route Route) error
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30 s).
	Leeway time.Duration
	// HTTPClient fetches the key set (default: jwx's client, with
	// timeouts and no redirects to other hosts).
	HTTPClient *http.Client
	// MinRefetch bounds refetches for unknown key ids (default 10 s);
	// MaxRefresh how stale the set may get (default 15 min).
	MinRefetch, MaxRefresh time.Duration
}

// JWTAuth is an Authenticator for JSON Web Tokens in "Authorization:
// Bearer", verified with lestrrat-go/jwx against the issuer's JWKS.
// Routes whose contract marks the method public skip it (the gateway does
// not call an Authenticator for them). Failures follow RFC 6750: 401 with
// `WWW-Authenticate: Bearer realm="…"` for a missing token, 401 with
// error="invalid_token" for one that fails verification (bad signature,
// unknown key, expired, wrong issuer or audience), 403 with
// error="insufficient_scope" when Authorize refuses.
type JWTAuth struct {
	cfg   JWTConfig
	cache *jwk.Cache
	set   jwk.CachedSet
	stop  context.CancelFunc
	auth  Authenticator
	// parseOpts and forward follow from cfg, made once: the options a
	// token is checked with, and ForwardClaims by claim name.
	parseOpts []jwt.ParseOption
	forward   []forwardClaim

	mu          sync.Mutex
	lastRefetch time.Time
}

// NewJWTAuth fetches the key set once, so that a wrong URL or an issuer
// that is down is an error at start, and keeps it fresh until ctx ends or
// Close is called.
func NewJWTAuth(ctx context.Context, cfg JWTConfig) (*JWTAuth, error) {
	if cfg.JWKSURL == "" {
		return nil, errors.New("gateway: JWTConfig.JWKSURL is empty: give the URL of the issuer's JSON Web Key Set")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.MinRefetch == 0 {
		cfg.MinRefetch = 10 * time.Second
	}
	if cfg.MaxRefresh == 0 {
		cfg.MaxRefresh = 15 * time.Minute
	}
	for claim, key := range cfg.ForwardClaims {
		if key == "" || key != strings.ToLower(key) || strings.HasSuffix(key, "-bin") {
			return nil, fmt.Errorf("gateway: ForwardClaims[%q] = %q: use a lower-case metadata key without the -bin suffix, e.g. x-user-id", claim, key)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cache, err := jwk.NewCache(cctx, httprc.NewClient())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("gateway: JWKS cache: %w", err)
	}
	opts := []jwk.RegisterOption{jwk.WithMaxInterval(cfg.MaxRefresh), jwk.WithMinInterval(min(cfg.MinRefetch, cfg.MaxRefresh))}
	if cfg.HTTPClient != nil {
		opts = append(opts, jwk.WithHTTPClient(cfg.HTTPClient))
	}
	// One plain fetch first: the cache would retry an unreachable URL
	// until ctx ends, and its error would say only that.
	fctx, fcancel := context.WithTimeout(cctx, 10*time.Second)
	var fopts []jwk.FetchOption
	if cfg.HTTPClient != nil {
		fopts = append(fopts, jwk.WithHTTPClient(cfg.HTTPClient))
	}
	_, err = jwk.Fetch(fctx, cfg.JWKSURL, fopts...)
	fcancel()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("gateway: fetch the JWKS at %s: %w (check the URL and that the issuer is reachable)", cfg.JWKSURL, err)
	}
	if err := cache.Register(cctx, cfg.JWKSURL, opts...); err != nil {
		cancel()
		return nil, fmt.Errorf("gateway: fetch the JWKS at %s: %w (check the URL and that the issuer is reachable)", cfg.JWKSURL, err)
	}
	set, err := cache.CachedSet(cfg.JWKSURL)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("gateway: JWKS at %s: %w", cfg.JWKSURL, err)
	}
	a := &JWTAuth{cfg: cfg, cache: cache, set: set, stop: cancel}
	a.parseOpts = []jwt.ParseOption{jwt.WithKeySet(set), jwt.WithAcceptableSkew(cfg.Leeway)}
	if cfg.Issuer != "" {
		a.parseOpts = append(a.parseOpts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		a.parseOpts = append(a.parseOpts, jwt.WithAudience(cfg.Audience))
	}
	for claim, key := range cfg.ForwardClaims {
		a.forward = append(a.forward, forwardClaim{claim, key})
	}
	slices.SortFunc(a.forward, func(x, y forwardClaim) int { return strings.Compare(x.claim, y.claim) })
	a.auth = BearerAuth(cfg.Realm, a.verify)
	return a, nil
}

// Close stops refreshing the key set.
func (a *JWTAuth) Close() error {
	a.stop()
	return nil
}

// Authenticate implements Authenticator.
func (a *JWTAuth) Authenticate(r *http.Request, route Route) (context.Context, error) {
	return a.auth.Authenticate(r, route)
}

func (a *JWTAuth) verify(ctx context.Context, token string, route Route) (context.Context, error) {
	tok, err := a.parse(token)
	if err != nil && !errors.Is(err, jwt.ValidateError()) && a.refetch(ctx) {
		// A key the set lacks may be a new one: the issuer rotated. A
		// token whose signature held but whose claims failed (expired,
		// another issuer or audience) gains nothing from new keys.
		tok, err = a.parse(token)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "invalid bearer token: %v", err)
	}
	if a.cfg.Authorize != nil {
		claims := make(map[string]any, len(tok.Keys()))
		for _, k := range tok.Keys() {
			var v any
			if tok.Get(k, &v) == nil {
				claims[k] = v
			}
		}
		if err := a.cfg.Authorize(ctx, claims, route); err != nil {
			st, ok := status.FromError(err)
			if !ok {
				st = status.New(codes.PermissionDenied, err.Error())
			}
			if st.Code() == codes.PermissionDenied {
				return nil, &AuthError{Status: st, Challenge: bearerChallenge(a.cfg.Realm, `error="insufficient_scope"`)}
			}
			return nil, err
		}
	}
	var kv []string
	for _, f := range a.forward {
		var v any
		if tok.Get(f.claim, &v) != nil {
			continue
		}
		for _, s := range claimValues(v) {
			kv = append(kv, f.key, s)
		}
	}
	if len(kv) == 0 {
		return ctx, nil
	}
	return metadata.AppendToOutgoingContext(ctx, kv...), nil
}

func (a *JWTAuth) parse(token string) (jwt.Token, error) {
	return jwt.ParseString(token, a.parseOpts...)
}

// forwardClaim is one of JWTConfig.ForwardClaims: a claim and the metadata
// key it is forwarded as.
type forwardClaim struct{ claim, key string }

// refetch refreshes the key set unless that happened less than
// MinRefetch ago; it reports whether it did.
func (a *JWTAuth) refetch(ctx context.Context) bool {
	a.mu.Lock()
	if time.Since(a.lastRefetch) < a.cfg.MinRefetch {
		a.mu.Unlock()
		return false
	}
	a.lastRefetch = time.Now()
	a.mu.Unlock()
	_, err := a.cache.Refresh(ctx, a.cfg.JWKSURL)
	return err == nil
}

// claimValues renders a claim as metadata values.
func claimValues(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []string:
		return v
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, claimValues(e)...)
		}
		return out
	case time.Time:
		return []string{v.UTC().Format(time.RFC3339)}
	default:
		return []string{fmt.Sprint(v)}
	}
}
