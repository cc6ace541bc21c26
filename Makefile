GO       ?= go
BINARY   := billing_exporter
PKGS     := ./...

# promu names the project (and so the tarball and its directory) after the
# URL of the current branch's git remote, whatever the clone is called or
# where it came from: every promu call sees the repository path of
# .promu.yml as that remote, through git's environment configuration.
REPO_PATH := $(shell awk '/^repository:/ {c = 1; next} c && $$1 == "path:" {print $$2; exit}' .promu.yml)
GIT_BRANCH := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
# The Go toolchain of every release build (build, promu-build, crossbuild,
# tarball, image, release) and of vulncheck: the go command fetches it from
# the module proxy. Set here because GOTOOLCHAIN=local ignores go.mod's
# toolchain line; `go run` and the tests use the Go that go.mod's go line
# accepts.
RELEASE_GOTOOLCHAIN ?= go1.27.3
PROMU_ENV  = GOTOOLCHAIN=$(RELEASE_GOTOOLCHAIN) GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0=branch.$(GIT_BRANCH).remote GIT_CONFIG_VALUE_0=origin \
	GIT_CONFIG_KEY_1=remote.origin.url GIT_CONFIG_VALUE_1=https://$(REPO_PATH)
# promu (kept in tools/go.mod, out of the exporter's own dependencies) is
# built for this host and then run by path (`go tool -n` prints it): `go
# tool promu` would build the tool itself for the GOOS/GOARCH of a cross
# build.
PROMU      = $(PROMU_ENV) $(shell $(GO) tool -n -modfile=tools/go.mod promu)
VERSION  := $(shell cat VERSION)
REVISION  = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# Where `make build` puts the binary.
PREFIX   ?= $(CURDIR)
# The image is a Linux one on this host's architecture, whatever the host
# OS: promu-build, image and stack all use .build/$(IMAGE_OS)-$(IMAGE_ARCH),
# the directory the Dockerfile copies from (its OS and ARCH build args).
IMAGE_OS   ?= linux
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGE      ?= billing_exporter:$(VERSION)
# The crossbuild platforms listed in .promu.yml.
CROSSBUILD_PLATFORMS ?= $(shell awk '/^crossbuild:/ {c = 1; next} c && /^[^ ]/ {c = 0} c && $$1 == "-" {print $$2}' .promu.yml)
CONTAINER_ENGINE ?= $(shell command -v docker >/dev/null 2>&1 && echo docker || echo podman)

.PHONY: test-deploy
.PHONY: all build promu-build crossbuild tarball release vulncheck test-release image image-test stack demo-stack bench soak fuzz test test-tracing test-monitoring mixin test-deps vet fmt-check golangci-lint tidy-check lint clean

all: lint test build

# The release build: static (CGO_ENABLED=0, netgo), with version, revision
# and branch stamped by promu from VERSION and git (see .promu.yml).
build:
	$(PROMU) build --prefix $(PREFIX)

# The release build for the image's OS/ARCH into .build/OS-ARCH/.
promu-build:
	GOOS=$(IMAGE_OS) GOARCH=$(IMAGE_ARCH) $(PROMU) build --prefix .build/$(IMAGE_OS)-$(IMAGE_ARCH)

