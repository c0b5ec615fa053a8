# The two images, built from the workspace's binaries:
#   docker build --target broker   -t enmasse-broker:0.1.0 .
#   docker build --target operator -t enmasse-operator:0.1.0 .
# (`kind load docker-image` or a registry push makes them reachable from a cluster.)

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The `image` profile: release, stripped (see Cargo.toml).
RUN cargo build --profile image --locked -p enmasse-broker -p enmasse-controller \
 && install -D target/image/enmasse-broker /out/enmasse-broker \
 && install -D target/image/enmasse-operator /out/enmasse-operator

FROM gcr.io/distroless/cc-debian12:nonroot AS broker
COPY --from=build /out/enmasse-broker /usr/local/bin/enmasse-broker
EXPOSE 5672 5671 8080
ENTRYPOINT ["/usr/local/bin/enmasse-broker"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/enmasse-operator /usr/local/bin/enmasse-operator
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/enmasse-operator"]
