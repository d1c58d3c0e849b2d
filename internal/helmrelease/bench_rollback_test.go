package helmrelease_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/identity-upgrade/identity-upgrade/internal/cli"
	"github.com/identity-upgrade/identity-upgrade/internal/helmrelease"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The rollback benchmark: `identity-upgrade upgrade` against helm's own `helm upgrade --atomic`
// (the SDK's action.Upgrade with Atomic, Wait and Timeout) on the simulated cluster, one run per
// scenario and tool, each in a fresh namespace with a fresh database. Both tools upgrade the
// 1.4-like chart to itself with a new Keycloak image tag (and a fault): only the Keycloak
// workload changes, so --atomic does not hit the postgres selector trap of 2.1.0 → 3.0.0.
// `make bench-rollback` runs it; without BENCH_ROLLBACK=1 it is skipped.

const (
	benchTimeout       = 60 * time.Second // --timeout of both tools
	benchHelmDefault   = 5 * time.Minute  // helm's default --timeout
	benchFromTag       = "1.4.0"
	benchToTag         = "1.4.1"
	benchKeycloak      = "identity-id-keycloak"
	benchFaultLabel    = "identity-upgrade.test/fault"
	benchRelease       = "identity"
	benchFastRollback  = 20 * time.Second // target: ours back and ready this soon after it starts
	benchMinSpeedup    = 3.0              // target: at least this many times faster than --atomic
	benchMaxSuccessTax = 1.10             // target: ours − W ≤ this × the bare --atomic upgrade
)

// benchWorld is one run's release of the 1.4-like chart on its own seeded database.
type benchWorld struct {
	kube    testworld.Kube
	db      testworld.Database
	helm    *helmrelease.Client
	helmLog *testworld.LogBuffer // helm's debug log, with timestamps
	stores  string
}

