package keycloak

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var _ rollout.Sessions = Sessions{}

// Sessions logs out the users' sessions through Keycloak's admin REST API (the vendor's
// first step: Manage > Sessions > Logout all), as the master realm's admin.
type Sessions struct {
	Admin *Admin
	// Realms is the `realms` input: empty or "all" for every realm, otherwise realm names.
	Realms []string
	Log    *slog.Logger
}

func (s Sessions) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// LogoutAll logs out every session of the configured realms (POST
// /admin/realms/{realm}/logout-all) and returns how many realms it logged out, also together
// with an error.
func (s Sessions) LogoutAll(ctx context.Context) (int, error) {
	a := s.Admin
	if a == nil {
		a = &Admin{}
	}
	if _, err := a.checkedURL(); err != nil {
		return 0, fmt.Errorf("log out the sessions: %w", err)
	}
	realms, err := realmNames(s.Realms)
	if err != nil {
		return 0, err
	}
	if realms == nil {
		list, err := a.Realms(ctx)
		if err != nil {
			return 0, err
		}
		for _, r := range list {
			realms = append(realms, r.Name)
		}
	}
	done := 0
	for _, realm := range realms {
		resp, err := a.call(ctx, http.MethodPost, "/admin/realms/"+url.PathEscape(realm)+"/logout-all", nil)
		if err != nil {
			return done, fmt.Errorf("log out the sessions of realm %q: %w", realm, err)
		}
		switch {
		case resp.code/100 == 2:
		case resp.code == http.StatusNotFound:
			return done, fmt.Errorf("log out the sessions of realm %q: Keycloak at %s (keycloak-url) has no such realm (404): check the `realms` input", realm, a.Base())
		case resp.code == http.StatusUnauthorized || resp.code == http.StatusForbidden:
			return done, fmt.Errorf("log out the sessions of realm %q: %s: keycloak-admin-user %q may not manage that realm", realm, a.status(resp), a.User)
		default:
			return done, fmt.Errorf("log out the sessions of realm %q: %s", realm, a.status(resp))
		}
		done++
		s.log().Info("logged out all sessions", "realm", realm)
	}
	return done, nil
}

// realmNames reads the realms input: the names given, or nil for every realm.
func realmNames(realms []string) ([]string, error) {
	var named []string
	for _, r := range realms {
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
