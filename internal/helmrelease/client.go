package helmrelease

import (
	"fmt"
	"log/slog"
	"sync"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Options says which cluster and namespace to talk to. ClientConfig, when set, is the cluster
// connection (its overrides already applied); else KubeconfigData (the `kubeconfig` input's
// content) wins over KubeconfigPath; with neither, the usual loading rules apply ($KUBECONFIG,
// ~/.kube/config, in-cluster).
type Options struct {
	ClientConfig   clientcmd.ClientConfig
	KubeconfigData []byte
	KubeconfigPath string
	Context        string
	Namespace      string
	Log            *slog.Logger
}

// Client is the project's one handle on helm: a configured action.Configuration whose storage
// (release Secrets) is the source of truth for release state, and a clientset on the same
// cluster for the StatefulSet work helm cannot do (orphan re-creation).
type Client struct {
	opts      Options // what it was made with (In makes another namespace's)
	cfg       *action.Configuration
	kube      kubernetes.Interface
	namespace string
	log       *slog.Logger

	// meta reads objects' metadata only: whether a referenced Secret exists, not its data.
	meta metadata.Interface

	mu       sync.Mutex
	archives map[string][]byte // fetched chart archives by UpgradeSpec.source
	served   map[string]bool   // the cluster's APIs as "group/version/Kind", read once
}

// New builds a client for opts.Namespace.
func New(opts Options) (*Client, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	getter, err := newRESTGetter(opts)
	if err != nil {
		return nil, err
	}
	ns := opts.Namespace
	if ns == "" {
		ns, _, err = getter.ToRawKubeConfigLoader().Namespace()
		if err != nil || ns == "" {
			ns = "default"
		}
	}
	cfg := new(action.Configuration)
	debug := func(format string, v ...any) { log.Debug(fmt.Sprintf(format, v...), "component", "helm") }
	if err := cfg.Init(getter, ns, "secret", debug); err != nil {
		return nil, fmt.Errorf("initialise helm for namespace %q: %w", ns, err)
	}
	restConfig, err := getter.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	meta, err := metadata.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes metadata client: %w", err)
	}
	return &Client{opts: opts, cfg: cfg, kube: kube, meta: meta, namespace: ns, log: log}, nil
}

// Namespace is the namespace the client works in.
func (c *Client) Namespace() string { return c.namespace }

func fromHelm(r *release.Release) rollout.Release {
	out := rollout.Release{Name: r.Name, Namespace: r.Namespace, Revision: r.Version, Manifest: r.Manifest}
	if r.Info != nil {
		out.Status = r.Info.Status.String()
		out.Updated = r.Info.LastDeployed.Time
	}
	if r.Chart != nil && r.Chart.Metadata != nil {
		out.ChartName = r.Chart.Metadata.Name
		out.ChartVersion = r.Chart.Metadata.Version
		out.AppVersion = r.Chart.Metadata.AppVersion
	}
	for _, h := range r.Hooks {
		hook := rollout.Hook{Kind: h.Kind, Name: h.Name}
		for _, e := range h.Events {
			hook.Events = append(hook.Events, e.String())
		}
		out.Hooks = append(out.Hooks, hook)
	}
	return out
}

// restGetter is helm's view of the cluster, built from kubeconfig content or the usual
// loading rules, without writing a kubeconfig file anywhere.
type restGetter struct {
	clientConfig clientcmd.ClientConfig
}

func newRESTGetter(opts Options) (*restGetter, error) {
	if opts.ClientConfig != nil {
		if opts.Namespace != "" {
			// The namespace asked for wins over the connection's own, as the override does
			// below: helm puts a chart's objects in the loader's namespace.
			return &restGetter{clientConfig: inNamespace{opts.ClientConfig, opts.Namespace}}, nil
		}
		return &restGetter{clientConfig: opts.ClientConfig}, nil
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: opts.Context}
	if opts.Namespace != "" {
		overrides.Context.Namespace = opts.Namespace
	}
	if len(opts.KubeconfigData) > 0 {
		raw, err := clientcmd.Load(opts.KubeconfigData)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		return &restGetter{clientConfig: clientcmd.NewDefaultClientConfig(*raw, overrides)}, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if opts.KubeconfigPath != "" {
		rules.ExplicitPath = opts.KubeconfigPath
	}
	return &restGetter{clientConfig: clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)}, nil
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) {
	cfg, err := g.clientConfig.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	cfg, err := g.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(dc)
	return restmapper.NewShortcutExpander(mapper, dc, func(string) {}), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig { return g.clientConfig }

// inNamespace is a client configuration whose namespace is ns.
type inNamespace struct {
	cc clientcmd.ClientConfig
	ns string
}

func (c inNamespace) RawConfig() (clientcmdapi.Config, error) { return c.cc.RawConfig() }
func (c inNamespace) ClientConfig() (*rest.Config, error)     { return c.cc.ClientConfig() }
func (c inNamespace) Namespace() (string, bool, error)        { return c.ns, true, nil }
func (c inNamespace) ConfigAccess() clientcmd.ConfigAccess    { return c.cc.ConfigAccess() }
