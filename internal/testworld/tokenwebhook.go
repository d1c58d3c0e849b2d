package testworld

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// The simulated cluster's API server asks the test binary about every bearer token it does
// not know itself (not a ServiceAccount token): kube-apiserver runs with
// --authentication-token-webhook-config-file pointing at a webhook the binary serves on
// 127.0.0.1, without the webhook's own cache (2 minutes by default): a new token is decided by
// the test at once, and a token it accepted is taken again without asking for 10 seconds (the
// API server's cache of successful authentications, as on every cluster). A test registers what it
// accepts with Kube.AcceptTokens; the API server then authenticates a token as the user that
// the test's validator returns. That is how managed clusters' tokens (EKS, GKE, AKS) are
// accepted here: the validator checks the token as the provider would, against the test's own
// stand-in of the provider's token service.

// TokenValidator decides on a bearer token: the user it authenticates, or ok false when the
// token is not one of the validator's.
type TokenValidator func(token string) (user authenticationv1.UserInfo, ok bool)

// tokenWebhook serves the API server's TokenReviews and asks the registered validators.
type tokenWebhook struct {
	srv        *http.Server
	listener   net.Listener
	mu         sync.Mutex
	validators map[int]TokenValidator
	next       int
}

func startTokenWebhook() (*tokenWebhook, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("token webhook: %w", err)
	}
	w := &tokenWebhook{listener: l, validators: make(map[int]TokenValidator)}
	w.srv = &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second}
	go w.srv.Serve(l)
	return w, nil
}

// kubeconfig writes the webhook's configuration for the API server, a kubeconfig naming the
// webhook's URL, into dir and returns its path.
func (w *tokenWebhook) kubeconfig(dir string) (string, error) {
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: testworld-token-webhook
  cluster:
    server: http://%s/tokenreview
users:
- name: kube-apiserver
contexts:
- name: webhook
  context:
    cluster: testworld-token-webhook
    user: kube-apiserver
current-context: webhook
`, w.listener.Addr())
	path := filepath.Join(dir, "token-webhook.kubeconfig")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

func (w *tokenWebhook) add(v TokenValidator) func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	id := w.next
	w.next++
	w.validators[id] = v
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.validators, id)
	}
}

func (w *tokenWebhook) review(token string) (authenticationv1.UserInfo, bool) {
	w.mu.Lock()
	validators := make([]TokenValidator, 0, len(w.validators))
	for _, v := range w.validators {
		validators = append(validators, v)
	}
	w.mu.Unlock()
	for _, v := range validators {
		if user, ok := v(token); ok {
			return user, true
		}
	}
	return authenticationv1.UserInfo{}, false
}

func (w *tokenWebhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var review authenticationv1.TokenReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	user, ok := w.review(review.Spec.Token)
	review.Spec = authenticationv1.TokenReviewSpec{}
	review.Status = authenticationv1.TokenReviewStatus{Authenticated: ok}
	if ok {
		review.Status.User = user
	} else {
		review.Status.Error = "token not accepted by any test"
	}
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(&review)
}

func (w *tokenWebhook) close() { w.srv.Close() }

// AcceptTokens makes the cluster's API server authenticate the tokens v accepts, until the
// test ends. Other tests' tokens are not v's business: it must say no to what it did not
// issue.
func (k Kube) AcceptTokens(t testing.TB, v TokenValidator) {
	t.Helper()
	if k.cluster.tokens == nil {
		t.Fatal("testworld: this cluster has no token webhook")
	}
	t.Cleanup(k.cluster.tokens.add(v))
}
