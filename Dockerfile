# Built the Prometheus way: `make promu-build` (or `promu crossbuild`) puts
# binaries under .build/${OS}-${ARCH}/ and this image only copies one in.
# There is no RUN step, so an image for another architecture builds without
# emulation (`podman build --arch arm64`, `docker buildx --platform`).
#
# The base is the Prometheus busybox image for OS/ARCH (busybox, nobody in
# /etc/passwd, CA certificates, zoneinfo). BASE_IMAGE replaces it, e.g. with
# a local image where no registry can be reached (see scripts/image-test.sh).
ARG ARCH="amd64"
ARG OS="linux"
ARG BASE_IMAGE="quay.io/prometheus/busybox-${OS}-${ARCH}:latest"
FROM ${BASE_IMAGE}

ARG ARCH="amd64"
ARG OS="linux"
# VERSION and REVISION label the image with what promu stamped into the
# binary: `make image` passes the VERSION file and `git rev-parse HEAD`.
ARG VERSION="unknown"
ARG REVISION="unknown"
LABEL org.opencontainers.image.title="billing_exporter" \
      org.opencontainers.image.description="Prometheus exporter for per-tenant billing usage in Redis joined with plan limits" \
      org.opencontainers.image.source="https://github.com/billing-exporter/billing_exporter" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY .build/${OS}-${ARCH}/billing_exporter /bin/billing_exporter
COPY LICENSE NOTICE /

EXPOSE 9866
# nobody, by number: Kubernetes' runAsNonRoot can check a numeric user
# without a runAsUser in the pod.
USER 65534:65534
ENTRYPOINT ["/bin/billing_exporter"]
