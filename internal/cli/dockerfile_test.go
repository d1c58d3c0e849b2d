package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction after joining continuation lines.
type instruction struct {
	cmd   string // upper case: FROM, RUN, COPY, ...
	args  string
	stage int // index of the build stage it belongs to; -1 before the first FROM
}

// parseDockerfile splits a Dockerfile into instructions: comment lines (also inside a
// continuation) and blank lines are dropped, and lines ending in a backslash are joined.
func parseDockerfile(text string) []instruction {
	var (
		out     []instruction
		pending string
		stage   = -1
	)
	for line := range strings.Lines(text) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending += cont + " "
			continue
		}
		full := strings.TrimSpace(pending + trimmed)
		pending = ""
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{cmd: cmd, args: strings.TrimSpace(args), stage: stage})
	}
	return out
}

const binary = "/usr/local/bin/identity-upgrade"

// imageClientMajors are the PostgreSQL client majors the image installs: the client of a
// server's major is chosen, else the oldest newer one (11 and 12 get 13).
var imageClientMajors = []int{13, 14, 15, 16, 17, 18}

// credentialPlugins are the cloud tools whose tokens the binary gets itself: the image needs
// none of them (nor the CLIs that carry them).
var credentialPlugins = []string{"aws-iam-authenticator", "awscli", "aws-cli", "gke-gcloud-auth-plugin", "google-cloud-cli", "google-cloud-sdk",
	"gcloud", "kubelogin", "azure-cli"}

// pinnedImage is an image reference with a tag and the digest of what the tag named when it
// was pinned: name[:port/path]:tag@sha256:<64 hex>.
var pinnedImage = regexp.MustCompile(`^[^@\s]+:[^@/:\s]+@sha256:[0-9a-f]{64}$`)

// unpinnedBases names every FROM whose image is not pinned by tag and digest; FROM scratch
// and FROM an earlier stage need no digest.
func unpinnedBases(ins []instruction) []string {
	var problems []string
	stages := map[string]bool{"scratch": true}
	for _, in := range ins {
		if in.cmd != "FROM" {
			continue
		}
		var f []string
		for _, w := range strings.Fields(in.args) {
			if !strings.HasPrefix(w, "--") { // --platform=...
				f = append(f, w)
			}
		}
		if len(f) == 0 {
			continue
		}
		if image := f[0]; !stages[strings.ToLower(image)] && !pinnedImage.MatchString(image) {
			problems = append(problems, fmt.Sprintf("FROM %s is not pinned by digest (image:tag@sha256:<64 hex digits>)", image))
		}
		if len(f) == 3 && strings.EqualFold(f[1], "AS") {
			stages[strings.ToLower(f[2])] = true
		}
	}
	return problems
}

// checkDockerfile returns what is wrong with the image the Dockerfile builds.
func checkDockerfile(ins []instruction) []string {
	last := -1
	for _, in := range ins {
		last = max(last, in.stage)
	}
	if last < 1 {
		return []string{"want a multi-stage build: a builder stage and a runtime stage"}
	}
	problems := unpinnedBases(ins)
	var builderName string
	var cgoOff, trimpath, versionFlag, copied, entrypoint bool
	clients := map[int]bool{}
	for _, in := range ins {
		if in.stage == last && (in.cmd == "RUN" || in.cmd == "COPY" || in.cmd == "ADD") {
			for _, p := range credentialPlugins {
				if strings.Contains(in.args, p) {
					problems = append(problems, "the runtime stage brings the credential plugin "+p+"; the binary gets managed clusters' tokens itself (internal/kubeauth)")
				}
			}
		}
		switch {
		case in.cmd == "FROM" && in.stage == 0:
			if f := strings.Fields(in.args); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				builderName = f[2]
			}
		case in.stage == 0 && (in.cmd == "RUN" || in.cmd == "ENV"):
			cgoOff = cgoOff || strings.Contains(in.args, "CGO_ENABLED=0")
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				trimpath = strings.Contains(in.args, "-trimpath")
				versionFlag = strings.Contains(in.args, "-X github.com/identity-upgrade/identity-upgrade/internal/version.version=")
			}
		case in.stage != last:
		case in.cmd == "USER" || in.cmd == "WORKDIR":
			problems = append(problems, "the runtime stage sets "+in.cmd+"; GitHub runs container actions as root in the workspace")
		case in.cmd == "RUN":
			if strings.Contains(in.args, "apt-get install") {
				for _, f := range strings.Fields(in.args) {
					if n, ok := strings.CutPrefix(strings.TrimSuffix(f, ";"), "postgresql-client-"); ok {
						if major, err := strconv.Atoi(n); err == nil {
							clients[major] = true
						}
					}
				}
			}
		case in.cmd == "COPY":
			f := strings.Fields(in.args)
			copied = copied || len(f) == 3 && builderName != "" && f[0] == "--from="+builderName && f[2] == binary
		case in.cmd == "ENTRYPOINT":
			var argv []string
			entrypoint = json.Unmarshal([]byte(in.args), &argv) == nil && len(argv) > 0 && argv[0] == binary
		}
	}
	for _, c := range []struct {
		ok   bool
		what string
	}{
		{builderName != "", "the builder stage has no name (FROM image AS name)"},
		{cgoOff, "the builder does not set CGO_ENABLED=0 (the binary must be static)"},
		{trimpath, "go build lacks -trimpath"},
		{versionFlag, "go build does not set internal/version.version with -ldflags -X"},
		{clientsMatch(clients), fmt.Sprintf("the runtime stage does not apt-get install exactly the clients of majors %v", imageClientMajors)},
		{copied, "the runtime stage does not COPY --from=<builder> the binary to " + binary},
		{entrypoint, "ENTRYPOINT is not the exec form [\"" + binary + "\"]"},
	} {
		if !c.ok {
			problems = append(problems, c.what)
		}
	}
	return problems
}

