# bucketq container image.
#
# Needs BuildKit, the default builder of Docker Engine 23 and later (`DOCKER_BUILDKIT=1` on
# older ones) for the cache mounts below. No `# syntax=` line on purpose: it would pull a
# frontend image from Docker Hub before anything else, which fails offline and through most
# registry mirrors; the built-in frontend builds this file. The base images (rust:1.95-slim-
# bookworm, debian:bookworm-slim) must be pullable or already present.
#
#   docker build -t bucketq .
#   docker run --rm bucketq                      # the built-in demo (local store, log handler)
#   docker run -d --name bucketq \
#     -v /etc/bucketq/bucketq.toml:/etc/bucketq/bucketq.toml:ro \
#     --env-file /etc/bucketq/bucketq.env \
#     -p 127.0.0.1:9464:9464 bucketq             # with [http] listen = "0.0.0.0:9464"
#
# Configuration: a mounted /etc/bucketq/bucketq.toml and/or BUCKETQ_<SECTION>__<KEY>
# variables (the FC template's OSS_* and EMAIL_* names work too). Secrets belong in
# --env-file or your orchestrator's secret store, never in the image.
#
# Tools for `exec` handlers: build with extra Debian packages, e.g.
#   docker build --build-arg EXTRA_PACKAGES="python3 tini" -t bucketq:exec .
# or derive your own image FROM bucketq (see the README). Run exec handlers with
# `docker run --init` (or tini) so grandchildren that outlive their parent are reaped.

# ---------------------------------------------------------------------------------------
# Build: pinned toolchain, locked dependencies, release profile.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target between builds without baking them into a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin bucketq \
 && install -m 0755 target/release/bucketq /usr/local/bin/bucketq

# ---------------------------------------------------------------------------------------
# Runtime: Debian slim with CA certificates (bucketq speaks HTTPS and SMTP over TLS).
FROM debian:bookworm-slim AS runtime
ARG EXTRA_PACKAGES=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates ${EXTRA_PACKAGES} \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid/gid, so mounted state directories can be chowned to it. The state
# directory also belongs to group 0: `docker run --user <any uid>` runs with gid 0 (the
# OpenShift convention), and can then write it too.
RUN groupadd --system --gid 10001 bucketq \
 && useradd --system --uid 10001 --gid bucketq --home-dir /var/lib/bucketq \
            --shell /usr/sbin/nologin bucketq \
 && install -d -o bucketq -g 0 -m 0770 /var/lib/bucketq \
 && install -d -m 0755 /etc/bucketq
COPY --from=build /usr/local/bin/bucketq /usr/local/bin/bucketq
# The FC shim, so `exec` with event = "fc" runs an unmodified FC Python handler (build with
# EXTRA_PACKAGES="python3" or derive an image with Python): command = ["python3",
# "/usr/local/lib/bucketq/fc-shim/bucketq_fc_shim.py", "index.handler"].
COPY contrib/fc-shim/ /usr/local/lib/bucketq/fc-shim/
# Smoke test: the binary runs on this base image.
RUN ["/usr/local/bin/bucketq", "--version"]

USER 10001:10001
WORKDIR /var/lib/bucketq
# One JSON object per line for `docker logs` and log collectors; override with text if wanted.
ENV BUCKETQ_LOG_FORMAT=json
# The metrics and health listener, on inside the container (published only with -p), so the
# HEALTHCHECK below works out of the box; a mounted config's [http] listen is overridden by
# this variable unless you change or unset it.
ENV BUCKETQ_HTTP__LISTEN=0.0.0.0:9464
EXPOSE 9464
# Ready = the bucket is being listed (GET /readyz); `bucketq health` needs no curl.
HEALTHCHECK --interval=30s --timeout=10s --start-period=2m --retries=3 \
    CMD ["/usr/local/bin/bucketq", "health"]
# SIGTERM starts the drain (running handlers get worker.shutdown_grace, then their locks are
# released). `docker stop` waits 10 s before SIGKILL, so the image's grace is 8 s: a default
# stop drains cleanly. For longer handlers raise both: -e BUCKETQ_WORKER__SHUTDOWN_GRACE=40s
# with `docker stop -t 45` (stop_grace_period in compose).
ENV BUCKETQ_WORKER__SHUTDOWN_GRACE=8s
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bucketq"]
CMD ["run"]
