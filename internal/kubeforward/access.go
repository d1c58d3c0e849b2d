package kubeforward

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
)

// Rule is one permission in a namespace, as a Role rule grants it.
type Rule struct {
	Group    string // the API group: "" for the core group, apps
	Resource string // e.g. pods/portforward
	Verb     string
	Name     string // one object only (resourceNames), or "" for all
}

// YAML is the rule as a Role's rules list item.
func (r Rule) YAML() string {
	s := fmt.Sprintf("- apiGroups: [%q]\n  resources: [%s]\n  verbs: [%s]", r.Group, r.Resource, r.Verb)
	if r.Name != "" {
		s += fmt.Sprintf("\n  resourceNames: [%s]", r.Name)
	}
	return s
}

// Needs lists what a forward to spec and a password read from secret (nil: none) need in
// the namespace. A nil spec means no forward.
func Needs(spec *forwardspec.Spec, secret *forwardspec.SecretRef) []Rule {
	var rules []Rule
	if spec != nil {
		switch spec.Kind {
		case forwardspec.KindService:
			rules = append(rules, Rule{Resource: "pods", Verb: "get"}, Rule{Resource: "services", Verb: "get"}, Rule{Resource: "pods", Verb: "list"})
		case forwardspec.KindStatefulSet:
			rules = append(rules, Rule{Group: "apps", Resource: "statefulsets", Verb: "get"}, Rule{Resource: "pods", Verb: "list"})
		default:
			rules = append(rules, Rule{Resource: "pods", Verb: "get"})
		}
		rules = append(rules, Rule{Resource: "pods/portforward", Verb: "create"})
	}
	if secret != nil {
		rules = append(rules, Rule{Resource: "secrets", Verb: "get", Name: secret.Name})
	}
	return rules
}

// AccessError lists the permissions the kubeconfig's user lacks.
type AccessError struct {
	Namespace string
	Missing   []Rule
}

func (e *AccessError) Error() string {
	var what, yaml []string
	for _, r := range e.Missing {
		w := r.Verb + " " + r.Resource
		if r.Name != "" {
			w += " " + r.Name
		}
		what = append(what, w)
		yaml = append(yaml, r.YAML())
	}
	return fmt.Sprintf("the kubeconfig's user may not %s in namespace %s; add to its Role:\n%s",
		strings.Join(what, ", "), e.Namespace, strings.Join(yaml, "\n"))
}

// CheckAccess asks the API server (a SelfSubjectAccessReview each) whether the kubeconfig's
// user holds every rule in namespace, and returns an *AccessError naming the missing ones.
func CheckAccess(ctx context.Context, client kubernetes.Interface, namespace string, rules []Rule) error {
	var missing []Rule
	for _, r := range rules {
		resource, sub, _ := strings.Cut(r.Resource, "/")
		review, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: r.Verb, Group: r.Group, Resource: resource, Subresource: sub, Name: r.Name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("ask the API server whether the kubeconfig's user may %s %s: %w", r.Verb, r.Resource, err)
		}
		if !review.Status.Allowed {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return &AccessError{Namespace: namespace, Missing: missing}
	}
	return nil
}

// ReadSecret returns the value of one key of a Secret in namespace. The value is a secret: the
// caller must mask it before anything can show it. Errors never contain a value.
func ReadSecret(ctx context.Context, client kubernetes.Interface, namespace string, ref forwardspec.SecretRef) (string, error) {
	s, err := client.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("%s: no Secret %s in namespace %s", ref, ref.Name, namespace)
	case err != nil:
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		return "", fmt.Errorf("%s: the Secret has no key %s (its keys: %s)", ref, ref.Key, strings.Join(keys(s), ", "))
	}
	if len(v) == 0 {
		return "", fmt.Errorf("%s: the key %s is empty", ref, ref.Key)
	}
	return string(v), nil
}

func keys(s *corev1.Secret) []string {
	var out []string
	for k := range s.Data {
		out = append(out, k)
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	slices.Sort(out)
	return out
}
