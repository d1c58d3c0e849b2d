package testworld_test

import (
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestTokenWebhook: the API server authenticates a token the test's validator accepts as the
// validator's user and refuses others; once the validator's test has ended, its tokens are
// refused.
func TestTokenWebhook(t *testing.T) {
	kube := testworld.Cluster(t)
	const token = "testworld-token-of-alice"
	whoami := func(tok string) (string, error) {
		cfg := rest.AnonymousClientConfig(kube.Config)
		cfg.BearerToken = tok
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		review, err := client.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return review.Status.UserInfo.Username, nil
	}
	t.Run("accepted", func(t *testing.T) {
		kube.AcceptTokens(t, func(tok string) (authenticationv1.UserInfo, bool) {
			return authenticationv1.UserInfo{Username: "alice"}, strings.HasPrefix(tok, token)
		})
		if user, err := whoami(token); err != nil || user != "alice" {
			t.Fatalf("user %q, error %v; want alice", user, err)
		}
		if _, err := whoami("another-token"); !apierrors.IsUnauthorized(err) {
			t.Errorf("another token: %v, want Unauthorized", err)
		}
	})
	// A token the API server has not seen (it keeps accepted ones for 10 seconds).
	if _, err := whoami(token + "-2"); !apierrors.IsUnauthorized(err) {
		t.Errorf("after the validator's test ended: %v, want Unauthorized", err)
	}
}
