package keycloak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Admin is Keycloak's admin REST API, as the master realm's admin. It logs in once (the
// admin-cli client, password grant), finds whether the server serves its API under /auth
// (Keycloak up to 16) and sends every call the same way: a call answered 401 logs in again
// once (an access token lives a minute by default), and a call that could not reach Keycloak
// or that Keycloak answered 429, 502, 503 or 504 is sent again after a pause, up to Attempts
// times. Sessions, realms, serverinfo and the realm exports all go through it.
type Admin struct {
	// BaseURL is the `keycloak-url` input: Keycloak's root URL, with or without /auth.
	BaseURL string
	// User and Password are `keycloak-admin-user` and `keycloak-admin-password`, an admin of
	// the master realm.
	User, Password string
	// HTTP is the client to use; nil means one with a 30 s timeout per request.
	HTTP *http.Client
	// Attempts is how many times a call is sent when Keycloak cannot be reached or is
	// unavailable; 0 means 3. Pause is the wait before the second, doubled before each next
	// one; 0 means 500 ms.
	Attempts int
	Pause    time.Duration
	Log      *slog.Logger

	mu    sync.Mutex
	base  string // the base that answered the login: BaseURL or BaseURL+"/auth"
	token string
}

// maxBody bounds what is read of an admin API response: a realm's partial export with its
// clients, groups and roles is the largest.
const maxBody = 64 << 20

// ErrAdminInput marks an admin API call refused before it was sent: keycloak-url or the admin
// credentials are missing or malformed.
var ErrAdminInput = errors.New("keycloak admin API inputs")

func (a *Admin) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (a *Admin) client() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Configured reports whether the admin API inputs are given (keycloak-url and both
// credentials); what needs the API is skipped without them.
func (a *Admin) Configured() bool {
	return a != nil && strings.TrimSpace(a.BaseURL) != "" && a.User != "" && a.Password != ""
}

// checkedURL checks the keycloak-url input and returns it without a trailing slash.
func (a *Admin) checkedURL() (string, error) {
	raw := strings.TrimSpace(a.BaseURL)
	if raw == "" {
		return "", fmt.Errorf("%w: keycloak-url is empty: the admin API needs it", ErrAdminInput)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: keycloak-url %q: %w", ErrAdminInput, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: keycloak-url %q: want an http:// or https:// URL with a host", ErrAdminInput, raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("%w: keycloak-url must not carry credentials: use keycloak-admin-user and keycloak-admin-password", ErrAdminInput)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: keycloak-url %q: want no query or fragment", ErrAdminInput, raw)
	}
	if a.User == "" || a.Password == "" {
		return "", fmt.Errorf("%w: keycloak-admin-user and keycloak-admin-password are needed for the admin API", ErrAdminInput)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// session returns the base and token of the current login, logging in first when there is
// none (or when stale is the token that was refused).
func (a *Admin) session(ctx context.Context, stale string) (base, token string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && a.token != stale {
		return a.base, a.token, nil
	}
	base, err = a.checkedURL()
	if err != nil {
		return "", "", err
	}
	if a.base != "" {
		base = a.base
	}
	a.base, a.token, err = a.login(ctx, base)
	return a.base, a.token, err
}

// login logs in to the master realm. When base has no /auth and the token endpoint is not
// found there, it tries base+"/auth", where Keycloak up to 16 serves it, and returns the
// base that answered.
func (a *Admin) login(ctx context.Context, base string) (string, string, error) {
	bases := []string{base}
	if !strings.HasSuffix(base, "/auth") {
		bases = append(bases, base+"/auth")
	}
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {"admin-cli"},
		"username":   {a.User},
		"password":   {a.Password},
	}.Encode()
	var tried []string
	for _, b := range bases {
		u := b + "/realms/master/protocol/openid-connect/token"
		resp, err := a.send(ctx, http.MethodPost, u, "", []byte(form), "application/x-www-form-urlencoded")
		if err != nil {
			return "", "", fmt.Errorf("log in to Keycloak (keycloak-url %s): %w", base, err)
		}
		tried = append(tried, u)
		switch {
		case resp.code == http.StatusNotFound:
			continue
		case resp.code == http.StatusUnauthorized || resp.code == http.StatusBadRequest:
			return "", "", fmt.Errorf("log in to Keycloak at %s as %q: %s: check keycloak-admin-user and keycloak-admin-password (an admin of the master realm)",
				b, a.User, a.status(resp))
		case resp.code/100 != 2:
			return "", "", fmt.Errorf("log in to Keycloak at %s as %q: %s", b, a.User, a.status(resp))
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(resp.body, &tok); err != nil || tok.AccessToken == "" {
			return "", "", fmt.Errorf("log in to Keycloak at %s: the token endpoint answered %d without an access_token: is keycloak-url Keycloak's root URL?", b, resp.code)
		}
		if b != base {
			a.log().Info("Keycloak serves its API under /auth (Keycloak 16 or older)", "keycloak-url", base, "using", b)
		}
		return b, tok.AccessToken, nil
	}
	return "", "", fmt.Errorf("keycloak-url %s: no Keycloak token endpoint found (404 from %s): is it Keycloak's root URL?", base, strings.Join(tried, " and "))
}

// response is an admin API answer, its body read (bounded) and closed.
type response struct {
	code   int
	status string
	body   []byte
}

// call sends an admin API request to path (under the base, e.g. "/admin/realms") as the
// logged-in admin, logging in again once when the token is refused. A body is sent as JSON.
func (a *Admin) call(ctx context.Context, method, path string, body []byte) (response, error) {
	base, token, err := a.session(ctx, "")
	if err != nil {
		return response{}, err
	}
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	resp, err := a.send(ctx, method, base+path, token, body, contentType)
	if err == nil && resp.code == http.StatusUnauthorized {
		a.log().Info("Keycloak refused the admin token; logging in again", "path", path)
		if base, token, err = a.session(ctx, token); err != nil {
			return response{}, err
		}
		resp, err = a.send(ctx, method, base+path, token, body, contentType)
	}
	return resp, err
}

// getJSON reads path into v; what is not a 2xx answer is an error saying what was asked.
func (a *Admin) getJSON(ctx context.Context, what, path string, v any) error {
	resp, err := a.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.code/100 != 2 {
		return fmt.Errorf("%s: %s", what, a.status(resp))
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// send sends one request, again when Keycloak could not be reached or was unavailable.
func (a *Admin) send(ctx context.Context, method, u, token string, body []byte, contentType string) (response, error) {
	attempts := a.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	pause := a.Pause
	if pause <= 0 {
		pause = 500 * time.Millisecond
	}
	for attempt := 1; ; attempt++ {
		resp, err := a.sendOnce(ctx, method, u, token, body, contentType)
		retry := err != nil || resp.code == http.StatusTooManyRequests || resp.code == http.StatusBadGateway ||
			resp.code == http.StatusServiceUnavailable || resp.code == http.StatusGatewayTimeout
		if !retry || attempt >= attempts || ctx.Err() != nil {
			return resp, err
		}
		why := resp.status
		if err != nil {
			why = err.Error()
		}
		a.log().Info("Keycloak's admin API did not answer; trying again", "url", u, "attempt", attempt, "pause", pause, "why", why)
		select {
		case <-ctx.Done():
			return resp, errors.Join(err, context.Cause(ctx))
		case <-time.After(pause):
		}
		pause *= 2
	}
}

func (a *Admin) sendOnce(ctx context.Context, method, u, token string, body []byte, contentType string) (response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.client().Do(req)
	if err != nil {
		// *url.Error carries the URL (never a credential here: they travel in the body and
		// headers), the method and the cause.
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read the answer: %w", method, u, err)
	}
	if len(data) > maxBody {
		return response{}, fmt.Errorf("%s %s: the answer exceeds %d MiB", method, u, maxBody>>20)
	}
	return response{code: resp.StatusCode, status: resp.Status, body: data}, nil
}

// status describes a failed answer: its status and Keycloak's error fields, never the body as
// a whole, with the password removed should Keycloak ever echo it.
func (a *Admin) status(resp response) string {
	msg := resp.status
	if msg == "" {
		msg = fmt.Sprintf("%d %s", resp.code, http.StatusText(resp.code))
	}
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorMessage     string `json:"errorMessage"`
	}
	if json.Unmarshal(resp.body, &e) == nil {
		for _, f := range []string{e.Error, e.ErrorDescription, e.ErrorMessage} {
			if f != "" {
				msg += ": " + truncate(f, 200)
			}
		}
	}
	if a.Password != "" {
		msg = strings.ReplaceAll(msg, a.Password, "***")
	}
	return msg
}

// Base is the URL the admin API answered at (BaseURL, or BaseURL with /auth), after a call;
// "" before.
func (a *Admin) Base() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