func newBenchWorld(t *testing.T) *benchWorld {
	t.Helper()
	kube := testworld.Cluster(t)
	db := testworld.Postgres(t)
	db.ExecFileAsOwner(t, "../../testdata/sql/keycloak-11.sql")
	w := &benchWorld{kube: kube, db: db, helmLog: new(testworld.LogBuffer), stores: t.TempDir()}
	var err error
	w.helm, err = helmrelease.New(helmrelease.Options{
		KubeconfigData: kube.KubeconfigData, Namespace: kube.Namespace,
		Log: slog.New(slog.NewTextHandler(w.helmLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := w.helm.Install(t.Context(), benchRelease, chart14, w.values(benchFromTag, "", ""), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Revision != 1 || rel.Status != "deployed" {
		t.Fatalf("installed %+v, want revision 1 deployed", rel)
	}
	return w
}

// values is the whole value set a user of `helm upgrade` passes: the database settings, the
// Keycloak image tag and the fault.
func (w *benchWorld) values(tag, fault, delay string) map[string]any {
	v := map[string]any{
		"postgresql": w.db.ChartValues(),
		"image":      map[string]any{"tag": tag},
	}
	if fault != "" {
		v["fault"] = fault
	}
	if delay != "" {
		v["faultDelay"] = delay
	}
	return v
}

// benchRun is one tool's measured upgrade.
type benchRun struct {
	took    time.Duration
	outcome string
	// rolledBack: the tool said it failed and rolled back; succeeded: it reported success.
	rolledBack, succeeded bool
	// firstSignal is when a new Keycloak pod first showed a failing signal (as the event of the
	// test's own pod watch arrived), signal what it was; detected is when the tool acted on the failure (ours: the
	// readiness step's "not ready"; --atomic: its wait gave up). Both since the start; 0: none.
	firstSignal, detected time.Duration
	signal                string
	// upgradeAt is when ours started the helm upgrade step (after lock, preflight, quiesce and
	// backup), since the start.
	upgradeAt time.Duration
	// start is when the run started; ready is when the test, polling every 50 ms after the run
	// returned, saw Keycloak ready on the expected image, since the start (0: not seen).
	start time.Time
	ready time.Duration
	// endState is what was wrong with the end state ("" if nothing).
	endState string
}

// atomic runs helm's `upgrade --atomic --timeout 60s` to the new tag with fault.
func (w *benchWorld) atomic(t *testing.T, fault, delay string) benchRun {
	t.Helper()
	stop := w.watchFirstSignal(t)
	start := time.Now()
	err := w.helm.AtomicUpgrade(t.Context(), benchRelease, chart14, w.values(benchToTag, fault, delay), benchTimeout)
	r := benchRun{took: time.Since(start), start: start}
	r.firstSignal, r.signal = stop(start)
	for _, l := range parseBenchLog(w.helmLog.String()) {
		if l.at.After(start) && strings.Contains(l.msg, "atomic is set, rolling back") {
			r.detected = l.at.Sub(start)
			break
		}
	}
	switch {
	case err == nil:
		r.succeeded, r.outcome = true, "success (nil error)"
	case strings.Contains(err.Error(), "has been rolled back"):
		r.rolledBack, r.outcome = true, "error, rolled back"
	default:
		r.outcome = "error, NOT rolled back"
	}
	t.Logf("helm upgrade --atomic --timeout %v (fault %q): %v after %v", benchTimeout, fault, err, r.took.Round(100*time.Millisecond))
	return r
}

// ours runs `identity-upgrade upgrade` to the new tag with fault and a stability window.
func (w *benchWorld) ours(t *testing.T, fault, delay string, window time.Duration) benchRun {
	t.Helper()
	args := []string{"upgrade", "--release-name", benchRelease, "--namespace", w.kube.Namespace, "--chart", chart14,
		"--set", "image.tag=" + benchToTag,
		"--db-host", w.db.Host, "--db-port", strconv.Itoa(w.db.Port), "--db-name", w.db.Database, "--db-user", w.db.Owner,
		"--db-sslmode", "disable", "--backup-store", "path:" + w.stores,
		"--timeout", benchTimeout.String(), "--stability-window", window.String()}
	if fault != "" {
		args = append(args, "--set", "fault="+fault)
	}
	if delay != "" {
		args = append(args, "--set", "faultDelay="+delay)
	}
	env := map[string]string{"KUBECONFIG": w.kube.Kubeconfig, "PGPASSWORD": w.db.OwnerPassword}
	var stdout, stderr bytes.Buffer
	stop := w.watchFirstSignal(t)
	start := time.Now()
	code := cli.Run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	r := benchRun{took: time.Since(start), start: start}
	r.firstSignal, r.signal = stop(start)
	for _, l := range parseBenchLog(stderr.String()) {
		switch {
		case l.msg == "step" && l.attrs["step"] == "upgrade" && r.upgradeAt == 0:
			r.upgradeAt = l.at.Sub(start)
		case l.msg == "not ready" && r.detected == 0:
			r.detected = l.at.Sub(start)
		}
	}
	switch {
	case code == rollout.ExitOK:
		r.succeeded, r.outcome = true, "exit 0, upgraded"
	case code == rollout.ExitRolledBack && strings.Contains(stdout.String(), "Failed and rolled back"):
		r.rolledBack, r.outcome = true, "exit 1, rolled back"
	default:
		r.outcome = fmt.Sprintf("exit %d", code)
	}
	t.Logf("identity-upgrade upgrade (fault %q, window %v): exit %d after %v\n%s", fault, window, code, r.took.Round(100*time.Millisecond), stdout.String())
	if !r.succeeded && !r.rolledBack {
		t.Logf("stderr:\n%s", stderr.String())
	}
	return r
}

// watchFirstSignal watches the namespace's fault-labelled pods (the new revision's Keycloak
// pods) until stop is called, and stop returns when the first failing signal arrived since start.
// The watch is established before it returns; a signal is timed when its event arrives.
func (w *benchWorld) watchFirstSignal(t *testing.T) (stop func(start time.Time) (time.Duration, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	watcher, err := w.kube.Client.CoreV1().Pods(w.kube.Namespace).Watch(ctx, metav1.ListOptions{LabelSelector: benchFaultLabel})
	if err != nil {
		cancel()
		t.Fatalf("watch pods: %v", err)
	}
	var (
		mu     sync.Mutex
		seenAt time.Time
		signal string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer watcher.Stop()
		for ev := range watcher.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if s := benchFailingSignal(pod); s != "" {
				mu.Lock()
				seenAt, signal = time.Now(), pod.Name+": "+s
				mu.Unlock()
				return
			}
		}
	}()
	return func(start time.Time) (time.Duration, string) {
		cancel()
		watcher.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if seenAt.IsZero() {
			return 0, ""
		}
		return seenAt.Sub(start), signal
	}
}

// benchFailingSignal is the first sign, from the pod's status, that it will not become (or stay)
// ready; "" if there is none.
func benchFailingSignal(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "Unschedulable"
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "CreateContainerConfigError", "RunContainerError":
				return w.Reason
			}
		}
		if term := cs.State.Terminated; term != nil && term.ExitCode != 0 {
			return fmt.Sprintf("terminated with exit code %d", term.ExitCode)
		}
		if term := cs.LastTerminationState.Terminated; term != nil && term.ExitCode != 0 {
			return fmt.Sprintf("last terminated with exit code %d", term.ExitCode)
		}
		if cs.RestartCount > 0 {
			return fmt.Sprintf("restart count %d", cs.RestartCount)
		}
	}
	return ""
}

// check verifies the end state after the run: the release's latest revision and status, the
// Keycloak StatefulSet's image tag and, if ready, that it runs all its replicas (waiting up to
// 30 s for them). It records when they were seen ready and what was wrong; strict reports what
// was wrong as a test error (for ours; --atomic's end state is a measured outcome, not a bug here).
func (r *benchRun) check(t *testing.T, w *benchWorld, revision int, tag string, ready, strict bool) {
	t.Helper()
	var problems []string
	defer func() {
		r.endState = strings.Join(problems, "; ")
		for _, p := range problems {
			if strict {
				t.Errorf("end state: %s", p)
			} else {
				t.Logf("end state: %s", p)
			}
		}
	}()
	cur, err := w.helm.Current(benchRelease)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != revision || cur.Status != "deployed" {
		problems = append(problems, fmt.Sprintf("release at revision %d %s, want %d deployed", cur.Revision, cur.Status, revision))
	}
	var (
		sts     *appsv1.StatefulSet
		readyAt time.Time
	)
	err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := w.kube.Client.AppsV1().StatefulSets(w.kube.Namespace).Get(ctx, benchKeycloak, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		sts = got
		if ready && benchReady(sts) && strings.HasSuffix(sts.Spec.Template.Spec.Containers[0].Image, ":"+tag) {
			readyAt = time.Now()
		}
		return !ready || !readyAt.IsZero(), nil
	})
	if sts == nil {
		problems = append(problems, fmt.Sprintf("no StatefulSet %s: %v", benchKeycloak, err))
		return
	}
	if !readyAt.IsZero() {
		r.ready = readyAt.Sub(r.start)
	}
	if err != nil {
		var states []string
		if pods, err := w.kube.Client.CoreV1().Pods(w.kube.Namespace).List(t.Context(), metav1.ListOptions{}); err == nil {
			for _, p := range pods.Items {
				state := string(p.Status.Phase)
				for _, cs := range p.Status.ContainerStatuses {
					if cs.State.Waiting != nil {
						state += " " + cs.State.Waiting.Reason
					}
					state += fmt.Sprintf(" ready=%t restarts=%d image=%s", cs.Ready, cs.RestartCount, cs.Image)
				}
				states = append(states, p.Name+": "+state)
			}
		}
		problems = append(problems, fmt.Sprintf("StatefulSet %s not ready 30s after the run: %d/%d ready, %d updated, template image %s; pods: %s", benchKeycloak,
			sts.Status.ReadyReplicas, *sts.Spec.Replicas, sts.Status.UpdatedReplicas, sts.Spec.Template.Spec.Containers[0].Image, strings.Join(states, "; ")))
	}
	if image := sts.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(image, ":"+tag) {
		problems = append(problems, fmt.Sprintf("keycloak image %s, want tag %s", image, tag))
	}
}

// back is when the run was over and Keycloak ready again, since its start: the later of the
// tool's return and the test seeing Keycloak ready; ok is false if it was never seen ready.
func (r *benchRun) back() (d time.Duration, ok bool) {
	return max(r.took, r.ready), r.ready > 0
}

func benchReady(sts *appsv1.StatefulSet) bool {
	return sts.Spec.Replicas != nil && *sts.Spec.Replicas > 0 && sts.Status.ObservedGeneration >= sts.Generation &&
		sts.Status.ReadyReplicas == *sts.Spec.Replicas && sts.Status.UpdatedReplicas == *sts.Spec.Replicas
}

// benchRow is one line of the benchmark's table.
type benchRow struct {
	scenario      string
	atomic, ours  string
	ratio, target string
	pass          bool
}

func TestBenchRollback(t *testing.T) {
	if os.Getenv("BENCH_ROLLBACK") != "1" {
		t.Skip("set BENCH_ROLLBACK=1 (make bench-rollback) to run the rollback benchmark")
	}
	var rows []benchRow
	add := func(r benchRow) { rows = append(rows, r) }
	secs := func(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

	for _, fault := range []string{"image-pull", "crashloop"} {
		t.Run(fault, func(t *testing.T) {
			wa := newBenchWorld(t)
			a := wa.atomic(t, fault, "")
			// helm's rollback to revision 1 is revision 3.
			a.check(t, wa, 3, benchFromTag, true, false)

			wo := newBenchWorld(t)
			o := wo.ours(t, fault, "", 5*time.Second)
			o.check(t, wo, 3, benchFromTag, true, true)

			aBack, aReady := a.back()
			oBack, oReady := o.back()
			t.Logf("%s: --atomic returned after %v (%s), its wait gave up at %v, first signal at %v (%s), Keycloak ready again at %v; "+
				"ours returned after %v (%s), upgrade step at %v, first signal at %v (%s), detected at %v (%v after the test saw the signal), Keycloak ready again at %v",
				fault, a.took, a.outcome, a.detected, a.firstSignal, a.signal, a.ready,
				o.took, o.outcome, o.upgradeAt, o.firstSignal, o.signal, o.detected, o.detected-o.firstSignal, o.ready)
			// --atomic waits the whole timeout on pods that never become ready: that is what the
			// extrapolation to its default timeout rests on.
			waitedTimeout := a.detected >= benchTimeout && a.detected <= benchTimeout+5*time.Second
			if !waitedTimeout {
				t.Errorf("--atomic gave up after %v, not ≈ its timeout %v: the extrapolation to its default is unfounded", a.detected, benchTimeout)
			}
			atomicCell := fmt.Sprintf("%s %s; wait gave up at %s", secs(a.took), a.outcome, secs(a.detected))
			speedupOp := "="
			if !aReady {
				// --atomic never got Keycloak back: its time is a lower bound.
				atomicCell += "; Keycloak NOT ready after"
				speedupOp = "≥"
			} else {
				atomicCell += "; ready at " + secs(aBack)
			}
			if a.endState != "" {
				atomicCell += " [" + a.endState + "]"
			}
			speedup := aBack.Seconds() / oBack.Seconds()
			extrapolated := (benchHelmDefault + (a.took - a.detected)).Seconds() / oBack.Seconds()
			add(benchRow{
				scenario: fault,
				atomic:   atomicCell,
				ours: fmt.Sprintf("%s %s; upgrade step at %s, signal at %s, detected at %s, ready at %s",
					secs(o.took), o.outcome, secs(o.upgradeAt), secs(o.firstSignal), secs(o.detected), secs(oBack)),
				ratio: fmt.Sprintf("%s %.1f× at --timeout 60s; %s %.0f× at helm's default 5m (extrapolated: 5m wait + its rollback time, over ours)",
					speedupOp, speedup, speedupOp, extrapolated),
				target: fmt.Sprintf("ours rolled back and ready ≤ %v, ≥ %.0f× faster", benchFastRollback, benchMinSpeedup),
				pass:   o.rolledBack && oReady && o.endState == "" && oBack <= benchFastRollback && speedup >= benchMinSpeedup,
			})
		})
	}

	t.Run("crash-after-ready", func(t *testing.T) {
		wa := newBenchWorld(t)
		a := wa.atomic(t, "crash-after-ready", "1s")
		atomicOutcome := secs(a.took) + " " + a.outcome
		if a.succeeded {
			// --atomic kept the crashing revision 2: show that its pods crash.
			returned := time.Now()
			stop := wa.watchFirstSignal(t)
			time.Sleep(15 * time.Second)
			if at, signal := stop(returned); signal != "" {
				atomicOutcome += fmt.Sprintf(", then crashed %s later", secs(at))
				t.Logf("--atomic returned success; %v later: %s", at, signal)
			} else {
				atomicOutcome += ", no crash seen in 15s after"
			}
			a.check(t, wa, 2, benchToTag, false, false)
		} else {
			a.check(t, wa, 3, benchFromTag, true, false)
		}

		wo := newBenchWorld(t)
		o := wo.ours(t, "crash-after-ready", "1s", 5*time.Second)
		o.check(t, wo, 3, benchFromTag, true, true)
		oBack, oReady := o.back()
		t.Logf("crash-after-ready: --atomic %v (%s), first crash at %v (%s); ours %v (%s), first crash at %v (%s), detected at %v, ready again at %v",
			a.took, a.outcome, a.firstSignal, a.signal, o.took, o.outcome, o.firstSignal, o.signal, o.detected, o.ready)
		if a.endState != "" {
			atomicOutcome += " [" + a.endState + "]"
		}
		add(benchRow{
			scenario: "crash-after-ready (1s)",
			atomic:   atomicOutcome,
			ours: fmt.Sprintf("%s %s; first crash at %s, detected at %s, ready at %s",
				secs(o.took), o.outcome, secs(o.firstSignal), secs(o.detected), secs(oBack)),
			ratio:  "n/a (outcomes differ)",
			target: "ours rolls back; --atomic reports success",
			pass:   o.rolledBack && oReady && o.endState == "",
		})
	})

	var bare time.Duration
	t.Run("success", func(t *testing.T) {
		wa := newBenchWorld(t)
		a := wa.atomic(t, "", "")
		a.check(t, wa, 2, benchToTag, true, false)
		if !a.succeeded {
			t.Fatalf("--atomic without a fault: %s", a.outcome)
		}
		bare = a.took
		for _, window := range []time.Duration{5 * time.Second, 30 * time.Second} {
			wo := newBenchWorld(t)
			o := wo.ours(t, "", "", window)
			o.check(t, wo, 2, benchToTag, true, true)
			over := o.took - window
			ratio := over.Seconds() / bare.Seconds()
			add(benchRow{
				scenario: fmt.Sprintf("success, W=%v", window),
				atomic:   fmt.Sprintf("%s %s", secs(bare), a.outcome),
				ours: fmt.Sprintf("%s %s; ours − W = %s; upgrade step at %s",
					secs(o.took), o.outcome, secs(over), secs(o.upgradeAt)),
				ratio:  fmt.Sprintf("(ours − W) / bare = %.2f", ratio),
				target: fmt.Sprintf("ours ≤ W + %.0f%% over bare", (benchMaxSuccessTax-1)*100),
				pass:   o.succeeded && o.endState == "" && ratio <= benchMaxSuccessTax,
			})
		}
	})

	var table strings.Builder
	fmt.Fprintf(&table, "\nRollback benchmark: identity-upgrade vs helm upgrade --atomic (SDK, Atomic+Wait), --timeout %v both, simulated cluster; times from the start of each run\n", benchTimeout)
	fmt.Fprintf(&table, "%-24s %-4s  %s\n", "scenario", "", "figures")
	for _, r := range rows {
		verdict := "MISS"
		if r.pass {
			verdict = "PASS"
		}
		fmt.Fprintf(&table, "%-24s %-4s  --atomic: %s\n", r.scenario, verdict, r.atomic)
		fmt.Fprintf(&table, "%-24s %-4s  ours:     %s\n", "", "", r.ours)
		fmt.Fprintf(&table, "%-24s %-4s  ratio:    %s\n", "", "", r.ratio)
		fmt.Fprintf(&table, "%-24s %-4s  target:   %s\n", "", "", r.target)
	}
	t.Log(table.String())
	fmt.Print(table.String())
}

// benchLogLine is one line of a slog text log.
type benchLogLine struct {
	at    time.Time
	msg   string
	attrs map[string]string
}

var benchLogAttr = regexp.MustCompile(`(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)`)

// parseBenchLog reads slog's text format: time=… level=… msg=… key=value….
func parseBenchLog(s string) []benchLogLine {
	var out []benchLogLine
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		l := benchLogLine{attrs: map[string]string{}}
		for _, m := range benchLogAttr.FindAllStringSubmatch(sc.Text(), -1) {
			v := m[2]
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			l.attrs[m[1]] = v
		}
		at, err := time.Parse(time.RFC3339Nano, l.attrs["time"])
		if err != nil {
			continue
		}
		l.at, l.msg = at, l.attrs["msg"]
		out = append(out, l)
	}
	return out
}
