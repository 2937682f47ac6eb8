# tagsmith container image: `docker build -t tagsmith .`
#
# Two stages on the same Debian release (the binary links that release's glibc and OpenSSL):
# a Rust toolchain that builds `--release --locked`, and a slim runtime with only what the
# binary loads or runs. The image runs `tagsmith run` as a fixed non-root user (65532), with its
# config at /etc/tagsmith/tagsmith.yaml and its state in /var/lib/tagsmith. See
# examples/kubernetes/ for a Deployment that matches these paths, ports and user.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# gcc builds libgit2, libssh2 and the CUE grammar (build.rs); git2's HTTPS and SSH transports
# link the system OpenSSL and zlib, found with pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

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
RUN touch build.rs src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/tagsmith /usr/local/bin/tagsmith

FROM debian:${DEBIAN_RELEASE}-slim
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
