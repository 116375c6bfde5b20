# syntax=docker/dockerfile:1
#
# Switchyard container image: the proxy, the bundled cost-router policy and a config that works
# offline (deploy/container.toml). Build and run: see deploy/README.md.
#
#   docker build -t switchyard .
#   docker run --rm -p 8080:8080 switchyard

# --- Build: the proxy (native) and the policy (WebAssembly component) ---
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# The cache mounts keep crates and build output between builds; they are not part of the image,
# so the results are copied to /out in the same step. Only the shipped policy is built (what
# `cargo xtask plugins` does, minus the test-only policies under plugins/testing).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --target wasm32-wasip2 --profile wasm --package cost-router \
 && cargo build --locked --release --package switchyard --bin switchyard \
 && mkdir -p /out/policies /out/cache \
 && cp target/release/switchyard /out/switchyard \
 && cp target/wasm32-wasip2/wasm/cost_router.wasm /out/policies/cost_router.wasm \
 && cp plugins/cost-router/cases.jsonl /out/policies/cost_router.cases.jsonl

# --- Runtime: distroless with glibc and libgcc, no shell; TLS is rustls with built-in roots ---
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="Edge proxy for LLM traffic, routed by WebAssembly policies" \
      org.opencontainers.image.source="https://github.com/switchyard-proxy/switchyard" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /out/switchyard /usr/local/bin/switchyard
# Owned by root, so read-only for the proxy: an admin upload goes live but is not saved.
COPY --from=build /out/policies/ /opt/switchyard/policies/
COPY deploy/container.toml /etc/switchyard/switchyard.toml

# The compile cache lands in $XDG_CACHE_HOME/switchyard, which must belong to the running user
# and be closed to others (the proxy creates it, mode 0700, on first start). The parent folder is
# made here, owned by the nonroot user (uid 65532), so a volume mounted on it starts out theirs.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/cache /home/nonroot/.cache
ENV XDG_CACHE_HOME=/home/nonroot/.cache
USER 65532:65532

# 8080: the proxy. 9901: the admin API, when the config has an [admin] table.
EXPOSE 8080 9901
# SIGTERM drains in-flight requests, then exits 0 (give `docker stop` more than its 10 s default:
# --stop-timeout 40). SIGHUP re-reads the config (`docker kill --signal HUP`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve", "--config", "/etc/switchyard/switchyard.toml", "--log-format", "json"]
