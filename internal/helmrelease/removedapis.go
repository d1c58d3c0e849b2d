package helmrelease

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/client-go/discovery"

	"github.com/identity-upgrade/identity-upgrade/internal/kubeapis"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// servedAPIs is what the cluster's discovery serves, as "group/version/Kind" ("v1/Kind" for
// the core group), read once per client: a run reads it in its plan and converts with it.
func (c *Client) servedAPIs(ctx context.Context) (kubeapis.Served, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.served == nil {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read the cluster's APIs: %w", context.Cause(ctx))
		}
		dc, err := c.cfg.RESTClientGetter.ToDiscoveryClient()
		if err != nil {
			return nil, fmt.Errorf("read the cluster's APIs: %w", err)
		}
		// A group whose discovery failed (an aggregated API that is down) is left out; the
		// removed APIs' replacements are all served by the API server itself.
		_, lists, err := dc.ServerGroupsAndResources()
		if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
			return nil, fmt.Errorf("read the cluster's APIs: %w", err)
		}
		served := map[string]bool{}
		for _, l := range lists {
			for _, r := range l.APIResources {
				served[path.Join(l.GroupVersion, r.Kind)] = true
			}
		}
		c.served = served
	}
	served := c.served
	return func(apiVersion, kind string) bool { return served[apiVersion+"/"+kind] }, nil
}

// servedIfKnown is the served set when a call before has read it, else nil.
func (c *Client) servedIfKnown() kubeapis.Served {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.served == nil {
		return nil
	}
	served := c.served
	return func(apiVersion, kind string) bool { return served[apiVersion+"/"+kind] }
}

func fromConversions(convs []kubeapis.Conversion) []rollout.APIConversion {
	out := make([]rollout.APIConversion, 0, len(convs))
	for _, c := range convs {
		out = append(out, rollout.APIConversion{Kind: c.Kind, Name: c.Name, From: c.From, To: c.To, RemovedIn: c.RemovedIn, Fields: c.Fields})
	}
	return out
}

// mapRelease converts the stored manifest (and hook manifests) of rel to served APIs, in
// place, and returns what it converted.
func mapRelease(rel *release.Release, served kubeapis.Served) ([]kubeapis.Conversion, error) {
	apis := kubeapis.Removed()
	manifest, convs, err := apis.ConvertManifest(rel.Manifest, served)
	if err != nil {
		return nil, fmt.Errorf("revision %d: %w", rel.Version, err)
	}
	rel.Manifest = manifest
	for _, h := range rel.Hooks {
		m, hc, err := apis.ConvertManifest(h.Manifest, served)
		if err != nil {
			return nil, fmt.Errorf("revision %d hook %s/%s: %w", rel.Version, h.Kind, h.Name, err)
		}
		h.Manifest = m
		convs = append(convs, hc...)
	}
	return convs, nil
}

