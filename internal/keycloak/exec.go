package keycloak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// podExec runs commands in the containers of pods through the pods' exec subresource, the way
// kubectl exec connects: WebSocket first, SPDY when the server cannot upgrade to it.
type podExec struct {
	Client kubernetes.Interface
	Config *rest.Config
}

// run runs cmd (no shell unless cmd is one) in a container, its output into stdout and
// stderr. A command that exits non-zero is an *execError.
func (x podExec) run(ctx context.Context, namespace, pod, container string, cmd []string, stdout, stderr io.Writer) error {
	req := x.Client.CoreV1().RESTClient().Post().
		Namespace(namespace).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdout:    stdout != nil,
			Stderr:    stderr != nil,
		}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(x.Config, "POST", req.URL())
	if err != nil {
		return err
	}
	ws, err := remotecommand.NewWebSocketExecutor(x.Config, "GET", req.URL().String())
	if err != nil {
		return err
	}
	executor, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
	var exit utilexec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		return &execError{status: exit.ExitStatus()}
	}
	return err
}

// execError is a command that ran and exited non-zero.
type execError struct{ status int }

func (e *execError) Error() string { return fmt.Sprintf("exited with %d", e.status) }

// execFailure describes a failed command in a container: where, what, how it ended and the
// end of its stderr.
func execFailure(what, where string, cmd []string, err error, stderr string) error {
	head := fmt.Sprintf("%s in %s: `%s`", what, where, strings.Join(cmd, " "))
	tail := stderrNote(stderr)
	if ee, ok := errors.AsType[*execError](err); ok {
		return fmt.Errorf("%s %s%s", head, ee, tail)
	}
	return fmt.Errorf("%s: %w%s", head, err, tail)
}
