package readiness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// probeTimeout bounds one probe request when the Waiter has no HTTPClient of its own.
const probeTimeout = 3 * time.Second

// probeInterval is how often the probe URL is checked once all resources are ready.
const probeInterval = time.Second

type probeResult struct {
	err error
	at  time.Time
}

// probe GETs the URL once; any 2xx is success.
func (w *Waiter) probe(ctx context.Context, url string) error {
	client := w.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: probeTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// prober probes the URL every probeInterval once start is closed, sending each result, until
// ctx ends.
func (w *Waiter) prober(ctx context.Context, url string, start <-chan struct{}, results chan<- probeResult) {
	select {
	case <-start:
	case <-ctx.Done():
		return
	}
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		err := w.probe(ctx, url)
		if ctx.Err() != nil {
			return
		}
		select {
		case results <- probeResult{err: err, at: time.Now()}:
		case <-ctx.Done():
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
