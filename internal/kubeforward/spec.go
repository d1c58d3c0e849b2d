// Package kubeforward reaches a release's own in-cluster PostgreSQL from outside the cluster:
// a port-forward through the API server (SPDY tunnelled in a websocket, else plain SPDY, as
// kubectl port-forward does) from a listener on 127.0.0.1, the password from a Secret, and the
// access checks both need.
//
// Every new local connection resolves its target again (a Service's ready pod, or the named
// pod once it runs and is ready), so the forward follows a pod that a rollback replaced.
package kubeforward

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Kinds of target.
const (
	KindService = "service"
	KindPod     = "pod"
)

// Spec names what to forward to: a Service or a pod of the release's namespace, and a port.
type Spec struct {
	Kind string // KindService or KindPod
	Name string
	// Port is a port number or name: of the Service (its targetPort is followed), or of the
	// pod's containers. Empty means the PostgreSQL port (named postgres or postgresql, or 5432).
	Port string
}

func (s Spec) String() string {
	if s.Port == "" {
		return s.Kind + "/" + s.Name
	}
	return s.Kind + "/" + s.Name + ":" + s.Port
}

var (
	objectName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	portName   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	secretKey  = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// ParseSpec reads service/<name>[:port] or pod/<name>[:port].
func ParseSpec(s string) (Spec, error) {
	kind, rest, ok := strings.Cut(s, "/")
	if !ok || (kind != KindService && kind != KindPod) {
		return Spec{}, fmt.Errorf("%q is not service/NAME[:PORT] or pod/NAME[:PORT]", s)
	}
	name, port, _ := strings.Cut(rest, ":")
	if len(name) > 253 || !objectName.MatchString(name) {
		return Spec{}, fmt.Errorf("%q: %q is not a %s name", s, name, kind)
	}
	if port != "" || strings.HasSuffix(rest, ":") {
		if n, err := strconv.Atoi(port); err == nil {
			if n < 1 || n > 65535 {
				return Spec{}, fmt.Errorf("%q: port %d is outside 1-65535", s, n)
			}
		} else if len(port) > 15 || !portName.MatchString(port) {
			return Spec{}, fmt.Errorf("%q: %q is neither a port number nor a port name", s, port)
		}
	}
	return Spec{Kind: kind, Name: name, Port: port}, nil
}

// SecretRef names one key of a Secret: secret/<name>:<key>.
type SecretRef struct {
	Name string
	Key  string
}

func (r SecretRef) String() string { return "secret/" + r.Name + ":" + r.Key }

// ParseSecretRef reads secret/<name>:<key>.
func ParseSecretRef(s string) (SecretRef, error) {
	rest, ok := strings.CutPrefix(s, "secret/")
	name, key, hasKey := strings.Cut(rest, ":")
	switch {
	case !ok || !hasKey:
		return SecretRef{}, errors.New("not secret/NAME:KEY")
	case len(name) > 253 || !objectName.MatchString(name):
		return SecretRef{}, fmt.Errorf("%q is not a Secret name", name)
	case len(key) > 253 || !secretKey.MatchString(key):
		return SecretRef{}, fmt.Errorf("%q is not a Secret key (letters, digits, '-', '_', '.')", key)
	}
	return SecretRef{Name: name, Key: key}, nil
}
