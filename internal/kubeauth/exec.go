package kubeauth

import (
	"os"
	"path/filepath"
	"strings"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// plugin is what a kubeconfig's exec stanza says about the credentials it wants, for the
// plugins whose tokens this package gets itself.
type plugin struct {
	provider string // AWS, GCP or Azure
	command  string // as the kubeconfig names it

	// aws eks get-token, aws-iam-authenticator token
	cluster, region, role, profile string
	// kubelogin get-token
	serverID, tenantID, environment, login string
}

// recognise reads the exec stanzas of the plugins the cloud tools write:
//
//	aws eks get-token --cluster-name C [--region R] [--role-arn A] [--profile P]  (aws eks update-kubeconfig)
//	aws-iam-authenticator token -i C [-r A] [--region R]                          (eksctl, terraform)
//	gke-gcloud-auth-plugin                                                        (gcloud container clusters get-credentials)
//	kubelogin get-token --server-id S --tenant-id T [--environment E] [--login L] (az aks get-credentials)
//
// It returns false for any other command.
func recognise(exec *clientcmdapi.ExecConfig) (plugin, bool) {
	p := plugin{command: exec.Command}
	args := exec.Args
	flag := func(names ...string) string {
		for i, a := range args {
			for _, n := range names {
				if v, ok := strings.CutPrefix(a, n+"="); ok {
					return v
				}
				if a == n && i+1 < len(args) {
					return args[i+1]
				}
			}
		}
		return ""
	}
	env := func(name string) string {
		for _, e := range exec.Env {
			if e.Name == name {
				return e.Value
			}
		}
		return ""
	}
	switch strings.TrimSuffix(filepath.Base(exec.Command), ".exe") {
	case "aws":
		if !hasSequence(args, "eks", "get-token") {
			return p, false
		}
		p.provider = AWS
		p.cluster = flag("--cluster-name", "--cluster-id")
		p.region = flag("--region")
		p.role = flag("--role-arn")
		p.profile = firstOf(flag("--profile"), env("AWS_PROFILE"))
		p.region = firstOf(p.region, env("AWS_REGION"), env("AWS_DEFAULT_REGION"))
	case "aws-iam-authenticator":
		if len(args) == 0 || args[0] != "token" {
			return p, false
		}
		p.provider = AWS
		p.cluster = flag("-i", "--cluster-id")
		p.role = flag("-r", "--role")
		p.region = firstOf(flag("--region"), env("AWS_REGION"), env("AWS_DEFAULT_REGION"))
		p.profile = env("AWS_PROFILE")
	case "gke-gcloud-auth-plugin":
		p.provider = GCP
	case "kubelogin":
		if len(args) == 0 || args[0] != "get-token" {
			return p, false
		}
		p.provider = Azure
		p.serverID = flag("--server-id")
		p.tenantID = flag("--tenant-id", "-t")
		p.environment = flag("--environment", "-e")
		p.login = flag("--login", "-l")
	default:
		return p, false
	}
	return p, true
}

func hasSequence(args []string, words ...string) bool {
	for i := 0; i+len(words) <= len(args); i++ {
		match := true
		for j, w := range words {
			if args[i+j] != w {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// lookPath reports whether command is an executable file, found as exec.LookPath would find
// it in the directories of path (the PATH variable).
func lookPath(command, path string) bool {
	executable := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
	}
	if strings.Contains(command, "/") {
		return executable(command)
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		if executable(filepath.Join(dir, command)) {
			return true
		}
	}
	return false
}
