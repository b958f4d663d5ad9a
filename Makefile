# relayd — build, run and test. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/relayd
CONFIG    ?= etc/relayd.conf
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD = -trimpath -ldflags "-X github.com/relayd/relayd/pkg/daemon.Version=$(VERSION)"

BPF_CLANG ?= clang-14
BPF_STRIP ?= llvm-strip-14

.PHONY: help build run test test-unit test-e2e deps lint fuzz clean generate check-generated bench bench-quick deb

# The .deb: nfpm pinned (run from the module proxy, not added to go.mod).
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DEB_VERSION ?= 0.0.0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || echo 0).$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB_DIR     ?= bin

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/relayd
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/relayd

deb: build ## $(DEB_DIR)/relayd_<version>_<arch>.deb: binary, systemd unit, default config, Grafana dashboard
	@mkdir -p $(DEB_DIR)
	sed 's|@RELAYD_BIN@|$(BIN)|' packaging/nfpm.yaml > $(DEB_DIR)/nfpm.yaml
	DEB_VERSION=$(DEB_VERSION) DEB_ARCH=$(DEB_ARCH) $(NFPM) pkg --packager deb \
		--config $(DEB_DIR)/nfpm.yaml --target $(DEB_DIR)/

run: build ## build and start relayd in the foreground (loopback default config)
	./$(BIN) --config-file=$(CONFIG) --foreground

deps: ## install the Debian packages the tests need (root), when missing
	@missing=$$(for p in $$(grep -v '^#' scripts/test-deps.txt); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "not root: cannot install $$missing (privileged tests will skip)"; \
		fi; \
	fi
	@# Debian's packages start services we do not want; tests run their own instances.
	@for s in kamailio rtpengine-daemon ngcp-rtpengine-daemon redis-server prometheus; do \
		systemctl stop $$s >/dev/null 2>&1 || true; done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

generate: ## rebuild the committed BPF objects and bindings (bpf/*_bpfel*) with Debian's clang-14
	BPF2GO_CC=$(BPF_CLANG) BPF2GO_STRIP=$(BPF_STRIP) BPF2GO_CFLAGS= $(GO) generate ./bpf/...

check-generated: generate ## fail when the committed BPF objects differ from a fresh build
	@stale=$$(git status --porcelain --untracked-files=all -- 'bpf/*_bpfel*'); \
	if [ -n "$$stale" ]; then echo "$$stale"; \
		echo "bpf/: generated files are stale: run 'make generate' and commit them"; exit 1; fi

test: deps lint check-generated ## install test dependencies, then run every test (race detector on) and the bench smoke test
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) bench-quick

bench: deps ## relayd (userspace, xdp) vs the incumbent and the XDP ceiling; writes bench/results/latest and BENCHMARKS.md (root, ~12 min)
	$(GO) run ./bench --out bench/results/latest --update-benchmarks BENCHMARKS.md --profile

bench-quick: ## bench smoke test (~1 min): fails when calls do not carry media (root; runs in CI)
	@if [ "$$(id -u)" != 0 ] && [ -z "$$CI" ]; then \
		echo "bench-quick skipped: needs root for network namespaces"; \
	else \
		$(GO) run ./bench --quick --out $${TMPDIR:-/tmp}/relayd-bench-quick; \
	fi

test-unit: ## unit tests only (no root needed)
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/)

test-e2e: deps ## the Kamailio + sipp end-to-end tests
	$(GO) test -count=1 -v ./test/e2e/

fuzz: ## every fuzz target in FUZZSLICES slices of FUZZTIME (default 1 x 20s) under the shared lock, up to FUZZEXECS; see scripts/fuzz.sh, FUZZING.md
	GO=$(GO) ./scripts/fuzz.sh

clean: ## remove build output
	rm -rf bin
