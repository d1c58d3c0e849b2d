// Package forwardspec is the grammar of the db-port-forward and db-password-from inputs: what
// the port-forward reaches (service/NAME[:PORT], pod/NAME[:PORT], or auto) and where the
// password is (secret/NAME:KEY). The configuration validates with it and the port-forward
// uses what it parses, so the two can never accept different things.
package forwardspec

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Auto is the db-port-forward value that finds the database in the release.
const Auto = "auto"

// Kinds of target a user names.
const (
	KindService = "service"
	KindPod     = "pod"
)

// KindStatefulSet is the target that auto finds: the release's PostgreSQL StatefulSet, whose
// pods are found through it rather than through a Service. Parse does not take it.
const KindStatefulSet = "statefulset"

// Spec names what to forward to: a Service, a pod or a StatefulSet of the release's namespace,
// and a port.
type Spec struct {
	Kind string // KindService, KindPod or KindStatefulSet
	Name string
	// Port is a port number or name: of the Service (its targetPort is followed), or of the
	// pod's containers (a pod's, or the StatefulSet's pods'). Empty means the PostgreSQL port (named postgres or postgresql, or 5432).
	Port string
}

func (s Spec) String() string {
	if s.Port == "" {
		return s.Kind + "/" + s.Name
	}
	return s.Kind + "/" + s.Name + ":" + s.Port
}

// Limits of the names in the grammar: a DNS subdomain (object and Secret names), an
// IANA_SVC_NAME (port names), a Secret data key.
const (
	maxObjectName = 253
	maxPortName   = 15
	maxSecretKey  = 253
)

var (
	objectName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	portName   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	portNumber = regexp.MustCompile(`^[0-9]+$`)
	secretKey  = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// Parse reads service/<name>[:port] or pod/<name>[:port]. The errors say what is wrong
// without the input's name, which the caller adds.
func Parse(s string) (Spec, error) {
	kind, rest, ok := strings.Cut(s, "/")
	if !ok || (kind != KindService && kind != KindPod) {
		return Spec{}, fmt.Errorf("%q is not service/NAME[:PORT] or pod/NAME[:PORT]", s)
	}
	name, port, hasPort := strings.Cut(rest, ":")
	if len(name) > maxObjectName || !objectName.MatchString(name) {
		return Spec{}, fmt.Errorf("%q: %q is not a %s name", s, name, kind)
	}
	if hasPort {
		if portNumber.MatchString(port) {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return Spec{}, fmt.Errorf("%q: port %s is outside 1-65535", s, port)
			}
		} else if len(port) > maxPortName || !portName.MatchString(port) {
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
	case len(name) > maxObjectName || !objectName.MatchString(name):
		return SecretRef{}, fmt.Errorf("%q is not a Secret name", name)
	case len(key) > maxSecretKey || !secretKey.MatchString(key):
		return SecretRef{}, fmt.Errorf("%q is not a Secret key (letters, digits, '-', '_', '.')", key)
	}
	return SecretRef{Name: name, Key: key}, nil
}
