// Package readiness decides whether the resources of a Helm release are ready: kstatus on every
// object of the manifest, watched through informers, plus pod-level signals that decide a
// failure at once (CrashLoopBackOff, image pull errors, Unschedulable, a container that exits
// with an error, a restart count that rises), a stability window once all are ready, and an
// optional HTTP probe. It implements rollout.Waiter.
package readiness

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Waiter waits for the resources of a manifest to become ready and stay ready.
type Waiter struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	Log     *slog.Logger
	// HTTPClient is used for the probe URL; nil means a default client with a short timeout.
	HTTPClient *http.Client
}

var _ rollout.Waiter = (*Waiter)(nil)

// New returns a Waiter for the cluster of cfg. A nil log discards.
func New(cfg *rest.Config, log *slog.Logger) (*Waiter, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	return &Waiter{Client: client, Dynamic: dyn, Mapper: mapper, Log: log}, nil
}

// safetyTick re-evaluates everything now and then, in case a timer and an event race; all
// real progress comes from watch events.
const safetyTick = 500 * time.Millisecond

// Wait watches every resource of req.Manifest until all are Current (kstatus) and have stayed
// so, with no decisive pod signal and a passing probe, for req.StabilityWindow. A failure is a
// *rollout.NotReady; a cancelled ctx returns its error (wrapped), not a NotReady.
func (w *Waiter) Wait(ctx context.Context, req rollout.WaitRequest) error {
	start := time.Now()
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	resources, err := parseManifest(req.Manifest, req.Namespace, w.Mapper)
	if err != nil {
		return fmt.Errorf("wait for readiness: %w", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	wt := &waiting{
		w:            w,
		req:          req,
		log:          log,
		start:        start,
		st:           &state{resources: resources, stores: make([]cache.Store, len(resources)), pods: map[string]cache.Store{}, seen: restarts{}},
		done:         runCtx.Done(),
		kick:         make(chan struct{}, 1),
		podEvents:    make(chan *corev1.Pod, 256),
		probeStart:   make(chan struct{}),
		probeResults: make(chan probeResult),
		lagging:      map[*resource]bool{},
	}
	defer func() {
		cancel()
		wt.wg.Wait()
	}()
	if err := wt.watch(runCtx); err != nil {
		return err
	}
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		wt.timeout = t.C
	}
	if err := wt.sync(ctx); err != nil {
		return err
	}
	log.Debug("watching", "resources", len(resources), "after", time.Since(start))
	if req.ProbeURL != "" {
		wt.wg.Go(func() { w.prober(runCtx, req.ProbeURL, wt.probeStart, wt.probeResults) })
	}
	return wt.loop(ctx)
}

// waiting is one call of Wait: its watches and the channels they report on, its timers, and how
// far the release has got (all resources ready, the probe passing, the stability window).
type waiting struct {
	w     *Waiter
	req   rollout.WaitRequest
	log   *slog.Logger
	start time.Time
	st    *state

	// done is closed when Wait returns; the informers, the sync and the prober stop then, and
	// Wait waits for them with wg.
	done      <-chan struct{}
	wg        sync.WaitGroup
	synced    []cache.InformerSynced
	watchErrs lastError

	kick         chan struct{}    // a watched object changed, or a pod was deleted
	podEvents    chan *corev1.Pod // a pod was added or updated
	probeStart   chan struct{}    // closed once all resources are first ready
	probeResults chan probeResult

	timeout     <-chan time.Time // nil without req.Timeout
	safety      *time.Ticker
	windowTimer *time.Timer

	inWindow     bool
	windowEnd    time.Time
	lagging      map[*resource]bool // workloads seen in the window with a status behind their pods
	probeStarted bool
	probeOK      bool
	probeErr     error // the last failed probe, for a timeout's message
}

// notify asks the loop to evaluate again; one pending request is enough.
func (wt *waiting) notify() {
	select {
	case wt.kick <- struct{}{}:
	default:
	}
}

// sendPod passes an added or updated pod to the loop, which checks it for a decisive signal.
func (wt *waiting) sendPod(obj any) {
	if pod, ok := obj.(*corev1.Pod); ok {
		select {
		case wt.podEvents <- pod:
		case <-wt.done:
		}
	}
}

// watch starts, until ctx ends, an informer on each resource of the manifest and one on the
// pods of each namespace that has a workload.
func (wt *waiting) watch(ctx context.Context) error {
	st := wt.st
	for i, r := range st.resources {
		inf := dynamicinformer.NewFilteredDynamicInformer(wt.w.Dynamic, r.gvr, r.namespace, 0, cache.Indexers{},
			func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", r.name).String()
			},
		).Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { wt.notify() },
			UpdateFunc: func(any, any) { wt.notify() },
			DeleteFunc: func(any) { wt.notify() },
		}); err != nil {
			return fmt.Errorf("wait for readiness: watch %s: %w", r.id(), err)
		}
		st.stores[i] = inf.GetStore()
		wt.run(ctx, r.id(), inf)
	}
	for _, r := range st.resources {
		if !r.workload() || st.pods[r.namespace] != nil {
			continue
		}
		inf := informers.NewSharedInformerFactoryWithOptions(wt.w.Client, 0, informers.WithNamespace(r.namespace)).Core().V1().Pods().Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    wt.sendPod,
			UpdateFunc: func(_, obj any) { wt.sendPod(obj) },
			DeleteFunc: func(any) { wt.notify() },
		}); err != nil {
			return fmt.Errorf("wait for readiness: watch pods in %s: %w", r.namespace, err)
		}
		st.pods[r.namespace] = inf.GetStore()
		wt.run(ctx, "pods in "+r.namespace, inf)
	}
	return nil
}

