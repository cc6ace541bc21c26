# Built the Prometheus way: `promu crossbuild` puts binaries under
# .build/${OS}-${ARCH}/ and this image only copies one in.
ARG ARCH="amd64"
ARG OS="linux"
FROM quay.io/prometheus/busybox-${OS}-${ARCH}:latest
LABEL org.opencontainers.image.title="billing_exporter" \
      org.opencontainers.image.description="Prometheus exporter for per-tenant billing usage in Redis joined with plan limits"

ARG ARCH="amd64"
ARG OS="linux"
COPY .build/${OS}-${ARCH}/billing_exporter /bin/billing_exporter

EXPOSE 9866
USER nobody
ENTRYPOINT ["/bin/billing_exporter"]
