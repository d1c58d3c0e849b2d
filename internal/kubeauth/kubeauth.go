// Package kubeauth connects to a cluster the way a kubeconfig says, except that the tokens of
// managed clusters (EKS, GKE, AKS) come from the cloud's own Go SDK instead of the credential
// plugin the kubeconfig names: a container action has none of aws, gke-gcloud-auth-plugin or
// kubelogin, and the runner's tools are not visible inside it.
//
// The provider is the cluster-auth input, or recognised from the kubeconfig's exec stanza. Its
// token is set on every request by a transport that caches it, gets a new one before it
// expires, and retries once with a new one when the API server answers 401. Tokens live only in
// memory: never logged, never written.
package kubeauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The cluster-auth choices.
const (
	Kubeconfig = "kubeconfig" // the kubeconfig's own credentials; a recognised plugin is replaced
	AWS        = "aws"        // an EKS token from the AWS credentials of the job
	GCP        = "gcp"        // a Google access token from Application Default Credentials
	Azure      = "azure"      // a Microsoft Entra token for the AKS server application
)

// Choices are the values of cluster-auth.
func Choices() []string { return []string{Kubeconfig, AWS, GCP, Azure} }

// ErrUnknownPlugin is wrapped by the error of a kubeconfig whose exec plugin is neither one
// whose token this package gets nor an executable on PATH.
var ErrUnknownPlugin = errors.New("credential plugin not available")

// Options says where the kubeconfig is and how to authenticate.
type Options struct {
	// Provider is the cluster-auth choice; empty means Kubeconfig.
	Provider string
	// Content is a kubeconfig's content (the kubeconfig input). It wins over Path.
	Content []byte
	// Path is a kubeconfig file, or a list of them separated as in KUBECONFIG, each as the
	// runner names it (Workspace maps it). Empty: ~/.kube/config, else in-cluster.
	Path string
	// Context and Namespace override the kubeconfig's current context and its namespace.
	Context   string
	Namespace string
	// Getenv reads the job's environment: the providers' variables, PATH, and the workspace's
	// (WorkspaceFromEnv). The providers' SDKs also read the process environment themselves.
	Getenv func(string) string
	// HTTPClient, if set, is what the providers' SDKs reach their token services with.
	HTTPClient *http.Client
}

// Auth is a provider's token for one cluster.
type Auth struct {
	provider string
	origin   string // what chose the provider, for messages
	tokens   *tokens
}

// Provider is the cluster-auth choice in use: aws, gcp or azure.
func (a *Auth) Provider() string { return a.provider }

