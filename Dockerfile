# Multi-stage build of the service. Used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin montecarlo-platform

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 app
COPY --from=build /src/target/release/montecarlo-platform /usr/local/bin/montecarlo-platform
USER app
EXPOSE 8080
ENV BIND_ADDRESS=0.0.0.0:8080
# Production defaults: refuses to start without DATABASE_URL, DATABASE_APP_URL and real secrets
# (see README, "Production settings"). Override with PRODUCTION=false for a local experiment.
ENV PRODUCTION=true
ENV LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/montecarlo-platform"]
