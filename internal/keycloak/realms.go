package keycloak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Realm is what the upgrade reads of a realm's representation: its name and the themes it
// names (empty: Keycloak's default for that kind).
type Realm struct {
	Name         string `json:"realm"`
	LoginTheme   string `json:"loginTheme,omitempty"`
	AccountTheme string `json:"accountTheme,omitempty"`
	AdminTheme   string `json:"adminTheme,omitempty"`
	EmailTheme   string `json:"emailTheme,omitempty"`
}

// Realms lists every realm of the server (GET /admin/realms).
func (a *Admin) Realms(ctx context.Context) ([]Realm, error) {
	var list []Realm
	if err := a.getJSON(ctx, "list the realms", "/admin/realms", &list); err != nil {
		return nil, err
	}
	var out []Realm
	for _, r := range list {
		if r.Name != "" {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("list the realms: Keycloak returned none")
	}
	return out, nil
}

// ThemeKinds are the kinds of theme a realm names, as serverinfo lists them, in the order
// reports give them.
var ThemeKinds = []string{"login", "account", "admin", "email"}

// Themes returns the themes the realm names, in the order of ThemeKinds, without an origin; a
// kind the realm leaves to Keycloak's default is absent.
func (r Realm) Themes() []rollout.ThemeUse {
	var out []rollout.ThemeUse
	for i, theme := range []string{r.LoginTheme, r.AccountTheme, r.AdminTheme, r.EmailTheme} {
		if theme != "" {
			out = append(out, rollout.ThemeUse{Realm: r.Name, Kind: ThemeKinds[i], Theme: theme})
		}
	}
	return out
}

// ServerInfo is what the upgrade reads of GET /admin/serverinfo: the version of the Keycloak
// that answers and the themes it has, by kind.
type ServerInfo struct {
	Version string
	Themes  map[string][]string
}

// Has reports whether Keycloak has the theme of that kind.
func (s ServerInfo) Has(kind, theme string) bool { return slices.Contains(s.Themes[kind], theme) }

// ServerInfo reads the version and the themes of the Keycloak that answers.
func (a *Admin) ServerInfo(ctx context.Context) (ServerInfo, error) {
	var raw struct {
		SystemInfo struct {
			Version string `json:"version"`
		} `json:"systemInfo"`
		Themes map[string][]struct {
			Name string `json:"name"`
		} `json:"themes"`
	}
	if err := a.getJSON(ctx, "read Keycloak's server info", "/admin/serverinfo", &raw); err != nil {
		return ServerInfo{}, err
	}
	info := ServerInfo{Version: raw.SystemInfo.Version, Themes: map[string][]string{}}
	for kind, list := range raw.Themes {
		for _, t := range list {
			info.Themes[kind] = append(info.Themes[kind], t.Name)
		}
	}
	if len(info.Themes) == 0 {
		return info, errors.New("read Keycloak's server info: it lists no themes")
	}
	return info, nil
}

// PartialExport exports a realm with its clients, groups and roles (POST
// /admin/realms/{realm}/partial-export), as JSON. Keycloak masks the secrets in it (client
// secrets read "**********"): it is what an operator reads and diffs, not a restorable copy;
// the database backup holds the realm whole.
func (a *Admin) PartialExport(ctx context.Context, realm string) ([]byte, error) {
	resp, err := a.call(ctx, http.MethodPost, "/admin/realms/"+url.PathEscape(realm)+"/partial-export?exportClients=true&exportGroupsAndRoles=true", nil)
	if err != nil {
		return nil, fmt.Errorf("export realm %q: %w", realm, err)
	}
	if resp.code/100 != 2 {
		return nil, fmt.Errorf("export realm %q: %s", realm, a.status(resp))
	}
	if !json.Valid(resp.body) {
		return nil, fmt.Errorf("export realm %q: Keycloak answered %d with something that is not JSON", realm, resp.code)
	}
	return resp.body, nil
}