// clientsMatch reports whether the installed client majors are exactly imageClientMajors.
func clientsMatch(installed map[int]bool) bool {
	if len(installed) != len(imageClientMajors) {
		return false
	}
	for _, m := range imageClientMajors {
		if !installed[m] {
			return false
		}
	}
	return true
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkDockerfile(parseDockerfile(string(data))) {
		t.Error("Dockerfile: " + p)
	}
	// The -X flag must name a variable that exists.
	src, err := os.ReadFile("../version/version.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "\nvar version = ") {
		t.Error("internal/version has no `var version`, which the Dockerfile sets with -ldflags -X")
	}
}

func TestCheckDockerfileFindsProblems(t *testing.T) {
	// <digest> stands for a digest, in the good Dockerfile and in the mutations.
	digest := strings.Repeat("0123456789abcdef", 4)
	good := strings.ReplaceAll(`# syntax=docker/dockerfile:1
FROM golang:1.26-bookworm@sha256:<digest> AS build
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-X github.com/identity-upgrade/identity-upgrade/internal/version.version=dev" \
      -o /out/identity-upgrade .
FROM --platform=linux/amd64 debian:bookworm-slim@sha256:<digest>
RUN apt-get update; \
    # a comment inside a continuation
    apt-get install -y postgresql-client-13 postgresql-client-14 postgresql-client-15 \
      postgresql-client-16 postgresql-client-17 postgresql-client-18
COPY --from=build /out/identity-upgrade /usr/local/bin/identity-upgrade
ENTRYPOINT ["/usr/local/bin/identity-upgrade"]
`, "<digest>", digest)
	if p := checkDockerfile(parseDockerfile(good)); len(p) != 0 {
		t.Fatalf("a good Dockerfile has problems: %q", p)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"one stage", "FROM --platform=linux/amd64 debian:bookworm-slim@sha256:<digest>\n", "", "multi-stage"},
		{"unpinned builder", "golang:1.26-bookworm@sha256:<digest>", "golang:1.26-bookworm", "FROM golang:1.26-bookworm is not pinned by digest"},
		{"unpinned runtime", "debian:bookworm-slim@sha256:<digest>", "debian:bookworm-slim", "FROM debian:bookworm-slim is not pinned by digest"},
		{"digest without a tag", "debian:bookworm-slim@sha256:", "debian@sha256:", "not pinned by digest"},
		{"short digest", "slim@sha256:<digest>", "slim@sha256:0123456789ab", "not pinned by digest"},
		{"tag of another registry", "FROM golang:1.26-bookworm@sha256:<digest> AS build", "FROM registry.example:5000/golang:1.26-bookworm AS build", "not pinned by digest"},
		{"USER", "ENTRYPOINT", "USER nobody\nENTRYPOINT", "USER"},
		{"WORKDIR", "ENTRYPOINT", "WORKDIR /app\nENTRYPOINT", "WORKDIR"},
		{"cgo", "CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		{"no trimpath", "-trimpath", "", "-trimpath"},
		{"no version", "-X github.com/identity-upgrade/identity-upgrade/internal/version.version=dev", "", "version"},
		{"no 17 client", "postgresql-client-17 ", "", "clients of majors"},
		{"an 11 client", "postgresql-client-18", "postgresql-client-18 postgresql-client-11", "clients of majors"},
		{"clients only in a comment", "    apt-get install -y postgresql-client-13", "    # apt-get install -y postgresql-client-13\n    true", "clients of majors"},
		{"binary elsewhere", "=build /out/identity-upgrade /usr/local/bin/identity-upgrade", "=build /out/identity-upgrade /identity-upgrade", "COPY"},
		{"gke plugin", "COPY --from=build", "RUN apt-get install -y google-cloud-cli-gke-gcloud-auth-plugin\nCOPY --from=build", "credential plugin gke-gcloud-auth-plugin"},
		{"kubelogin", "COPY --from=build", "COPY --from=ghcr.io/azure/kubelogin:v0.2 /kubelogin /usr/local/bin/\nCOPY --from=build", "credential plugin kubelogin"},
		{"aws cli", "COPY --from=build", "RUN pip install awscli\nCOPY --from=build", "credential plugin awscli"},
		{"shell-form entrypoint", `ENTRYPOINT ["/usr/local/bin/identity-upgrade"]`, "ENTRYPOINT /usr/local/bin/identity-upgrade", "ENTRYPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(good, strings.ReplaceAll(tt.old, "<digest>", digest), strings.ReplaceAll(tt.new, "<digest>", digest), 1)
			if bad == good {
				t.Fatalf("mutation %q not applied", tt.old)
			}
			problems := checkDockerfile(parseDockerfile(bad))
			if !strings.Contains(strings.Join(problems, "\n"), tt.want) {
				t.Errorf("problems %q do not mention %q", problems, tt.want)
			}
		})
	}
}
