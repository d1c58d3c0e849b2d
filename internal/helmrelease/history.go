package helmrelease

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Sentinel errors of the reads of stored revisions.
var (
	// ErrReleaseNotFound is returned when the release has no revision in the namespace.
	ErrReleaseNotFound = errors.New("release not found")
	// ErrNoDeployedRevision is returned by Deployed when no revision is deployed.
	ErrNoDeployedRevision = errors.New("release has no deployed revision")
)

// Current returns the latest revision of the release, whatever its status.
func (c *Client) Current(name string) (rollout.Release, error) {
	rel, err := c.cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return rollout.Release{}, fmt.Errorf("release %q in namespace %q: %w", name, c.namespace, ErrReleaseNotFound)
	}
	if err != nil {
		return rollout.Release{}, fmt.Errorf("read release %q: %w", name, err)
	}
	return fromHelm(rel), nil
}

// History returns every stored revision of the release, oldest first.
func (c *Client) History(name string) ([]rollout.Release, error) {
	rels, err := c.cfg.Releases.History(name)
	if errors.Is(err, driver.ErrReleaseNotFound) || (err == nil && len(rels) == 0) {
		return nil, fmt.Errorf("release %q in namespace %q: %w", name, c.namespace, ErrReleaseNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read history of %q: %w", name, err)
	}
	out := make([]rollout.Release, len(rels))
	for i, r := range rels {
		out[i] = fromHelm(r)
	}
	slices.SortFunc(out, func(a, b rollout.Release) int { return a.Revision - b.Revision })
	return out, nil
}

// Deployed returns the newest revision whose status is deployed: the one running when the
// latest revision failed or was unlocked. It fails with ErrNoDeployedRevision when there is none
// (a failed install, or every revision failed or superseded).
func (c *Client) Deployed(ctx context.Context, name string) (rollout.Release, error) {
	if err := ctx.Err(); err != nil {
		return rollout.Release{}, fmt.Errorf("deployed revision of %q: %w", name, context.Cause(ctx))
	}
	rel, err := c.cfg.Releases.Deployed(name)
	if errors.Is(err, driver.ErrNoDeployedReleases) {
		return rollout.Release{}, fmt.Errorf("release %q in namespace %q: %w", name, c.namespace, ErrNoDeployedRevision)
	}
	if err != nil {
		return rollout.Release{}, fmt.Errorf("read deployed revision of %q: %w", name, err)
	}
	return fromHelm(rel), nil
}

// Values returns the values the user gave revision `revision` of the release (helm get values,
// without the chart's defaults), as YAML; "{}" when none were given.
func (c *Client) Values(ctx context.Context, name string, revision int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("values of %q revision %d: %w", name, revision, context.Cause(ctx))
	}
	stored, err := c.revision(name, revision)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	if len(stored.Config) == 0 {
		return []byte("{}\n"), nil
	}
	out, err := yaml.Marshal(stored.Config)
	if err != nil {
		return nil, fmt.Errorf("values of %q revision %d: %w", name, revision, err)
	}
	return out, nil
}

// revision reads one stored revision; revision must be > 0.
func (c *Client) revision(name string, revision int) (*release.Release, error) {
	if revision <= 0 {
		return nil, fmt.Errorf("release %q: invalid revision %d", name, revision)
	}
	stored, err := c.cfg.Releases.Get(name, revision)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, fmt.Errorf("release %q revision %d in namespace %q: %w", name, revision, c.namespace, ErrReleaseNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read release %q revision %d: %w", name, revision, err)
	}
	if stored.Info == nil {
		return nil, fmt.Errorf("release %q revision %d has no status record", name, revision)
	}
	return stored, nil
}