// run runs an informer until ctx ends, keeping its latest watch error for a timeout's message.
func (wt *waiting) run(ctx context.Context, name string, inf cache.SharedIndexInformer) {
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		wt.watchErrs.set(fmt.Errorf("watch %s: %w", name, err))
		wt.log.Debug("watch error", "what", name, "err", err)
	})
	wt.synced = append(wt.synced, inf.HasSynced)
	wt.wg.Go(func() { inf.RunWithContext(ctx) })
}

// sync waits until every informer has listed its objects, or ctx ends, or the timeout expires.
func (wt *waiting) sync(ctx context.Context) error {
	synced := make(chan struct{})
	wt.wg.Go(func() {
		if cache.WaitForCacheSync(wt.done, wt.synced...) {
			close(synced)
		}
	})
	select {
	case <-synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for readiness: %w", ctx.Err())
	case <-wt.timeout:
		msg := fmt.Sprintf("the watches did not sync within %s", wt.req.Timeout)
		if err := wt.watchErrs.get(); err != nil {
			msg += ": " + err.Error()
		}
		return &rollout.NotReady{Reason: "Timeout", Message: msg, After: time.Since(wt.start)}
	}
}

// loop steps until the wait is decided.
func (wt *waiting) loop(ctx context.Context) error {
	wt.safety = time.NewTicker(safetyTick)
	defer wt.safety.Stop()
	wt.windowTimer = time.NewTimer(time.Hour)
	wt.windowTimer.Stop()
	defer wt.windowTimer.Stop()
	for {
		if done, err := wt.step(ctx); done {
			return err
		}
	}
}

// step evaluates every resource and pod once and acts on the outcome: a decisive signal fails
// the wait; a workload no longer Current inside the window is rechecked; a window that ran its
// course ends it; all resources Current start the probe and the window. Then, unless the window
// has just started, it awaits the next event. done reports that the wait is decided; err is
// then nil when the release is ready.
func (wt *waiting) step(ctx context.Context) (done bool, err error) {
	ev := wt.st.evaluate(wt.log)
	if ev.failed != nil {
		return true, wt.fail(ctx, ev.failed, ev.signal, ev.namespace)
	}
	now := time.Now()
	switch {
	case wt.inWindow && ev.pending != nil:
		if err := wt.recheck(ctx, ev.pending); err != nil {
			return true, err
		}
	case wt.inWindow && !now.Before(wt.windowEnd):
		return true, wt.endWindow(ctx)
	case !wt.inWindow && ev.pending == nil:
		if wt.startWindow(now) {
			return false, nil
		}
	}
	if err := wt.await(ctx); err != nil {
		return true, err
	}
	return false, nil
}

