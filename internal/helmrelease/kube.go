package helmrelease

import (
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// RESTConfig is the cluster connection helm uses, for the adapters that watch or change
// Kubernetes objects themselves (readiness, lock, workloads).
func (c *Client) RESTConfig() (*rest.Config, error) {
	return c.cfg.RESTClientGetter.ToRESTConfig()
}

// Kubernetes is a clientset on the same cluster.
func (c *Client) Kubernetes() kubernetes.Interface { return c.kube }
