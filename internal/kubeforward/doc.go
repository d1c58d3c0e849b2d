// Package kubeforward reaches a release's own in-cluster PostgreSQL from outside the cluster:
// a port-forward through the API server (SPDY tunnelled in a websocket, else plain SPDY, as
// kubectl port-forward does) from a listener on 127.0.0.1, the password from a Secret, and the
// access checks both need.
//
// Every new local connection resolves its target again (a Service's ready pod, or the named
// pod once it runs and is ready), so the forward follows a pod that a rollback replaced.
package kubeforward
