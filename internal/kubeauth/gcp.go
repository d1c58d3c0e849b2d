package kubeauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// gkeScopes are the scopes gke-gcloud-auth-plugin asks for: GKE accepts a Google access token
// that carries the caller's e-mail.
var gkeScopes = []string{"https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/userinfo.email"}

type gcpSource struct {
	ts   oauth2.TokenSource
	who  string
	file string
}

// newGCP takes Application Default Credentials: the file GOOGLE_APPLICATION_CREDENTIALS names
// (google-github-actions/auth writes one into the workspace; its path as the runner wrote it is
// mapped to the container's), else gcloud's application-default file or the metadata server.
func newGCP(ctx context.Context, getenv func(string) string, ws Workspace, hc *http.Client) (*gcpSource, error) {
	// The token source keeps this context for every later refresh: not the caller's.
	tctx := context.WithoutCancel(ctx)
	if hc != nil {
		tctx = context.WithValue(tctx, oauth2.HTTPClient, hc)
	}
	file := getenv("GOOGLE_APPLICATION_CREDENTIALS")
	if file == "" {
		creds, err := google.FindDefaultCredentials(tctx, gkeScopes...)
		if err != nil {
			return nil, fmt.Errorf("no Application Default Credentials (set GOOGLE_APPLICATION_CREDENTIALS, e.g. with google-github-actions/auth): %w", err)
		}
		return &gcpSource{ts: creds.TokenSource, who: "the Application Default Credentials of gcloud or the metadata server"}, nil
	}
	mapped, err := ws.Path(file)
	if err != nil {
		return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS: %w", err)
	}
	data, err := os.ReadFile(mapped)
	if err != nil {
		return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS: %w", err)
	}
	var f credentialsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS %s is not a credentials JSON file: %w", mapped, err)
	}
	t := google.CredentialsType(f.Type)
	switch t {
	case google.ServiceAccount, google.AuthorizedUser, google.ExternalAccount, google.ImpersonatedServiceAccount:
	default:
		return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS %s has credentials of type %q; want service_account, external_account (workload identity federation), authorized_user or impersonated_service_account", mapped, f.Type)
	}
	creds, err := google.CredentialsFromJSONWithTypeAndParams(tctx, data, t, google.CredentialsParams{Scopes: gkeScopes})
	if err != nil {
		return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS %s: %w", mapped, err)
	}
	return &gcpSource{ts: creds.TokenSource, who: f.identity(), file: mapped}, nil
}

// credentialsFile holds the fields of a credentials file that name its identity.
type credentialsFile struct {
	Type                           string `json:"type"`
	ClientEmail                    string `json:"client_email"`
	ClientID                       string `json:"client_id"`
	Audience                       string `json:"audience"`
	ServiceAccountImpersonationURL string `json:"service_account_impersonation_url"`
}

var impersonated = regexp.MustCompile(`/serviceAccounts/([^/:]+):generateAccessToken$`)

func (f credentialsFile) identity() string {
	if m := impersonated.FindStringSubmatch(f.ServiceAccountImpersonationURL); m != nil {
		return m[1]
	}
	switch {
	case f.ClientEmail != "":
		return f.ClientEmail
	case f.Audience != "":
		return "the workload identity federation principal of " + f.Audience
	case f.ClientID != "":
		return "the user credentials of OAuth client " + f.ClientID
	}
	return "the credentials of type " + f.Type
}

func (s *gcpSource) token(context.Context) (string, time.Time, error) {
	tok, err := s.ts.Token()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("Google access token for %s: %w", s.who, err)
	}
	if tok.AccessToken == "" {
		return "", time.Time{}, errors.New("Google access token: empty")
	}
	expiry := tok.Expiry
	if expiry.IsZero() {
		expiry = time.Now().Add(time.Hour)
	}
	return tok.AccessToken, expiry, nil
}

func (s *gcpSource) identity(context.Context) string { return s.who }

func (s *gcpSource) hint() string {
	return "give this Google identity access to the GKE cluster: an IAM role with container.clusters.get on the project (roles/container.clusterViewer) and a Kubernetes RoleBinding of its e-mail to the Role in the README"
}
