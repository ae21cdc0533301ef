# syntax=docker/dockerfile:1
#
# The sessions service as a container image: a Rust build stage and a small Debian
# runtime stage running as an unprivileged user.
#
#   docker build -t sessions:0.1.0 .
#   docker run --rm -p 8807:8807 -p 9807:9807 -e REDIS_URL=redis://redis:6379/0 sessions:0.1.0
#
# Ports: 8807 Seneca TCP (clients), 9807 admin HTTP (/metrics, /live, /ready).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole workspace (see .dockerignore): the service at the root and its member
# crates under crates/, which must all exist for the manifest to load. The cache
# mounts keep the registry and compiled dependencies between builds.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sessions \
    && install -D -m 0755 target/release/sessions /out/sessions

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# CA certificates for TLS connections; nothing else is installed.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sessions \
    && useradd --system --uid 10001 --gid sessions --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sessions
COPY --from=build /out/sessions /usr/local/bin/sessions
COPY --chmod=0755 deploy/docker/healthcheck.sh /usr/local/bin/sessions-healthcheck
ENV SESSIONS_LISTEN=0.0.0.0:8807 \
    SESSIONS_ADMIN_LISTEN=0.0.0.0:9807 \
    SESSIONS_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8807 9807
# Liveness only: a Redis outage makes a replica not ready (the load balancer and
# Kubernetes read /ready), it must not get the container restarted.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sessions-healthcheck", "/live"]
# SIGTERM starts the drain; SESSIONS_SHUTDOWN_GRACE (20s) bounds it, so give
# `docker stop` a longer timeout (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sessions"]
