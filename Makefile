GO       ?= go
BINARY   := billing_exporter
PKGS     := ./...


.PHONY: all build promu-build stack bench soak fuzz test test-tracing test-deps vet fmt-check lint clean

all: lint test build

build:
	$(GO) build -o $(BINARY) .

# Release build: version, revision and branch stamped by promu (kept in
# tools/go.mod, out of the exporter's own dependencies).
promu-build:
	$(GO) tool -modfile=tools/go.mod promu build --prefix .build/$$($(GO) env GOOS)-$$($(GO) env GOARCH)

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
	docker compose -f examples/docker-compose.yml up --build

# Installs what the tests need (Debian packages, when missing), then runs
# every test against real servers the tests start themselves.
test: test-deps vet
	$(MAKE) --no-print-directory fuzz FUZZTIME=5000x
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

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

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: fmt-check vet

clean:
	rm -rf $(BINARY) .build
