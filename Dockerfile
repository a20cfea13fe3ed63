# Build stage: compile the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY static ./static
COPY migrations ./migrations
RUN cargo build --release --locked && cp target/release/portcullis /portcullis

# Run stage: a small image with the binary, a non-root user and a data volume.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin portcullis \
    && mkdir -p /data && chown portcullis:portcullis /data
COPY --from=build /portcullis /usr/local/bin/portcullis
USER portcullis
ENV PORTCULLIS_DATA_DIR=/data \
    PORTCULLIS_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
