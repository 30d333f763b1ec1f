# syntax=docker/dockerfile:1
# Lambda container image for object-detector.
#
# The binary is its own Lambda runtime interface client (lambda_runtime), so the final stage needs no
# runtime or build tools: distroless "cc" carries only glibc, libgcc, CA certificates and a nonroot user
# (about 25 MB). The builder is Debian bookworm, the same glibc as distroless/cc-debian12, so the dynamic
# binary runs as built. Expected image: about 45 MB (base + a ~20 MB stripped binary with the model).
#
#   docker build --platform linux/arm64 -t object-detector .     (or linux/amd64; match the function)
#
# Local test with the Lambda Runtime Interface Emulator (not in this minimal image; mount it):
#   docker run -p 9000:8080 -v ~/.aws-lambda-rie:/aws-lambda --entrypoint /aws-lambda/aws-lambda-rie \
#     object-detector /bootstrap

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# Declared in Cargo.toml ([[bench]]): cargo refuses a manifest whose declared targets are missing.
COPY benches ./benches
COPY model ./model
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin object-detector \
    && cp target/release/object-detector /bootstrap

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /bootstrap /bootstrap
ENTRYPOINT ["/bootstrap"]