// recheck is called when resource p is no longer Current inside the window. It fails the wait
// unless the workload's pods are still those of the window's start, all ready: then only its
// status is behind, and the window goes on.
func (wt *waiting) recheck(ctx context.Context, p *pending) error {
	// The workload's status can run ahead of the pod cache: a crashed pod explains
	// the drop better than the drop itself, so ask the API server for its pods.
	nr, sig, ns, steady := wt.w.freshPods(ctx, wt.st, p.res)
	if nr != nil {
		return wt.fail(ctx, nr, sig, ns)
	}
	if !steady {
		return wt.fail(ctx, &rollout.NotReady{
			Resource: p.res.id(), Reason: "NotReadyAgain",
			Message: fmt.Sprintf("%s again: %s", p.status, p.message),
		}, nil, "")
	}
	// The status went back while its pods did not: a controller publishing a status
	// computed from a stale cache (seen right after a StatefulSet was re-created).
	// The window goes on; it ends only once the status is current again.
	if !wt.lagging[p.res] {
		wt.lagging[p.res] = true
		wt.log.Info("status behind its pods, which are all still ready; waiting for it", "resource", p.res.id(),
			"status", p.status, "message", p.message)
	}
	return nil
}

// endWindow ends a stability window that ran its course with every resource Current: the
// release is ready once the probe, if any, passes one last time.
func (wt *waiting) endWindow(ctx context.Context) error {
	req := wt.req
	if req.ProbeURL != "" {
		pctx, pcancel := context.WithTimeout(ctx, probeTimeout)
		err := wt.w.probe(pctx, req.ProbeURL)
		pcancel()
		if ctx.Err() != nil {
			return fmt.Errorf("wait for readiness: %w", ctx.Err())
		}
		if err != nil {
			return wt.fail(ctx, &rollout.NotReady{Resource: "probe " + req.ProbeURL, Reason: "ProbeFailed", Message: err.Error()}, nil, "")
		}
	}
	wt.log.Info("ready", "resources", len(wt.st.resources), "window", req.StabilityWindow, "after", time.Since(wt.start))
	return nil
}

// startWindow is called when every resource is Current outside the window: it starts the
// prober, when there is a probe URL, and the stability window once the probe has passed (at
// once without one). It reports whether the window started.
func (wt *waiting) startWindow(now time.Time) bool {
	req := wt.req
	if req.ProbeURL != "" && !wt.probeStarted {
		wt.probeStarted = true
		close(wt.probeStart)
	}
	if req.ProbeURL == "" || wt.probeOK {
		wt.inWindow = true
		wt.st.windowPods = wt.st.readyPods()
		wt.windowEnd = now.Add(req.StabilityWindow)
		wt.windowTimer.Reset(req.StabilityWindow)
		wt.log.Info("all resources ready; stability window", "window", req.StabilityWindow, "after", time.Since(wt.start))
		return true
	}
	return false
}

// await waits for the next thing that may change the evaluation: a watch event, a pod, a probe
// result, the end of the window or the safety tick. It returns an error when that decides the
// wait: ctx ends, the timeout expires, a pod shows a decisive signal, or the probe fails inside
// the window.
func (wt *waiting) await(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait for readiness: %w", ctx.Err())
	case <-wt.timeout:
		return wt.fail(ctx, wt.st.timedOut(wt.req, wt.inWindow, wt.probeErr), nil, "")
	case <-wt.kick:
	case pod := <-wt.podEvents:
		if nr, sig, ns := wt.st.checkPod(pod); nr != nil {
			return wt.fail(ctx, nr, sig, ns)
		}
	case r := <-wt.probeResults:
		wt.probeOK = r.err == nil
		if r.err != nil {
			wt.probeErr = r.err
			wt.log.Debug("probe failed", "url", wt.req.ProbeURL, "err", r.err)
			if wt.inWindow {
				return wt.fail(ctx, &rollout.NotReady{Resource: "probe " + wt.req.ProbeURL, Reason: "ProbeFailed", Message: r.err.Error()}, nil, "")
			}
		}
	case <-wt.windowTimer.C:
	case <-wt.safety.C:
	}
	return nil
}

