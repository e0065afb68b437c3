# syntax=docker/dockerfile:1

# One image holds the coordinator and the four participant services, so a release is one tag
# and the saga store schema always travels with the coordinator that expects it. Pick the
# process with the command: `coordinator serve` (the default), `patient-service`,
# `therapist-service`, `matching-service` or `communication-service`. Every binary embeds its
# own SQL migrations (sqlx::migrate!) and applies them at start; `coordinator migrate` applies
# the saga store migrations alone and exits.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.77

# cargo-chef turns the workspace manifests and Cargo.lock into a recipe, so the dependency
# layer below is rebuilt only when a manifest or the lockfile changes. It also writes the
# stub sources for every target of every member, which a hand-kept list would have to track.
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# Dependency layer: cached until recipe.json changes.
RUN cargo chef cook --release --locked --workspace --bins --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --workspace --bins \
    && mkdir /out \
    && cp target/release/coordinator \
        target/release/patient-service \
        target/release/therapist-service \
        target/release/matching-service \
        target/release/communication-service \
        /out/

# The runtime image has no shell and no HTTP client. Compose healthchecks need one, so the
# image gets BusyBox's wget alone, from the statically linked musl build.
FROM busybox:1.37.0-musl AS probe

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="curavani-saga" \
      org.opencontainers.image.description="Saga coordinator and participant services of the Curavani platform" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=probe /bin/wget /usr/local/bin/wget
COPY --from=builder /out/ /usr/local/bin/
# Numeric ids let Kubernetes verify runAsNonRoot; 65532 is the distroless nonroot user.
USER 65532:65532
EXPOSE 8080 8081 8082 8083 8084
CMD ["coordinator", "serve"]
