# One image for both roles. Production runs TWO containers from it, one per role:
#
#   docker run ... -e SWITCHBOARD_ROLE=auth       switchboard     # or: switchboard serve --role auth
#   docker run ... -e SWITCHBOARD_ROLE=connectors switchboard     # or: switchboard serve --role connectors
#
# and `switchboard migrate` once per release, before the new version serves. Choose the role with
# SWITCHBOARD_ROLE rather than `--role`: the HEALTHCHECK reads the same variable. The default CMD
# (`serve` with no role) runs BOTH roles in one container: fine to try the image, not for
# production. Configuration: /app/config/production.toml (shipped; mount your own over it if you
# like) plus the environment (see README, "Production"). The health check needs no curl:
# `switchboard healthcheck` asks /readyz of the role(s) SWITCHBOARD_ROLE names.
#
#   docker build -t switchboard .

# The exact toolchain rust-toolchain.toml pins (a test checks they agree), so the build downloads
# no other. rust-toolchain.toml itself is not copied: it would make rustup fetch rustfmt and
# clippy, which a release build does not need.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked && strip target/release/switchboard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin switchboard
WORKDIR /app
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY --from=build /src/config ./config
ENV APP_ENV=production \
    SWITCHBOARD_CONFIG_DIR=/app/config \
    AUTH_LISTEN=0.0.0.0:5001 \
    CONNECTORS_LISTEN=0.0.0.0:5002
USER 10001:10001
EXPOSE 5001 5002
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["switchboard", "healthcheck"]
ENTRYPOINT ["switchboard"]
CMD ["serve"]
