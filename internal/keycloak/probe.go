package keycloak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
	"github.com/identity-upgrade/identity-upgrade/internal/kubeforward"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Prober checks a running Keycloak as its users reach it, through the API server (a
// port-forward to a ready Keycloak pod, so it works from a runner outside the cluster and
// never depends on an Ingress): every realm's OIDC discovery document answers 200 with its
// issuer; with an admin's credentials, the admin API answers too and has every theme the
// realms name. It implements rollout.Prober.
type Prober struct {
	Config *rest.Config
	Client kubernetes.Interface
	// Workload names the Keycloak workload (statefulset/NAME); empty: detected.
	Workload string
	// User and Password are an admin of the master realm (keycloak-admin-user and
	// keycloak-admin-password): production's, which a clone of its database holds too. The
	// admin API and the themes are not checked without them.
	User, Password string
	Log            *slog.Logger
}

var _ rollout.Prober = Prober{}

// defaultHTTPPort is Keycloak's HTTP port when the container names none.
const defaultHTTPPort = 8080

// Probe checks the realms of the Keycloak of manifest in namespace.
func (p Prober) Probe(ctx context.Context, namespace, manifest string, realms []string) (string, error) {
	targets, err := Detect(manifest, p.Workload)
	if err != nil {
		return "", err
	}
	w := Workloads{Client: p.Client, Log: p.Log}
	var pod *corev1.Pod
	for _, t := range targets {
		selector, err := w.specSelector(ctx, namespace, t)
		if err != nil {
			return "", err
		}
		pods, err := p.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return "", fmt.Errorf("list the pods of %s/%s: %w", t.Kind, t.Name, err)
		}
		for i := range pods.Items {
			if ready(&pods.Items[i]) {
				pod = &pods.Items[i]
				break
			}
		}
	}
	if pod == nil {
		return "", errors.New("no Keycloak pod is ready to check")
	}
	port := httpPort(pod.Spec.Containers)
	fwd, err := kubeforward.Start(ctx, kubeforward.Options{Config: p.Config, Client: p.Client, Namespace: namespace,
		Spec: forwardspec.Spec{Kind: forwardspec.KindPod, Name: pod.Name, Port: strconv.Itoa(port)}, Log: p.Log})
	if err != nil {
		return "", fmt.Errorf("reach Keycloak's pod %s: %w", pod.Name, err)
	}
	defer fwd.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	var errs []error
	var ok []string
	for _, realm := range realms {
		url := fmt.Sprintf("http://%s/auth/realms/%s/.well-known/openid-configuration", fwd.Addr(), realm)
		if err := discovery(ctx, client, url); err != nil {
			errs = append(errs, fmt.Errorf("realm %s: %w", realm, err))
			continue
		}
		ok = append(ok, realm)
	}
	checked := fmt.Sprintf("OIDC discovery of %d realms answered through pod %s (%s)", len(ok), pod.Name, strings.Join(ok, ", "))
	switch {
	case len(errs) > 0:
		// A realm that does not answer fails the check whatever the themes: missing-theme
		// warn must not make it pass.
		return checked, errors.Join(errs...)
	case p.User == "" || p.Password == "":
		return checked + "; the admin API and the themes not checked (keycloak-admin-user and keycloak-admin-password not given)", nil
	}
	admin := &Admin{BaseURL: "http://" + fwd.Addr(), User: p.User, Password: p.Password, Log: p.Log}
	themes, err := adminThemes(ctx, admin)
	if themes != "" {
		checked += "; " + themes
	}
	return checked, err
}

// adminThemes checks that the admin API answers and that Keycloak has every theme the realms
// name, and says what it found once the admin API answered; a missing theme is an error
// wrapping rollout.ErrMissingTheme.
func adminThemes(ctx context.Context, admin *Admin) (string, error) {
	info, err := admin.ServerInfo(ctx)
	if err != nil {
		return "", fmt.Errorf("admin API: %w", err)
	}
	realms, err := admin.Realms(ctx)
	if err != nil {
		return "", fmt.Errorf("admin API: %w", err)
	}
	check := themeCheck(info, realms, nil)
	answered := "admin API answered; " + check.String()
	if len(check.Missing) > 0 {
		return answered, fmt.Errorf("%w: %s", rollout.ErrMissingTheme, check)
	}
	return answered, nil
}

// discovery fetches an OIDC discovery document and checks that it names its issuer.
func discovery(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("discovery answered %s: %.200s", resp.Status, body)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == "" {
		return fmt.Errorf("discovery answered no issuer: %.200s", body)
	}
	return nil
}

// httpPort is the Keycloak container's HTTP port: the one named http, else 8080.
func httpPort(cs []corev1.Container) int {
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == "http" {
				return int(p.ContainerPort)
			}
		}
	}
	return defaultHTTPPort
}

func ready(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
