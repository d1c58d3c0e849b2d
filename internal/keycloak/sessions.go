package keycloak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var _ rollout.Sessions = Sessions{}

// Sessions logs out the users' sessions through Keycloak's admin REST API (the vendor's
// first step: Manage > Sessions > Logout all), as the master realm's admin.
type Sessions struct {
	// BaseURL is the `keycloak-url` input: Keycloak's root URL. Keycloak up to 16 (Identity
	// Service 1.x) serves everything under /auth; the URL may name it or not.
	BaseURL string
	// User and Password are `keycloak-admin-user` and `keycloak-admin-password`, an admin of
	// the master realm.
	User, Password string
	// Realms is the `realms` input: empty or "all" for every realm, otherwise realm names.
	Realms []string
	// HTTP is the client to use; nil means one with a 30 s timeout per request.
	HTTP *http.Client
	Log  *slog.Logger
}

// maxBody bounds what is read of any admin API response.
const maxBody = 1 << 20

func (s Sessions) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (s Sessions) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// LogoutAll logs out every session of the configured realms (POST
// /admin/realms/{realm}/logout-all) and returns how many realms it logged out, also together
// with an error.
func (s Sessions) LogoutAll(ctx context.Context) (int, error) {
	base, err := s.baseURL()
	if err != nil {
		return 0, err
	}
	realms, err := s.realmNames()
	if err != nil {
		return 0, err
	}
	base, token, err := s.token(ctx, base)
	if err != nil {
		return 0, err
	}
	if realms == nil {
		if realms, err = s.allRealms(ctx, base, token); err != nil {
			return 0, err
		}
	}
	done := 0
	for _, realm := range realms {
		u := base + "/admin/realms/" + url.PathEscape(realm) + "/logout-all"
		resp, err := s.do(ctx, http.MethodPost, u, token, nil)
		if err != nil {
			return done, fmt.Errorf("log out the sessions of realm %q: %w", realm, err)
		}
		body := readBody(resp)
		switch {
		case resp.StatusCode/100 == 2:
		case resp.StatusCode == http.StatusNotFound:
			return done, fmt.Errorf("log out the sessions of realm %q: Keycloak at %s (keycloak-url) has no such realm (404): check the `realms` input", realm, base)
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return done, fmt.Errorf("log out the sessions of realm %q: %s: keycloak-admin-user %q may not manage that realm", realm, s.status(resp, body), s.User)
		default:
			return done, fmt.Errorf("log out the sessions of realm %q: %s", realm, s.status(resp, body))
		}
		done++
		s.log().Info("logged out all sessions", "realm", realm)
	}
	return done, nil
}

// baseURL checks the keycloak-url input and returns it without a trailing slash.
func (s Sessions) baseURL() (string, error) {
	raw := strings.TrimSpace(s.BaseURL)
	if raw == "" {
		return "", errors.New("keycloak-url is empty: it is needed to log out the sessions")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("keycloak-url %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("keycloak-url %q: want an http:// or https:// URL with a host", raw)
	}
	if u.User != nil {
		return "", errors.New("keycloak-url must not carry credentials: use keycloak-admin-user and keycloak-admin-password")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("keycloak-url %q: want no query or fragment", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// token logs in to the master realm with the admin-cli client (resource owner password
// grant). When base has no /auth and the token endpoint is not found, it tries base+"/auth",
// where Keycloak up to 16 serves it, and returns the base that answered.
func (s Sessions) token(ctx context.Context, base string) (string, string, error) {
	if s.User == "" || s.Password == "" {
		return "", "", errors.New("keycloak-admin-user and keycloak-admin-password are needed to log out the sessions")
	}
	bases := []string{base}
	if !strings.HasSuffix(base, "/auth") {
		bases = append(bases, base+"/auth")
	}
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {"admin-cli"},
		"username":   {s.User},
		"password":   {s.Password},
	}.Encode()
	var tried []string
	for _, b := range bases {
		u := b + "/realms/master/protocol/openid-connect/token"
		resp, err := s.do(ctx, http.MethodPost, u, "", strings.NewReader(form))
		if err != nil {
			return "", "", fmt.Errorf("log in to Keycloak (keycloak-url %s): %w", base, err)
		}
		body := readBody(resp)
		tried = append(tried, u)
		switch {
		case resp.StatusCode == http.StatusNotFound:
			continue
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusBadRequest:
			return "", "", fmt.Errorf("log in to Keycloak at %s as %q: %s: check keycloak-admin-user and keycloak-admin-password (an admin of the master realm)",
				b, s.User, s.status(resp, body))
		case resp.StatusCode/100 != 2:
			return "", "", fmt.Errorf("log in to Keycloak at %s as %q: %s", b, s.User, s.status(resp, body))
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
			return "", "", fmt.Errorf("log in to Keycloak at %s: the token endpoint answered %d without an access_token: is keycloak-url Keycloak's root URL?", b, resp.StatusCode)
		}
		if b != base {
			s.log().Info("Keycloak serves its API under /auth (Keycloak 16 or older)", "keycloak-url", base, "using", b)
		}
		return b, tok.AccessToken, nil
	}
	return "", "", fmt.Errorf("keycloak-url %s: no Keycloak token endpoint found (404 from %s): is it Keycloak's root URL?", base, strings.Join(tried, " and "))
}

// realmNames reads the realms input: the names given, or nil for every realm.
func (s Sessions) realmNames() ([]string, error) {
	var named []string
	for _, r := range s.Realms {
		if r = strings.TrimSpace(r); r != "" {
			named = append(named, r)
		}
	}
	if len(named) > 1 {
		for _, r := range named {
			if strings.EqualFold(r, "all") {
				return nil, fmt.Errorf("realms %q: \"all\" cannot be combined with realm names", strings.Join(named, ","))
			}
		}
	}
	if len(named) == 0 || (len(named) == 1 && strings.EqualFold(named[0], "all")) {
		return nil, nil
	}
	return named, nil
}

// allRealms lists every realm of the server.
func (s Sessions) allRealms(ctx context.Context, base, token string) ([]string, error) {
	resp, err := s.do(ctx, http.MethodGet, base+"/admin/realms", token, nil)
	if err != nil {
		return nil, fmt.Errorf("list the realms: %w", err)
	}
	body := readBody(resp)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("list the realms of Keycloak at %s: %s", base, s.status(resp, body))
	}
	var list []struct {
		Realm string `json:"realm"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("list the realms of Keycloak at %s: %w", base, err)
	}
	var all []string
	for _, r := range list {
		if r.Realm != "" {
			all = append(all, r.Realm)
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("list the realms of Keycloak at %s: none returned", base)
	}
	return all, nil
}

func (s Sessions) do(ctx context.Context, method, u, token string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client().Do(req)
	if err != nil {
		// *url.Error carries the URL (never a credential here: they travel in the body and
		// headers), the method and the cause.
		return nil, err
	}
	return resp, nil
}

// readBody reads (a bounded part of) a response body and closes it.
func readBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return b
}

// status describes a failed response: its status and Keycloak's error fields, never the
// body as a whole, with the password removed should Keycloak ever echo it.
func (s Sessions) status(resp *http.Response, body []byte) string {
	msg := resp.Status
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorMessage     string `json:"errorMessage"`
	}
	if json.Unmarshal(body, &e) == nil {
		for _, f := range []string{e.Error, e.ErrorDescription, e.ErrorMessage} {
			if f != "" {
				msg += ": " + truncate(f, 200)
			}
		}
	}
	if s.Password != "" {
		msg = strings.ReplaceAll(msg, s.Password, "***")
	}
	return msg
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