// StoredRemovedAPIs lists the objects of revision's stored manifest (hooks included) whose
// apiVersion the cluster no longer serves, as MapRemovedAPIs would convert them.
func (c *Client) StoredRemovedAPIs(ctx context.Context, name string, revision int) ([]rollout.APIConversion, error) {
	served, err := c.servedAPIs(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := c.revision(name, revision)
	if err != nil {
		return nil, err
	}
	convs, err := mapRelease(stored, served)
	if err != nil {
		return nil, err
	}
	return fromConversions(convs), nil
}

// MappedDescription starts the description (helm history's DESCRIPTION) of a revision that
// MapRemovedAPIs made.
const MappedDescription = "identity-upgrade mapped removed Kubernetes APIs of revision"

// MapRemovedAPIs rewrites the stored manifest of revision rel.Revision to APIs the cluster
// serves, the way the helm-mapkubeapis plugin does: the revision is marked superseded, and a
// copy of it with the mapped manifest is stored as a new revision (the latest + 1), deployed.
// That new revision is what helm upgrades from and rolls back to afterwards; the objects in
// the cluster do not change (the API server has been serving them under the new APIs since it
// stopped serving the old). It returns the new revision and what was converted; a revision
// that needs nothing is returned as it is, with no conversion.
func (c *Client) MapRemovedAPIs(ctx context.Context, rel rollout.Release) (rollout.Release, []rollout.APIConversion, error) {
	served, err := c.servedAPIs(ctx)
	if err != nil {
		return rollout.Release{}, nil, err
	}
	stored, err := c.revision(rel.Name, rel.Revision)
	if err != nil {
		return rollout.Release{}, nil, fmt.Errorf("map removed APIs: %w", err)
	}
	convs, err := mapRelease(stored, served)
	if err != nil {
		return rollout.Release{}, nil, fmt.Errorf("map removed APIs of %q: %w", rel.Name, err)
	}
	if len(convs) == 0 {
		return fromHelm(stored), nil, nil
	}
	last, err := c.cfg.Releases.Last(rel.Name)
	if err != nil {
		return rollout.Release{}, nil, fmt.Errorf("map removed APIs of %q: %w", rel.Name, err)
	}
	if last.Info.Status.IsPending() {
		return rollout.Release{}, nil, fmt.Errorf("map removed APIs of %q: revision %d is %s", rel.Name, last.Version, last.Info.Status)
	}
	// The mapped revision is stored first: killed in between, the release has two deployed
	// revisions, and helm takes the newest (the mapped one) as the deployed one.
	mapped := *stored
	info := *stored.Info
	mapped.Info = &info
	mapped.Version = last.Version + 1
	mapped.Info.Status = release.StatusDeployed
	mapped.Info.LastDeployed = c.cfg.Now()
	var objects []string
	for _, cv := range convs {
		objects = append(objects, cv.Object())
	}
	mapped.Info.Description = fmt.Sprintf("%s %d (%s); roll back to this revision, not to %d",
		MappedDescription, stored.Version, strings.Join(objects, ", "), stored.Version)
	if err := c.cfg.Releases.Create(&mapped); err != nil {
		return rollout.Release{}, nil, fmt.Errorf("map removed APIs of %q: store revision %d: %w", rel.Name, mapped.Version, err)
	}
	original, err := c.revision(rel.Name, rel.Revision)
	if err == nil {
		original.Info.Status = release.StatusSuperseded
		err = c.cfg.Releases.Update(original)
	}
	if err != nil {
		return rollout.Release{}, nil, fmt.Errorf("map removed APIs of %q: mark revision %d superseded: %w", rel.Name, rel.Revision, err)
	}
	out := fromHelm(&mapped)
	c.log.Info("mapped removed APIs", "release", rel.Name, "from", rel.Revision, "revision", out.Revision, "objects", objects)
	return out, fromConversions(convs), nil
}

// mappedConfig is a copy of the client's helm configuration whose storage is an in-memory
// copy of the revisions an upgrade of name reads (the latest and the deployed one), their
// manifests mapped to served APIs: helm's dry run builds the current manifest, and fails on a
// removed API, before it renders anything. It returns nil when no mapping is needed, and what
// the revision the upgrade starts from would have converted.
func (c *Client) mappedConfig(name string, served kubeapis.Served) (*action.Configuration, []kubeapis.Conversion, error) {
	last, err := c.cfg.Releases.Last(name)
	if err != nil {
		// The upgrade itself says what is wrong.
		return nil, nil, nil
	}
	revisions := []*release.Release{last}
	if last.Info.Status != release.StatusDeployed {
		if deployed, err := c.cfg.Releases.Deployed(name); err == nil {
			revisions = append(revisions, deployed)
		}
	}
	var baseConvs []kubeapis.Conversion
	needed := false
	for i, r := range revisions {
		// r is this call's own decoded copy: it is mapped in place.
		convs, err := mapRelease(r, served)
		if err != nil {
			return nil, nil, err
		}
		needed = needed || len(convs) > 0
		if i == len(revisions)-1 {
			// The deployed revision when the latest is not, else the latest: what helm
			// upgrades from.
			baseConvs = convs
		}
	}
	if !needed {
		return nil, nil, nil
	}
	mem := driver.NewMemory()
	mem.SetNamespace(c.namespace)
	cfg := *c.cfg
	cfg.Releases = storage.Init(mem)
	for _, r := range revisions {
		if err := cfg.Releases.Create(r); err != nil {
			return nil, nil, fmt.Errorf("copy revision %d: %w", r.Version, err)
		}
	}
	return &cfg, baseConvs, nil
}

// converter is the post-renderer of convert-removed-apis: it converts the objects of the
// render that the cluster does not serve, and keeps what it converted.
type converter struct {
	served kubeapis.Served
	convs  []kubeapis.Conversion
}

func (p *converter) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	out, convs, err := kubeapis.Removed().ConvertManifest(rendered.String(), p.served)
	if err != nil {
		return nil, fmt.Errorf("convert removed APIs: %w", err)
	}
	p.convs = convs
	return bytes.NewBufferString(out), nil
}

// removedAPIHint adds to helm's error for an object whose apiVersion the cluster does not
// serve ("no matches for kind … ensure CRDs are installed first", which sends a user looking
// for CRDs) what it is and the input that fixes it.
func removedAPIHint(err error) error {
	if err == nil || !strings.Contains(err.Error(), "no matches for kind") {
		return err
	}
	if strings.Contains(err.Error(), "current release manifest") {
		return fmt.Errorf("%w (the stored release has an apiVersion the cluster no longer serves: map-removed-apis maps it to the API that replaced it)", err)
	}
	return fmt.Errorf("%w (the chart renders an apiVersion the cluster no longer serves, or a CRD is missing: convert-removed-apis converts a removed API to the one that replaced it)", err)
}
