package kubeauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrRejected is wrapped by the error of a request the API server refused (401) with a fresh
// token of the provider.
var ErrRejected = errors.New("cluster token rejected")

// source is one provider's way to a bearer token for the cluster.
type source interface {
	// token returns a new token and when it stops being accepted.
	token(ctx context.Context) (string, time.Time, error)
	// identity names who the token speaks for (an ARN, an e-mail, a client id), never a
	// secret; it may ask the provider, and says what it could find when that fails.
	identity(ctx context.Context) string
	// hint says how to give that identity access to the cluster.
	hint() string
}

// tokens caches a source's token and gets a new one before it expires: at a quarter of its
// life before the end, and at least a minute before for long-lived ones (an EKS token lives 15
// minutes, Entra and Google tokens about an hour).
type tokens struct {
	src source
	now func() time.Time

	mu     sync.Mutex
	value  string
	issued time.Time
	expiry time.Time
}

func (t *tokens) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.value != "" && now.Before(t.refreshAt()) {
		return t.value, nil
	}
	value, expiry, err := t.src.token(ctx)
	if err != nil {
		return "", err
	}
	t.value, t.issued, t.expiry = value, now, expiry
	return value, nil
}

func (t *tokens) refreshAt() time.Time {
	margin := min(time.Minute, t.expiry.Sub(t.issued)/4)
	return t.expiry.Add(-margin)
}

// drop forgets value if it is still the cached token, so that the next request gets a new one.
func (t *tokens) drop(value string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.value == value {
		t.value = ""
	}
}

// bearer sets the provider's token on every request. A request the API server answers with
// 401 is sent once more with a new token (its body permitting); a second 401 is an error that
// names the provider and the identity, in place of the response.
type bearer struct {
	auth *Auth
	next http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := b.auth.tokens.get(req.Context())
	if err != nil {
		return nil, b.auth.tokenError(err)
	}
	resp, err := b.next.RoundTrip(withToken(req, tok, req.Body))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	b.auth.tokens.drop(tok)
	body := req.Body
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, nil
		}
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if tok, err = b.auth.tokens.get(req.Context()); err != nil {
		return nil, b.auth.tokenError(err)
	}
	resp, err = b.next.RoundTrip(withToken(req, tok, body))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	resp.Body.Close()
	b.auth.tokens.drop(tok)
	return nil, b.auth.rejected(req.Context(), req.URL.Host)
}

func withToken(req *http.Request, token string, body io.ReadCloser) *http.Request {
	out := req.Clone(req.Context())
	out.Body = body
	out.Header.Set("Authorization", "Bearer "+token)
	return out
}

// tokenError is the error of a token that could not be had.
func (a *Auth) tokenError(err error) error {
	return fmt.Errorf("cluster-auth %s: get a token for the cluster: %w", a.provider, err)
}

// rejected is the error of a token the API server refused although it was new: it names the
// provider and the identity, and how to give that identity access.
func (a *Auth) rejected(ctx context.Context, server string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	return fmt.Errorf("%w: the API server %s refused the %s token of %s (401 Unauthorized; cluster-auth %s, from %s); %s",
		ErrRejected, server, a.provider, a.tokens.src.identity(ctx), a.provider, a.origin, a.tokens.src.hint())
}
