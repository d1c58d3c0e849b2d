# identity-upgrade — the two set-up commands are `make rehearsal` and `make test`.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/identity-upgrade/identity-upgrade/internal/version.version=$(VERSION)

.PHONY: build test tools rehearsal vet lint clean bench-backup bench-rollback bench-dbpath

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/identity-upgrade .

# The README's test command; .ci/run runs exactly this.
test: tools
	$(GO) test -race -shuffle=on -timeout 30m ./...

# Control-plane binaries for the simulated cluster, built from Go modules and cached by version
# (first time about 6 minutes on 2 cores).
tools:
	@bash tools/build.sh >/dev/null

rehearsal: tools build
	$(GO) run ./internal/rehearsal/cmd/rehearsal -binary bin/identity-upgrade $(ARGS)

# Backup and restore against raw pg_dump and the vendor's scripts on a generated Keycloak-shaped
# database of BENCH_DB_MB MiB (default 1024) and of 100 MiB; prints ratios and PASS/MISS per target.
BENCH_DB_MB ?= 1024
bench-backup:
	BENCH_DB_MB=$(BENCH_DB_MB) $(GO) run ./internal/pgbackup/bench $(ARGS)

# identity-upgrade's rollback against `helm upgrade --atomic --timeout 60s` on the simulated cluster:
# never-ready, crash-loop, crash-after-ready and healthy upgrades, one run each (a few minutes:
# --atomic waits out its timeout); prints times, ratios and PASS/MISS per target.
bench-rollback: tools
	BENCH_ROLLBACK=1 $(GO) test -count=1 -v -timeout 30m -run TestBenchRollback ./internal/helmrelease/

# The database path under the platform's faults, on a simulated cluster and a server of its own:
# a restore of BENCH_DB_MB MiB (default 1024) through the port-forward with one stream break
# against the same without it, and the time to the error when another session holds a lock.
bench-dbpath: tools
	BENCH_DBPATH=1 BENCH_DB_MB=$(BENCH_DB_MB) $(GO) test -count=1 -v -timeout 90m -run TestBenchDatabasePath ./internal/cli/

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

clean:
	rm -rf bin
