# One image for both roles; the role is chosen by CMD or SWITCHBOARD_ROLE.
#   docker build -t switchboard .
#   docker run -e SWITCHBOARD_ROLE=auth ... switchboard
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock rust-toolchain.toml build.rs ./
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
    AUTH_LISTEN=0.0.0.0:5001 \
    CONNECTORS_LISTEN=0.0.0.0:5002
USER 10001:10001
EXPOSE 5001 5002
ENTRYPOINT ["switchboard"]
CMD ["serve"]
