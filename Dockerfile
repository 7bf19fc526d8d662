# casereg-server and the casereg CLI in a slim image.
#   docker build -t casereg .
#   docker run -d --name casereg -p 127.0.0.1:50051:50051 -v casereg-data:/var/lib/casereg casereg
# The server has no authentication yet: publish the port on loopback (as above) or on a
# network that something else protects.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p casereg-server -p casereg-cli

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/casereg casereg \
    && mkdir -p /var/lib/casereg \
    && chown casereg:casereg /var/lib/casereg
COPY --from=build /src/target/release/casereg-server /src/target/release/casereg /usr/local/bin/
USER casereg
WORKDIR /var/lib/casereg
VOLUME ["/var/lib/casereg"]
# Inside the container the server must listen on all interfaces to be reachable at all, so
# it needs principals (create them in the volume first, see the README). CASEREG_INSECURE
# allows plain HTTP/2 for deployments where a proxy terminates TLS; give --tls-cert and
# --tls-key otherwise.
ENV CASEREG_LISTEN=0.0.0.0:50051 \
    CASEREG_DATA_DIR=/var/lib/casereg/data \
    CASEREG_PRINCIPALS=/var/lib/casereg/principals.toml \
    CASEREG_INSECURE=true \
    CASEREG_LOG_FORMAT=json
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["casereg", "--server", "http://127.0.0.1:50051", "--timeout", "3", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["casereg-server"]
