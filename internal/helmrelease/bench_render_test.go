package helmrelease_test

import (
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// BenchmarkRenderFindings measures what the plan's render costs on the test charts' release,
// each iteration on a fresh client (so the cluster's discovery is read every time): against
// helm's own dry run of the same upgrade, alternately in the same process, on a release helm
// can render; and alone on a release installed before Kubernetes 1.22, which helm cannot.
//
//	go test ./internal/helmrelease -run '^$' -bench RenderFindings -benchtime 20x
func BenchmarkRenderFindings(b *testing.B) {
	kube := testworld.Cluster(b)
	newClient := func() *helmrelease.Client {
		c, err := helmrelease.New(helmrelease.Options{KubeconfigData: kube.KubeconfigData, Namespace: kube.Namespace})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	if _, err := newClient().Install(b.Context(), "identity", chart13, map[string]any{"hooks": map[string]any{"enabled": false}}, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	if _, err := newClient().InstallWithRemovedAPIs(b.Context(), "before122", chart13,
		map[string]any{"hooks": map[string]any{"enabled": false}, "ingress": map[string]any{"enabled": true}}, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	if err := kube.CreatePullSecret(b.Context(), "quay-registry-secret"); err != nil {
		b.Fatal(err)
	}
	spec := helmrelease.UpgradeSpec{Chart: chart14, ReuseValues: true}
	var ours, helms, mapped time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := (helmrelease.Renderer{Client: newClient(), Spec: spec}).Render(b.Context(), "identity"); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)

		start = time.Now()
		if _, err := newClient().PlainRender(b.Context(), "identity", chart14); err != nil {
			b.Fatal(err)
		}
		helms += time.Since(start)

		start = time.Now()
		target, err := (helmrelease.Renderer{Client: newClient(), Spec: spec}).Render(b.Context(), "before122")
		if err != nil || len(target.RemovedAPIs) != 1 || len(target.ConvertedAPIs) != 1 {
			b.Fatalf("render of the release installed before 1.22: %v %v %v", err, target.RemovedAPIs, target.ConvertedAPIs)
		}
		mapped += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(ours.Seconds()*1000/n, "ms/render")
	b.ReportMetric(helms.Seconds()*1000/n, "ms/helm-dry-run")
	b.ReportMetric(float64(ours)/float64(helms), "x-helm")
	b.ReportMetric(mapped.Seconds()*1000/n, "ms/render-before-1.22")
}
