# One image recipe for every binary: docker build --build-arg SERVICE=api .
# (or worker, bot, loadgen, check-telemetry). Multi-stage: dependencies are compiled in a layer of their
# own (cargo-chef), so editing a service's code rebuilds only the workspace.

# The toolchain the project is tested with (edition 2024 needs >= 1.85).
FROM rust:1.95.0-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build
# Images ship without debug info (the workspace keeps line tables for local
# backtraces); set for cook and build alike so the cached layer matches.
ENV CARGO_PROFILE_RELEASE_DEBUG=false

# The dependency graph alone: its recipe changes only when Cargo.toml or
# Cargo.lock do.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG SERVICE=api
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --package ${SERVICE} --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY services services
COPY tools tools
COPY testing testing
RUN cargo build --release --locked --package ${SERVICE} --bin ${SERVICE} \
    && cp target/release/${SERVICE} /service

# distroless/cc: glibc, libgcc, CA certificates and a non-root user, and no
# shell or package manager for an attacker to use.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE=api
COPY --from=builder /service /usr/local/bin/service
USER nonroot
# No curl in the image: the binary probes its own /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]
