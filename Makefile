GO       ?= go
BINARY   := billing_exporter
PKGS     := ./...


.PHONY: all build promu-build stack test test-deps vet fmt-check lint clean

all: lint test build

build:
	$(GO) build -o $(BINARY) .

# Release build: version, revision and branch stamped by promu (kept in
# tools/go.mod, out of the exporter's own dependencies).
promu-build:
	$(GO) tool -modfile=tools/go.mod promu build --prefix .build/$$($(GO) env GOOS)-$$($(GO) env GOARCH)

# The whole monitoring stack on a machine with Docker (see README, Deploy).
stack: promu-build
	docker compose -f examples/docker-compose.yml up --build

# Installs what the tests need (Debian packages, when missing), then runs
# every test against real servers the tests start themselves.
test: test-deps vet
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

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
