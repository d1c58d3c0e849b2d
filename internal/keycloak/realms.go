package keycloak

import (
	"context"
	"errors"
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
