# Build: docker build -t whatsapp-numbers .
# Run:   docker run -p 8080:8080 -v wn-data:/data \
#          -e AUTH_JWT_SECRET=... -e SECRETS_KEY=... -e DATABASE_URL=postgres://... whatsapp-numbers
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data app \
    && mkdir -p /data && chown app /data
COPY --from=build /src/target/release/whatsapp-numbers /usr/local/bin/whatsapp-numbers
USER app
WORKDIR /data
ENV BIND_ADDR=0.0.0.0:8080 \
    DATA_DIR=/data \
    RUST_LOG=info
# Probes: GET /healthz (process up), GET /readyz (database reachable). The image has no curl:
# the binary asks its own /healthz.
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/whatsapp-numbers", "health"]
# SIGTERM stops it gracefully (streams end, claimed jobs are handed back).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/whatsapp-numbers"]
CMD ["serve"]
