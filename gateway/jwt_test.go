package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista/gateway"
)

// issuer is a local OpenID-style token issuer: it signs tokens with its
// current key and serves its public keys as a JWKS on 127.0.0.1.
type issuer struct {
	t       *testing.T
	url     string
	mu      sync.Mutex
	keys    []jwk.Key // private; the last signs
	fetches atomic.Int64
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{t: t}
	is.rotate()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		set := jwk.NewSet()
		for _, k := range is.keys {
			pub, err := k.PublicKey()
			if err != nil {
				t.Error(err)
			}
			_ = set.AddKey(pub)
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	is.url = srv.URL + "/.well-known/jwks.json"
	return is
}

// rotate adds a new signing key.
func (is *issuer) rotate() {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		is.t.Fatal(err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		is.t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	_ = k.Set(jwk.KeyIDKey, "key-"+string(rune('a'+len(is.keys))))
	_ = k.Set(jwk.AlgorithmKey, jwa.ES256())
	is.keys = append(is.keys, k)
}

// sign issues a token with the current key; edit changes its claims.
func (is *issuer) sign(edit func(*jwt.Builder) *jwt.Builder) string {
	b := jwt.NewBuilder().Issuer("https://issuer.test").Audience([]string{"purista-api"}).Subject("user-7").
		IssuedAt(time.Now()).Expiration(time.Now().Add(time.Minute)).Claim("roles", []string{"reader", "writer"})
	if edit != nil {
		b = edit(b)
	}
	tok, err := b.Build()
	if err != nil {
		is.t.Fatal(err)
	}
	is.mu.Lock()
	key := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key))
	if err != nil {
		is.t.Fatal(err)
	}
	return string(signed)
}

// TestJWTAuth: tokens verified against a local issuer's JWKS; public
// methods need none; claims reach the service as metadata; RFC 6750
// challenges on 401 and 403; a rotated key is fetched once.
func TestJWTAuth(t *testing.T) {
	is := newIssuer(t)
	cc, echo := startGRPC(t)
	svc := *echoContract()
	svc.Methods = slices.Clone(svc.Methods)
	for i, m := range svc.Methods {
		if m.Name == "Fail" {
			pm := *m
			pm.Public = true // as (purista.v1.method).public in the contract
			svc.Methods[i] = &pm
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	auth, err := gateway.NewJWTAuth(ctx, gateway.JWTConfig{
		JWKSURL: is.url, Issuer: "https://issuer.test", Audience: "purista-api", Realm: "purista",
		ForwardClaims: map[string]string{"sub": "x-user-id", "roles": "x-user-roles"},
		MinRefetch:    time.Millisecond,
		Authorize: func(_ context.Context, claims map[string]any, route gateway.Route) error {
			if route.Verb != "GET" && !slices.Contains(claimValues(claims["roles"]), "writer") {
				return status.Errorf(codes.PermissionDenied, "%s needs the writer role", route.FullMethod)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	url, _ := startGateway(t, cc, gateway.WithServices(withRoutes(&svc)), gateway.WithAuthenticator(auth))

	// No token: 401 with the bare challenge.
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`))
	expectStatus(t, r, 401)
	if h := r.Header.Get("WWW-Authenticate"); h != `Bearer realm="purista"` {
		t.Errorf("WWW-Authenticate %q", h)
	}
	// Valid: the service sees the claims, not what the client sent.
	good := is.sign(nil)
	r = do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer "+good, "X-User-Id", "mallory")
	expectStatus(t, r, 200)
	md := echo.LastMetadata()
	if v := md.Get("x-user-id"); len(v) != 1 || v[0] != "user-7" {
		t.Errorf("x-user-id metadata %v, want [user-7]", v)
	}
	if v := md.Get("x-user-roles"); strings.Join(v, ",") != "reader,writer" {
		t.Errorf("x-user-roles metadata %v, want [reader writer]", v)
	}
	// A public method: no token needed.
	expectStatus(t, do(t, "GET", url+"/v1/fail/5", nil), 404)

	invalid := map[string]string{
		"expired":        is.sign(func(b *jwt.Builder) *jwt.Builder { return b.Expiration(time.Now().Add(-time.Hour)) }),
		"wrong issuer":   is.sign(func(b *jwt.Builder) *jwt.Builder { return b.Issuer("https://evil.test") }),
		"wrong audience": is.sign(func(b *jwt.Builder) *jwt.Builder { return b.Audience([]string{"other"}) }),
		"tampered":       good[:len(good)-4] + "AAAA",
		"not a JWT":      "abc.def",
		"unsigned":       unsigned(t),
	}
	for name, tok := range invalid {
		before := is.fetches.Load()
		r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer "+tok)
		expectStatus(t, r, 401)
		if h := r.Header.Get("WWW-Authenticate"); h != `Bearer realm="purista", error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate %q", name, h)
		}
		// A token signed with a known key but with failing claims says
		// nothing of the key set: no fetch.
		if claimsFail := strings.HasPrefix(name, "expired") || strings.HasPrefix(name, "wrong"); claimsFail && is.fetches.Load() != before {
			t.Errorf("%s: the key set was fetched again", name)
		}
	}
	// Valid but not allowed: 403 insufficient_scope.
	reader := is.sign(func(b *jwt.Builder) *jwt.Builder { return b.Claim("roles", []string{"reader"}) })
	r = do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer "+reader)
	expectStatus(t, r, 403)
	if h := r.Header.Get("WWW-Authenticate"); h != `Bearer realm="purista", error="insufficient_scope"` {
		t.Errorf("403 WWW-Authenticate %q", h)
	}
	expectStatus(t, do(t, "GET", url+"/v1/sleep", nil, "Authorization", "Bearer "+reader), 200)

	// The issuer rotates its key: the first token signed with the new key
	// makes the gateway fetch the set again.
	before := is.fetches.Load()
	is.rotate()
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer "+is.sign(nil)), 200)
	if is.fetches.Load() == before {
		t.Error("a token with a new key id was accepted without fetching the key set")
	}
	// The accepted ones: two POSTs, the reader's GET, the public GET.
	if n := echo.Calls(); n != 4 {
		t.Errorf("service called %d times, want 4 (the refused requests must not reach it)", n)
	}
}

func TestJWTAuthStartErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := gateway.NewJWTAuth(ctx, gateway.JWTConfig{}); err == nil || !strings.Contains(err.Error(), "JWKSURL") {
		t.Errorf("no URL: %v", err)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if _, err := gateway.NewJWTAuth(ctx, gateway.JWTConfig{JWKSURL: dead.URL + "/jwks.json"}); err == nil || !strings.Contains(err.Error(), "issuer is reachable") {
		t.Errorf("unreachable issuer: %v", err)
	}
	if _, err := gateway.NewJWTAuth(ctx, gateway.JWTConfig{JWKSURL: "http://127.0.0.1:1/x", ForwardClaims: map[string]string{"sub": "X-User"}}); err == nil || !strings.Contains(err.Error(), "lower-case") {
		t.Errorf("upper-case metadata key: %v", err)
	}
}

// unsigned is a token with alg "none".
func unsigned(t *testing.T) string {
	tok, err := jwt.NewBuilder().Issuer("https://issuer.test").Audience([]string{"purista-api"}).Subject("root").Expiration(time.Now().Add(time.Minute)).Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(s []byte) string { return strings.TrimRight(b64(s), "=") }
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(b) + "."
}

func claimValues(v any) []string {
	var out []string
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = v
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