// Load reads the kubeconfig and returns its client configuration, whose REST configs carry the
// provider's token in place of the kubeconfig's exec plugin when there is a provider. The
// errors wrap ErrUnknownPlugin or ErrOutsideWorkspace, or say which variable a provider
// lacks: each says what to change.
func Load(ctx context.Context, opts Options) (clientcmd.ClientConfig, *Auth, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	provider := opts.Provider
	if provider == "" {
		provider = Kubeconfig
	}
	if !slices.Contains(Choices(), provider) {
		return nil, nil, fmt.Errorf("cluster-auth %q is not one of %s", provider, strings.Join(Choices(), ", "))
	}
	ws := WorkspaceFromEnv(getenv)
	overrides := &clientcmd.ConfigOverrides{CurrentContext: opts.Context}
	if opts.Namespace != "" {
		overrides.Context.Namespace = opts.Namespace
	}

	var inner clientcmd.ClientConfig
	switch {
	case len(opts.Content) > 0:
		raw, err := clientcmd.Load(opts.Content)
		if err != nil {
			return nil, nil, fmt.Errorf("kubeconfig: %w", err)
		}
		if err := mapFiles(raw, ws); err != nil {
			return nil, nil, fmt.Errorf("kubeconfig: %w", err)
		}
		inner = clientcmd.NewDefaultClientConfig(*raw, overrides)
	case opts.Path != "":
		var files []string
		for _, p := range filepath.SplitList(opts.Path) {
			if p == "" {
				continue
			}
			mapped, err := ws.Path(p)
			if err != nil {
				return nil, nil, fmt.Errorf("kubeconfig-path: %w", err)
			}
			files = append(files, mapped)
		}
		rules := &clientcmd.ClientConfigLoadingRules{Precedence: files}
		if len(files) == 1 {
			rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: files[0]}
		}
		raw, err := rules.Load()
		if err != nil {
			return nil, nil, fmt.Errorf("kubeconfig: %w", err)
		}
		if err := mapFiles(raw, ws); err != nil {
			return nil, nil, fmt.Errorf("kubeconfig: %w", err)
		}
		inner = clientcmd.NewDefaultClientConfig(*raw, overrides)
	default:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = ""
		rules.Precedence = []string{clientcmd.RecommendedHomeFile}
		inner = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	}

	raw, err := inner.RawConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig: %w", err)
	}
	contextName := firstOf(opts.Context, raw.CurrentContext)
	var user *clientcmdapi.AuthInfo
	var clusterName string
	if kc := raw.Contexts[contextName]; kc != nil {
		user = raw.AuthInfos[kc.AuthInfo]
		clusterName = kc.Cluster
	}

	var p plugin
	origin := "cluster-auth " + provider
	if user != nil && user.Exec != nil {
		known, ok := recognise(user.Exec)
		switch {
		case ok && provider == Kubeconfig:
			p, provider = known, known.provider
			origin = fmt.Sprintf("the kubeconfig's %s plugin", filepath.Base(known.command))
		case ok && known.provider != provider:
			return nil, nil, fmt.Errorf("cluster-auth is %s, but the kubeconfig's user runs %s, a %s credential plugin; set cluster-auth to %s or kubeconfig",
				provider, known.command, known.provider, known.provider)
		case ok:
			p = known
		case provider == Kubeconfig && lookPath(user.Exec.Command, getenv("PATH")):
			// A plugin of the user's that is installed: client-go runs it, as kubectl would.
		case provider == Kubeconfig:
			return nil, nil, fmt.Errorf("the kubeconfig's user runs the credential plugin %q (exec), which is %w here (a container action has no plugins); set cluster-auth to one of %s to get the token from the cloud's credentials (aws eks get-token, aws-iam-authenticator, gke-gcloud-auth-plugin and kubelogin are recognised), or use a kubeconfig with a ServiceAccount token",
				user.Exec.Command, ErrUnknownPlugin, strings.Join(Choices()[1:], ", "))
		}
	}
	if provider == Kubeconfig {
		return inner, nil, nil
	}
	if p.cluster == "" && provider == AWS {
		p.cluster, p.region = eksCluster(clusterName, p.region)
	}

	var src source
	switch provider {
	case AWS:
		src, err = newAWS(ctx, p, getenv, ws, opts.HTTPClient)
	case GCP:
		src, err = newGCP(ctx, getenv, ws, opts.HTTPClient)
	case Azure:
		src, err = newAzure(p, getenv, ws, opts.HTTPClient)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster-auth %s (%s): %w", provider, origin, err)
	}
	auth := &Auth{provider: provider, origin: origin, tokens: &tokens{src: src, now: time.Now}}
	return &clientConfig{inner: inner, auth: auth}, auth, nil
}

// mapFiles maps the files a kubeconfig names (CA, client certificate and key, token file) to
// the container's view of the workspace.
func mapFiles(raw *clientcmdapi.Config, ws Workspace) error {
	var err error
	for _, c := range raw.Clusters {
		if c.CertificateAuthority, err = ws.Path(c.CertificateAuthority); err != nil {
			return err
		}
	}
	for _, u := range raw.AuthInfos {
		for _, f := range []*string{&u.ClientCertificate, &u.ClientKey, &u.TokenFile} {
			if *f, err = ws.Path(*f); err != nil {
				return err
			}
		}
	}
	return nil
}

// eksCluster reads the cluster name and region from an EKS cluster's ARN, the name aws eks
// update-kubeconfig gives the kubeconfig's cluster (arn:aws:eks:REGION:ACCOUNT:cluster/NAME).
func eksCluster(name, region string) (string, string) {
	parts := strings.SplitN(name, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "eks" {
		if n, ok := strings.CutPrefix(parts[5], "cluster/"); ok {
			return n, firstOf(region, parts[3])
		}
	}
	return "", region
}

// clientConfig is a kubeconfig's client configuration with the provider's token in place of
// its credentials.
type clientConfig struct {
	inner clientcmd.ClientConfig
	auth  *Auth
}

func (c *clientConfig) RawConfig() (clientcmdapi.Config, error) { return c.inner.RawConfig() }
func (c *clientConfig) Namespace() (string, bool, error)        { return c.inner.Namespace() }
func (c *clientConfig) ConfigAccess() clientcmd.ConfigAccess    { return c.inner.ConfigAccess() }

func (c *clientConfig) ClientConfig() (*rest.Config, error) {
	cfg, err := c.inner.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.ExecProvider, cfg.AuthProvider = nil, nil
	cfg.BearerToken, cfg.BearerTokenFile, cfg.Username, cfg.Password = "", "", "", ""
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &bearer{auth: c.auth, next: rt} })
	return cfg, nil
}