// fail completes nr (whether in the window, when, and for a pod's signal sig in namespace the
// failing container's last log lines), logs it and returns it.
func (wt *waiting) fail(ctx context.Context, nr *rollout.NotReady, sig *podSignal, namespace string) error {
	nr.InWindow = wt.inWindow
	if sig != nil && sig.container != "" {
		nr.Logs = wt.w.containerLogs(ctx, namespace, nr.Pod, *sig, wt.req.LogLines)
	}
	nr.After = time.Since(wt.start)
	wt.log.Info("not ready", "resource", nr.Resource, "pod", nr.Pod, "container", nr.Container,
		"reason", nr.Reason, "message", nr.Message, "in_window", nr.InWindow, "after", nr.After)
	return nr
}

// state is what the wait knows: the resources, their watched objects and the pods.
type state struct {
	resources []*resource
	stores    []cache.Store
	pods      map[string]cache.Store // by namespace
	seen      restarts
	last      []status.Status
	// windowPods are the workloads' ready pods when the stability window started.
	windowPods map[types.UID]bool
}

// readyPods returns the ready pods, not being deleted, of the manifest's workloads.
func (st *state) readyPods() map[types.UID]bool {
	ready := map[types.UID]bool{}
	for _, store := range st.pods {
		for _, obj := range store.List() {
			if pod, ok := obj.(*corev1.Pod); ok && pod.DeletionTimestamp == nil && podReady(pod) && st.owner(pod) != nil {
				ready[pod.UID] = true
			}
		}
	}
	return ready
}

type pending struct {
	res     *resource
	status  status.Status
	message string
}

type evaluation struct {
	// failed is the first decisive signal (signal and namespace are set for a pod's).
	failed    *rollout.NotReady
	signal    *podSignal
	namespace string
	// pending is the first resource that is not Current; nil when all are.
	pending *pending
}