# What `promu crossbuild` does inside its Docker builder image, without
# Docker: one promu build per platform of .promu.yml.
crossbuild:
	@set -e; for p in $(CROSSBUILD_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; echo "promu build $$os/$$arch"; \
	  GOOS=$$os GOARCH=$$arch $(PROMU) build --prefix .build/$$os-$$arch; \
	done

# The release tarball (.tarballs/): binary, LICENSE, NOTICE, README,
# CHANGELOG (.promu.yml tarball files).
tarball: promu-build
	GOOS=$(IMAGE_OS) GOARCH=$(IMAGE_ARCH) $(PROMU) tarball --prefix .tarballs .build/$(IMAGE_OS)-$(IMAGE_ARCH)

# The release artefacts in .tarballs/, for each crossbuild platform: the
# tarball and a CycloneDX SBOM of its binary (the modules linked in, as `go
# version -m` reads them, and the Go standard library); then sha256sums.txt
# over all of them (promu checksum). The SBOM step is offline: it finds the
# licences in the module cache the builds filled.
CYCLONEDX_GOMOD = $(shell $(GO) tool -n -modfile=tools/go.mod cyclonedx-gomod)
release: crossbuild
	rm -rf .tarballs
	@set -e; for p in $(CROSSBUILD_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; echo "promu tarball $$os/$$arch, SBOM"; \
	  GOOS=$$os GOARCH=$$arch $(PROMU) tarball --prefix .tarballs .build/$$os-$$arch; \
	  GOTOOLCHAIN=$(RELEASE_GOTOOLCHAIN) GOPROXY=off GOOS=$$os GOARCH=$$arch \
	    $(CYCLONEDX_GOMOD) bin -json -licenses -std -version v$(VERSION) \
	    -output .tarballs/$(BINARY)-$(VERSION).$$os-$$arch.sbom.json .build/$$os-$$arch/$(BINARY); \
	done
	$(PROMU) checksum .tarballs

# Checks `make release` (tests tagged release in the root package): the
# checksums, the tarballs' contents and the SBOM.
test-release:
	$(GO) test -tags release -count=1 -timeout 30m -run '^TestMakeRelease$$' -v .

# govulncheck against an offline database built (cmd/indexdb) from the OSV
# files of the golang.org/x/vulndb module pinned in tools/go.mod: on the
# release binary, then on the source with the release toolchain. Fails on
# any reachable vulnerability.
VULNDB := .build/vulndb
GOVULNCHECK = GOTOOLCHAIN=$(RELEASE_GOTOOLCHAIN) $(shell GOTOOLCHAIN=$(RELEASE_GOTOOLCHAIN) $(GO) tool -n -modfile=tools/go.mod govulncheck) -db file://$(CURDIR)/$(VULNDB)
vulncheck: promu-build
	rm -rf $(VULNDB)
	cd tools && $(GO) mod download golang.org/x/vulndb
	$(GO) tool -modfile=tools/go.mod indexdb \
	  -vulns "$$(cd tools && $(GO) list -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" -out $(VULNDB)
	$(GOVULNCHECK) -mode=binary .build/$(IMAGE_OS)-$(IMAGE_ARCH)/$(BINARY)
	$(GOVULNCHECK) -tags netgo ./...

# The container image with Docker or podman (CONTAINER_ENGINE); the base is
# the Prometheus busybox image from quay.io unless BASE_IMAGE names another.
image: promu-build
	$(CONTAINER_ENGINE) build --platform $(IMAGE_OS)/$(IMAGE_ARCH) \
	  --build-arg OS=$(IMAGE_OS) --build-arg ARCH=$(IMAGE_ARCH) \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

# Builds the image with podman from a local busybox base (no Docker engine,
# no registry), checks its configuration, and runs its entrypoint from the
# image's filesystem as nobody; the same build and checks for linux/arm64.
# Needs root; installs podman and busybox-static when missing.
image-test:
	./scripts/image-test.sh

# Scrape benchmark: the exporter against a floor program and Debian's
# redis_exporter on the same generated data (see cmd/bench/README.md and
# BENCHMARKS.md). Run it on an otherwise idle machine.
BENCH_TENANTS ?= 10000,100000
bench: test-deps
	./scripts/install-test-deps.sh --bench
	$(GO) run ./cmd/bench -tenants $(BENCH_TENANTS) -out bench-report.md

# Soak: scrapers and API readers against a real Redis and PostgreSQL while
# a writer increments usage; `make test` runs it for 10 s.
SOAK_DURATION ?= 5m
soak: test-deps
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -race -count=1 -run '^TestSoak$$' -timeout 30m -v .

# The whole monitoring stack on a machine with Docker (see README, Deploy).
stack: promu-build
	IMAGE_OS=$(IMAGE_OS) IMAGE_ARCH=$(IMAGE_ARCH) VERSION=$(VERSION) REVISION=$(REVISION) \
	  docker compose -f examples/docker-compose.yml up --build

# The demo exporter, Prometheus loading alerts/ and Alertmanager on free
# loopback ports, without Docker (Debian packages from test-deps); prints
# the URLs, stops everything on Ctrl-C. DEMO_STACK_DURATION=90s stops it
# by itself (CI).
demo-stack: test-deps
	DEMO_STACK_DURATION=$(DEMO_STACK_DURATION) GO=$(GO) BILLING_EXPORTER=$(BILLING_EXPORTER) ./scripts/demo-stack.sh

# Installs what the tests need (Debian packages, when missing), then runs
# every test against real servers the tests start themselves.
test: test-deps vet
	$(MAKE) --no-print-directory fuzz FUZZTIME=5000x
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	$(MAKE) --no-print-directory test-monitoring

# The monitoring content (alerts, dashboards, Alertmanager example, mixin)
# is tested from its own module, monitoring/go.mod, which keeps Prometheus'
# PromQL parser and go-jsonnet out of the exporter's dependencies.
test-monitoring:
	cd monitoring && $(GO) test -race -count=1 -timeout 15m ./...

# Renders mixin/ into alerts/*.yml, dashboards/*.json and the Kubernetes
# PrometheusRule and dashboards ConfigMap (examples/kubernetes/). Run it
# after editing the mixin; the monitoring tests fail until you do.
# MIXIN_CONFIG=file.libsonnet renders with that file's _config overrides
# (a jsonnet object, e.g. { exporterSelector: 'job="billing"' }) instead:
# for your own installation, not for committing to this repository.
MIXIN_CONFIG ?=
mixin:
	cd monitoring && $(GO) run ./cmd/mixin -root .. $(if $(MIXIN_CONFIG),-config $(abspath $(MIXIN_CONFIG)))
	@# Helm reads only files inside the chart: copies (make test-deploy checks them).
	rm -rf $(CHART)/files/rules $(CHART)/files/dashboards
	mkdir -p $(CHART)/files/rules $(CHART)/files/dashboards
	cp alerts/*.rules.yml $(CHART)/files/rules/
	cp dashboards/*.json $(CHART)/files/dashboards/

# The Helm chart and the Kubernetes examples, tested from their own module,
# deploy/go.mod, which keeps Helm and the Kubernetes API types out of the
# exporter's dependencies: every toggle of the chart rendered and linted
# with Helm in process, every object decoded strictly into its API type,
# and `kubectl kustomize examples/kubernetes`; vet and golangci-lint on the
# module. Kept out of `make test` and `make lint`: building Helm takes
# minutes cold.
CHART := charts/billing-exporter
test-deploy:
	./scripts/install-test-deps.sh --deploy
	cd deploy && $(GO) vet ./...
	cd deploy && $(GO) tool -modfile=../tools/go.mod golangci-lint run --allow-serial-runners --config ../.golangci.yml ./...
	cd deploy && $(GO) test -race -count=1 -timeout 20m ./...

# Tracing against a real Jaeger (v2, all in one, in-memory storage): builds
# Jaeger from tools/jaeger/go.mod (its own module: its dependencies are
# many and not the exporter's) and runs TestTracesInJaeger with it. Kept
# out of `make test` because building Jaeger is slow: about an hour cold on
# a shared, loaded 2-core machine (the test itself then takes seconds; the
# Go build cache makes later builds quick). .ci/run runs both.
JAEGER := .build/jaeger
test-tracing: test-deps
	cd tools/jaeger && $(GO) build -o $(CURDIR)/$(JAEGER) github.com/jaegertracing/jaeger/cmd/jaeger
	BILLING_EXPORTER_JAEGER=$(CURDIR)/$(JAEGER) $(GO) test -race -count=1 -timeout 20m -run '^TestTracesInJaeger$$' -v .

# Runs every Go fuzz target (seed corpora in testdata/fuzz and f.Add) for
# FUZZTIME each; `make test` runs them briefly, `make fuzz FUZZTIME=5m` hunts.
# `make test` gives a count (5000x), not a duration: with a duration, Go 1.26's
# fuzz coordinator can report a bare "context deadline exceeded" failure when
# the deadline fires while a starved worker is mid-call (golang/go#75804, fixed
# in Go 1.27). A count has no deadline to race, so a failure there is a finding.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg > /tmp/fuzz-$$$$.log 2>&1 || { cat /tmp/fuzz-$$$$.log; rm -f /tmp/fuzz-$$$$.log; exit 1; }; \
	  done; \
	done; rm -f /tmp/fuzz-$$$$.log

test-deps:
	./scripts/install-test-deps.sh

vet:
	$(GO) vet $(PKGS)
	cd monitoring && $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# golangci-lint, pinned in tools/go.mod; linters chosen in .golangci.yml.
# A second run on the machine waits for the first (--allow-serial-runners)
# instead of failing on its lock.
golangci-lint:
	$(GO) tool -modfile=tools/go.mod golangci-lint run --allow-serial-runners ./...

# `go mod tidy` must have nothing to change, in the exporter's module and in
# the tools' one.
tidy-check:
	$(GO) mod tidy -diff
	cd tools && $(GO) mod tidy -diff
	cd deploy && $(GO) mod tidy -diff

lint: fmt-check vet golangci-lint tidy-check

clean:
	rm -rf $(BINARY) .build .tarballs
