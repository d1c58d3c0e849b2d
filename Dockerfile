# syntax=docker/dockerfile:1

# Both base images are pinned by digest: a tag moves when its image is rebuilt, a digest does
# not, so a rebuild gets the layers that were reviewed. The tag stays to say what the digest
# is. Pinned in 2026-09: golang:1.26-bookworm is Go 1.26.8 on Debian bookworm of 2026-08-24
# (pushed 2026-09-01), debian:bookworm-slim is bookworm of 2026-09-18 (pushed 2026-09-19). To
# update one, take the digest of its multi-platform index, the first "Digest:" line of
#   docker buildx imagetools inspect golang:1.26-bookworm
#   docker buildx imagetools inspect debian:bookworm-slim
# (not the digest of one platform's image under "Manifests:"), and replace the sha256 after the
# tag below; internal/cli's TestDockerfile refuses a FROM without one.

# Build stage: a static binary, so the runtime image needs no Go and no libc match.
FROM golang:1.26-bookworm@sha256:9fdc884aacc3bec89b20ffc69f4bb369c78210e3e4f600387b5128b12c199f81 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/identity-upgrade/identity-upgrade/internal/version.version=${VERSION}" \
      -o /out/identity-upgrade .

# Runtime stage: pg_dump, pg_restore and psql of every major from 13 to 18, from the PostgreSQL
# project's apt repository (PGDG; its main component for bookworm holds the supported majors),
# each in /usr/lib/postgresql/<major>/bin. A run uses the client of the server's major, else the
# oldest newer one: a newer pg_dump writes SQL an older server refuses (17's
# transaction_timeout), so one newest client is not enough. PostgreSQL 11 and 12 servers (the
# identity service bundles 11) get the 13 client. The repository key is checked against its
# published fingerprint. No USER and no WORKDIR: GitHub runs container actions as root, in the
# workspace.
FROM debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251
ARG PGDG_KEY_FINGERPRINT=B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
    install -d /usr/share/postgresql-common/pgdg; \
    key=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc; \
    curl -fsSL -o "$key" https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    test "$(gpg --batch --show-keys --with-colons "$key" | awk -F: '$1 == "fpr" { print $10; exit }')" = "$PGDG_KEY_FINGERPRINT"; \
    . /etc/os-release; \
    echo "deb [signed-by=$key] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
      postgresql-client-13 postgresql-client-14 postgresql-client-15 \
      postgresql-client-16 postgresql-client-17 postgresql-client-18; \
    apt-get purge -y --auto-remove curl gnupg; \
    rm -rf /var/lib/apt/lists/*; \
    for major in 13 14 15 16 17 18; do \
      for tool in pg_dump pg_restore psql; do \
        "/usr/lib/postgresql/$major/bin/$tool" --version | grep -q "(PostgreSQL) $major\."; \
      done; \
    done
COPY --from=build /out/identity-upgrade /usr/local/bin/identity-upgrade
ENTRYPOINT ["/usr/local/bin/identity-upgrade"]
