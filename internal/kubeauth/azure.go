package kubeauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// aksServerID is the application of the AKS API servers that integrate Microsoft Entra ID: a
// token for it ("<id>/.default") is what kubelogin gets and AKS accepts.
const aksServerID = "6dae42f8-4368-4678-94ff-3960e28e3630"

type azureSource struct {
	cred   azcore.TokenCredential
	scope  string
	who    string
	tenant string
}

// newAzure takes the job's Entra credentials, as kubelogin's workloadidentity and spn logins
// do: AZURE_CLIENT_ID and AZURE_TENANT_ID with AZURE_FEDERATED_TOKEN_FILE or
// AZURE_CLIENT_SECRET; in GitHub Actions with id-token: write, the job's OIDC token is the
// federated credential when no file is given. The kubeconfig's kubelogin arguments give the
// server application, the tenant and the cloud; its azurecli and msi logins are honoured.
func newAzure(p plugin, getenv func(string) string, ws Workspace, hc *http.Client) (*azureSource, error) {
	clientID := getenv("AZURE_CLIENT_ID")
	tenant := firstOf(getenv("AZURE_TENANT_ID"), p.tenantID)
	c, err := azureCloud(p.environment, getenv("AZURE_AUTHORITY_HOST"))
	if err != nil {
		return nil, err
	}
	opts := azcore.ClientOptions{Cloud: c}
	if hc != nil {
		opts.Transport = hc
	}
	// Instance discovery asks login.microsoftonline.com about the authority: only for Azure's
	// own clouds (as for Azure Stack, a private authority has no entry there).
	private := !knownAuthority(c.ActiveDirectoryAuthorityHost)
	src := &azureSource{scope: firstOf(p.serverID, aksServerID) + "/.default", tenant: tenant,
		who: fmt.Sprintf("client id %s in tenant %s", clientID, tenant)}
	needIDs := func(how string) error {
		if clientID == "" || tenant == "" {
			return fmt.Errorf("%s needs AZURE_CLIENT_ID and AZURE_TENANT_ID (the application registration or managed identity and its tenant)", how)
		}
		return nil
	}
	switch {
	case getenv("AZURE_FEDERATED_TOKEN_FILE") != "":
		if err := needIDs("AZURE_FEDERATED_TOKEN_FILE"); err != nil {
			return nil, err
		}
		file, err := ws.Path(getenv("AZURE_FEDERATED_TOKEN_FILE"))
		if err != nil {
			return nil, fmt.Errorf("AZURE_FEDERATED_TOKEN_FILE: %w", err)
		}
		src.cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: clientID, TenantID: tenant, TokenFilePath: file, DisableInstanceDiscovery: private,
		})
		if err != nil {
			return nil, err
		}
	case getenv("AZURE_CLIENT_SECRET") != "":
		if err := needIDs("AZURE_CLIENT_SECRET"); err != nil {
			return nil, err
		}
		src.cred, err = azidentity.NewClientSecretCredential(tenant, clientID, getenv("AZURE_CLIENT_SECRET"),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: private})
		if err != nil {
			return nil, err
		}
	case clientID != "" && getenv("ACTIONS_ID_TOKEN_REQUEST_URL") != "":
		if err := needIDs("a federated credential"); err != nil {
			return nil, err
		}
		oidc := githubOIDC{url: getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), bearer: getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN"), client: hc}
		src.cred, err = azidentity.NewClientAssertionCredential(tenant, clientID, oidc.token,
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: private})
		if err != nil {
			return nil, err
		}
	case p.login == "azurecli":
		src.who = "the Azure CLI's signed-in account"
		src.cred, err = azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: tenant})
		if err != nil {
			return nil, err
		}
	case p.login == "msi":
		mi := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if clientID != "" {
			mi.ID = azidentity.ClientID(clientID)
		}
		src.who = "the managed identity " + firstOf(clientID, "(system-assigned)")
		src.cred, err = azidentity.NewManagedIdentityCredential(mi)
		if err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("no Azure credentials: set AZURE_CLIENT_ID and AZURE_TENANT_ID, with AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_SECRET, or permissions id-token: write for the workflow's OIDC token as the federated credential")
	}
	return src, nil
}

// azureCloud is the cloud kubelogin's --environment names, with AZURE_AUTHORITY_HOST (as
// kubelogin and the SDK read it) in place of its authority.
func azureCloud(environment, authorityHost string) (cloud.Configuration, error) {
	var c cloud.Configuration
	switch strings.ToLower(environment) {
	case "", "azurepubliccloud", "azurecloud":
		c = cloud.AzurePublic
	case "azurechinacloud":
		c = cloud.AzureChina
	case "azureusgovernmentcloud", "azureusgovernment":
		c = cloud.AzureGovernment
	default:
		return c, fmt.Errorf("the kubeconfig's kubelogin --environment %q is not AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud", environment)
	}
	if authorityHost != "" {
		c.ActiveDirectoryAuthorityHost = authorityHost
	}
	return c, nil
}

func knownAuthority(host string) bool {
	for _, c := range []cloud.Configuration{cloud.AzurePublic, cloud.AzureChina, cloud.AzureGovernment} {
		if strings.TrimSuffix(c.ActiveDirectoryAuthorityHost, "/") == strings.TrimSuffix(host, "/") {
			return true
		}
	}
	return false
}

func (s *azureSource) token(ctx context.Context) (string, time.Time, error) {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}, TenantID: s.tenant})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("Entra token for %s as %s: %w", s.scope, s.who, err)
	}
	return tok.Token, tok.ExpiresOn, nil
}

func (s *azureSource) identity(context.Context) string { return s.who }

func (s *azureSource) hint() string {
	return "give this identity access to the AKS cluster: an Azure role assignment on it (Azure Kubernetes Service Cluster User Role) and, with Kubernetes RBAC, a RoleBinding of its object id to the Role in the README"
}

// githubOIDC gets the workflow run's OIDC token for Microsoft Entra's audience, as
// azure/login does, from the variables GitHub sets when the job has id-token: write.
type githubOIDC struct {
	url, bearer string
	client      *http.Client
}

func (g githubOIDC) token(ctx context.Context) (string, error) {
	u, err := url.Parse(g.url)
	if err != nil {
		return "", fmt.Errorf("ACTIONS_ID_TOKEN_REQUEST_URL: %w", err)
	}
	q := u.Query()
	q.Set("audience", "api://AzureADTokenExchange")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+g.bearer)
	client := g.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GitHub OIDC token: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GitHub OIDC token: %s (does the job have permissions id-token: write?)", resp.Status)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Value == "" {
		return "", errors.New("GitHub OIDC token: no value in the answer")
	}
	return out.Value, nil
}