func (st *state) live(i int) *unstructured.Unstructured {
	obj, ok, err := st.stores[i].GetByKey(st.resources[i].key())
	if err != nil || !ok {
		return nil
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u
}

// compute is the kstatus of resource i.
func (st *state) compute(i int) (status.Status, string) {
	u := st.live(i)
	if u == nil {
		return status.NotFoundStatus, "not found"
	}
	res, err := status.Compute(u)
	if err != nil {
		return status.UnknownStatus, err.Error()
	}
	return res.Status, res.Message
}

// evaluate computes every resource's status and checks every pod of the workloads.
func (st *state) evaluate(log *slog.Logger) evaluation {
	var ev evaluation
	if st.last == nil {
		st.last = make([]status.Status, len(st.resources))
	}
	for i, r := range st.resources {
		s, msg := st.compute(i)
		if s != st.last[i] {
			st.last[i] = s
			log.Info("resource", "resource", r.id(), "status", s, "message", msg)
		}
		if s == status.FailedStatus {
			ev.failed = &rollout.NotReady{Resource: r.id(), Reason: "Failed", Message: msg}
			return ev
		}
		if s != status.CurrentStatus && ev.pending == nil {
			ev.pending = &pending{res: r, status: s, message: msg}
		}
	}
	for ns, store := range st.pods {
		for _, obj := range store.List() {
			pod, ok := obj.(*corev1.Pod)
			if !ok || pod.Namespace != ns {
				continue
			}
			if nr, sig, ns := st.checkPod(pod); nr != nil {
				ev.failed, ev.signal, ev.namespace = nr, sig, ns
				return ev
			}
		}
	}
	return ev
}

// owner returns the first workload of the manifest whose selector matches the pod.
func (st *state) owner(pod *corev1.Pod) *resource {
	set := labels.Set(pod.Labels)
	for i, r := range st.resources {
		if !r.workload() || r.namespace != pod.Namespace {
			continue
		}
		sel, err := selectorOf(st.live(i), r.desired)
		if err != nil || sel == nil {
			continue
		}
		if sel.Matches(set) {
			return r
		}
	}
	return nil
}

// checkPod returns the pod's decisive signal as a NotReady, if the pod belongs to a workload
// of the manifest and is not being deleted.
func (st *state) checkPod(pod *corev1.Pod) (*rollout.NotReady, *podSignal, string) {
	if pod.DeletionTimestamp != nil {
		return nil, nil, ""
	}
	r := st.owner(pod)
	if r == nil {
		return nil, nil, ""
	}
	st.seen.observe(pod)
	sig, ok := decisive(pod, st.seen)
	if !ok {
		return nil, nil, ""
	}
	return &rollout.NotReady{
		Resource: r.id(), Pod: pod.Name, Container: sig.container, Reason: sig.reason, Message: sig.message,
	}, &sig, pod.Namespace
}

// timedOut describes what was still not ready when the timeout expired.
func (st *state) timedOut(req rollout.WaitRequest, inWindow bool, probeErr error) *rollout.NotReady {
	nr := &rollout.NotReady{Reason: "Timeout"}
	for i, r := range st.resources {
		s, msg := st.compute(i)
		if s == status.CurrentStatus {
			continue
		}
		nr.Resource = r.id()
		nr.Message = fmt.Sprintf("%s after %s: %s", s, req.Timeout, msg)
		if r.workload() {
			if pod := st.pendingPod(i); pod != nil {
				nr.Pod = pod.Name
				nr.Message += "; " + describePending(pod)
			}
		}
		return nr
	}
	switch {
	case inWindow:
		nr.Resource = "all resources"
		nr.Message = fmt.Sprintf("the timeout of %s expired inside the stability window of %s", req.Timeout, req.StabilityWindow)
	case req.ProbeURL != "":
		nr.Resource = "probe " + req.ProbeURL
		nr.Message = fmt.Sprintf("all resources are ready but the probe did not succeed within %s", req.Timeout)
		if probeErr != nil {
			nr.Message += ": " + probeErr.Error()
		}
	default:
		nr.Resource = "all resources"
		nr.Message = fmt.Sprintf("timeout of %s expired", req.Timeout)
	}
	return nr
}

// pendingPod is the first pod of workload i that is not ready.
func (st *state) pendingPod(i int) *corev1.Pod {
	r := st.resources[i]
	store := st.pods[r.namespace]
	if store == nil {
		return nil
	}
	sel, err := selectorOf(st.live(i), r.desired)
	if err != nil || sel == nil {
		return nil
	}
	var first *corev1.Pod
	for _, obj := range store.List() {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.DeletionTimestamp != nil || !sel.Matches(labels.Set(pod.Labels)) || podReady(pod) {
			continue
		}
		if first == nil || pod.Name < first.Name {
			first = pod
		}
	}
	return first
}

// lastError keeps the latest watch error, for a timeout's message.
type lastError struct {
	mu  sync.Mutex
	err error
}

func (l *lastError) set(err error) { l.mu.Lock(); l.err = err; l.mu.Unlock() }

func (l *lastError) get() error { l.mu.Lock(); defer l.mu.Unlock(); return l.err }

// freshPods lists the pods of workload r straight from the API server (the informer's cache
// may lag the workload's own status by a moment) and returns the first decisive signal among
// them, if any. steady reports whether the pods show the workload as it was when the
// stability window started: exactly as many pods as its spec.replicas, each one of the ready
// pods of that moment, still ready, not being deleted, and (for a StatefulSet) controlled by
// the workload. A pod replaced, restarted into unreadiness, or missing is not steady.
func (w *Waiter) freshPods(ctx context.Context, st *state, r *resource) (_ *rollout.NotReady, _ *podSignal, _ string, steady bool) {
	if !r.workload() {
		return nil, nil, "", false
	}
	for i, res := range st.resources {
		if res != r {
			continue
		}
		live := st.live(i)
		sel, err := selectorOf(live, r.desired)
		if err != nil || sel == nil || live == nil {
			return nil, nil, "", false
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pods, err := w.Client.CoreV1().Pods(r.namespace).List(lctx, metav1.ListOptions{LabelSelector: sel.String()})
		cancel()
		if err != nil {
			return nil, nil, "", false
		}
		for k := range pods.Items {
			if nr, sig, ns := st.checkPod(&pods.Items[k]); nr != nil {
				return nr, sig, ns, false
			}
		}
		replicas, found, err := unstructured.NestedInt64(live.Object, "spec", "replicas")
		if err != nil || !found || int64(len(pods.Items)) != replicas {
			return nil, nil, "", false
		}
		for k := range pods.Items {
			pod := &pods.Items[k]
			if pod.DeletionTimestamp != nil || !podReady(pod) || !st.windowPods[pod.UID] {
				return nil, nil, "", false
			}
			if owner := metav1.GetControllerOf(pod); live.GetKind() == "StatefulSet" && (owner == nil || owner.UID != live.GetUID()) {
				return nil, nil, "", false
			}
		}
		return nil, nil, "", true
	}
	return nil, nil, "", false
}
