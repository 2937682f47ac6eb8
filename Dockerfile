# tagsmith container image:
#
#   docker build -t tagsmith --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse --short=12 HEAD)" \
#     --build-arg SOURCE="$(git remote get-url origin)" .
#
# Both architectures from one machine (amd64 and arm64; the build stage compiles natively under
# each platform, so nothing here is cross-compiled):
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/tagsmith:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse --short=12 HEAD)" --push .
#
# Base images: pin them by digest for a reproducible build by passing the full references,
# e.g. `--build-arg BUILD_IMAGE=rust:1.95-slim-bookworm@sha256:<digest>` and
# `--build-arg RUNTIME_IMAGE=debian:bookworm-slim@sha256:<digest>` (`docker buildx imagetools
# inspect rust:1.95-slim-bookworm` prints the index digest, which covers both architectures).
#
# Two stages on the same Debian release (the binary links that release's glibc and OpenSSL):
# a Rust toolchain that builds `--release --locked`, and a slim runtime with only what the
# binary loads or runs. The image runs `tagsmith run` as a fixed non-root user (65532), with its
# config at /etc/tagsmith/tagsmith.yaml and its state in /var/lib/tagsmith. See
# examples/kubernetes/ for a Deployment that matches these paths, ports and user.

ARG BUILD_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
# gcc builds libgit2, libssh2 and the CUE grammar (build.rs); git2's HTTPS and SSH transports
# link the system OpenSSL and zlib, found with pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The image ships a stripped binary (about a sixth of the size with line tables); profiling
# builds keep them (Cargo.toml's release profile).
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols

# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml or Cargo.lock
# change. Stub sources stand in for tagsmith's own; the benches are copied because the manifest
# names them.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > build.rs \
 && cargo build --release --locked \
 && rm -rf src build.rs

# tagsmith itself. COPY keeps the context's file times, which can be older than the stub build:
# touch the roots so cargo rebuilds the crate and reruns build.rs.
COPY . .
# `tagsmith --version` names this commit; the context has no .git to ask (.dockerignore).
ARG REVISION=unknown
ENV TAGSMITH_REVISION=${REVISION}
RUN touch build.rs src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/tagsmith /usr/local/bin/tagsmith

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
# Where the sources live, e.g. `--build-arg SOURCE="$(git remote get-url origin)"`.
ARG SOURCE=""
LABEL org.opencontainers.image.title="tagsmith" \
      org.opencontainers.image.description="Keeps container image references in Git up to date" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# ca-certificates: the registries' and Git hosts' TLS roots (HTTPS to registries, Git and the
# GitHub API). libssl3: git2's HTTPS and SSH transports. openssh-client: only for signing
# commits with `commit.signingKey` (tagsmith runs `ssh-keygen -Y sign`); Git over SSH itself
# needs no ssh binary (libssh2 is built in). No git binary: tagsmith uses libgit2.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 tagsmith \
 && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/tagsmith --no-create-home \
      --shell /usr/sbin/nologin tagsmith \
 && mkdir -p /etc/tagsmith /var/lib/tagsmith \
 && chown 65532:65532 /var/lib/tagsmith \
 && chmod 0750 /var/lib/tagsmith

COPY --from=build /usr/local/bin/tagsmith /usr/local/bin/tagsmith

# HOME is where a Docker config (~/.docker/config.json) and known_hosts (~/.ssh/known_hosts)
# are looked for by default; mount them there or name their paths in tagsmith.yaml.
ENV HOME=/var/lib/tagsmith
USER 65532:65532
WORKDIR /var/lib/tagsmith

# 9292: webhooks (POST /hook/<receiver>), /healthz, /readyz (`server.listen`).
# 9090: /metrics, /status and POST /scan (`server.metrics`, only when configured).
EXPOSE 9292 9090

ENTRYPOINT ["tagsmith"]
CMD ["run", "-c", "/etc/tagsmith/tagsmith.yaml"]
