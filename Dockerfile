# syntax=docker/dockerfile:1
# xjp-gateway: the gateway and every provider plugin, built from source, in a small runtime
# image (distroless, non-root, read-only root file system: the only writable path is the
# state directory /var/lib/xjp, a volume).
#
#   docker build -t xjp-gateway .                 # the gateway (the last stage)
#   docker build -t xjp-mock-upstream --target mock .
#   docker compose up                             # the demo: gateway, Postgres, Redis, mock upstream
#
# No container engine on the machine? `cargo xtask check-dockerfile` (CI) parses this file,
# runs the build stage's RUN lines on the host with the same commands and checks that every
# path the runtime stages copy was built. Keep every RUN in the build stage.

ARG PROFILE=release

FROM rust:1.95-bookworm AS build
ARG PROFILE
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
# target/dist: bin/, lib/xjp/plugins/, etc/xjp/ (gateway.toml, demo.toml, prices.toml),
# share/xjp/fixtures/, var/lib/xjp/ (xtask/src/dist.rs).
RUN cargo xtask dist --profile "$PROFILE" --out target/dist

# The mock provider for the compose demo: replays the recorded answers in fixtures/.
FROM gcr.io/distroless/cc-debian12:nonroot AS mock
COPY --from=build /src/target/dist/bin/xjp-mock-upstream /usr/local/bin/xjp-mock-upstream
COPY --from=build /src/target/dist/share/xjp/fixtures /usr/share/xjp/fixtures
USER 65532:65532
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/xjp-mock-upstream", "--listen", "0.0.0.0:9100", "--scenarios", "/usr/share/xjp/fixtures/mock-scenarios.json"]

# The gateway. Config: /etc/xjp/gateway.toml (mount your own over /etc/xjp); secrets from the
# environment (DATABASE_URL, REDIS_URL, XJP_ADMIN_TOKEN, provider keys).
FROM gcr.io/distroless/cc-debian12:nonroot AS gateway
COPY --from=build /src/target/dist/bin/xjp-gateway /usr/local/bin/xjp-gateway
COPY --from=build /src/target/dist/lib/xjp/plugins /usr/lib/xjp/plugins
COPY --from=build /src/target/dist/etc/xjp /etc/xjp
COPY --from=build --chown=65532:65532 /src/target/dist/var/lib/xjp /var/lib/xjp
USER 65532:65532
ENV XJP_CONFIG=/etc/xjp/gateway.toml
VOLUME ["/var/lib/xjp"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/xjp-gateway"]
CMD ["serve"]
