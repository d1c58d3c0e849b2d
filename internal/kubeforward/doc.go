// Package kubeforward reaches a release's own in-cluster PostgreSQL from outside the cluster:
// a port-forward through the API server (SPDY tunnelled in a websocket, else plain SPDY, as
// kubectl port-forward does) from a listener on 127.0.0.1, the password from a Secret, and the
// access checks both need.
//
// Every new local connection resolves its target again (a StatefulSet's pod, a Service's
// ready pod, or the named pod once it runs and is ready; a running pod when none is ready), so
// the forward follows a pod that a rollback replaced. Opening a stream through the API server
// is retried while the API server or the node agent restarts; a stream that breaks is logged.
package kubeforward
