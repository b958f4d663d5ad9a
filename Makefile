# relayd — build, run and test. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/relayd
CONFIG    ?= etc/relayd.conf
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD = -trimpath -ldflags "-X github.com/relayd/relayd/pkg/daemon.Version=$(VERSION)"

BPF_CLANG ?= clang-14
BPF_STRIP ?= llvm-strip-14

.PHONY: help build build-static run test test-unit test-e2e deps lint fuzz clean generate check-generated bench bench-quick deb

# Codecs (pkg/transcode): Opus is libopus through cgo, compiled with the
# nolibopusfile tag (libopus-dev only; no libopusfile, no OpenSSL).
#   CGO=auto  (default) cgo when a C compiler and pkg-config's opus are found
#             (`make deps` installs gcc, pkg-config and libopus-dev), else
#             a static build without Opus;
#   CGO=0     a static, cgo-free binary: it relays and transcodes G.711/G.722
#             but answers a request for Opus with a warning naming the codec;
#   CGO=1     cgo, failing if libopus is missing.
# Both ways build, vet and test: `make lint` vets each, `make test` runs
# pkg/transcode's tests cgo-free as well.
CGO    ?= auto
GOTAGS ?= nolibopusfile
# Decided when a recipe runs, so after `deps` may have installed libopus-dev.
cgo_enabled = $$(case "$(CGO)" in 0|1) echo $(CGO);; *) if command -v $${CC:-gcc} >/dev/null 2>&1 && pkg-config --exists opus 2>/dev/null; then echo 1; else echo 0; fi;; esac)
# spandsp (libspandsp-dev) only adds the tests' cross-checks of G.711,
# G.722 and the DTMF detector against it; relayd never links it.
go_tags     = $(GOTAGS)$$(pkg-config --exists spandsp 2>/dev/null && echo ,spandsp)
# GOENV prefixes a recipe line: CGO_ENABLED and the tags for every go command
# on it (and the go builds its tests start), RELAYD_WANT_OPUS so the codec
# tests fail rather than skip when a cgo build lacks Opus.
GOENV = cgo=$(cgo_enabled); export CGO_ENABLED=$$cgo GOFLAGS="$$GOFLAGS -tags=$(go_tags)"; \
	if [ "$$cgo" = 1 ]; then export RELAYD_WANT_OPUS=1; fi;

# The .deb: nfpm pinned (run from the module proxy, not added to go.mod).
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DEB_VERSION ?= 0.0.0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || echo 0).$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB_DIR     ?= bin

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/relayd (with Opus when gcc and libopus are present; CGO=0 forces a static build without)
	@$(GOENV) echo "building $(BIN): CGO_ENABLED=$$CGO_ENABLED$$([ $$CGO_ENABLED = 1 ] && echo ', Opus through libopus' || echo ', no Opus')"
	@$(GOENV) set -x; $(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/relayd

build-static: ## build bin/relayd cgo-free and static (no Opus): same as make build CGO=0
	$(MAKE) build CGO=0

deb: build ## $(DEB_DIR)/relayd_<version>_<arch>.deb: binary, systemd unit, default config, Grafana dashboard
	@mkdir -p $(DEB_DIR)
	sed 's|@RELAYD_BIN@|$(BIN)|' packaging/nfpm.yaml > $(DEB_DIR)/nfpm.yaml
	DEB_VERSION=$(DEB_VERSION) DEB_ARCH=$(DEB_ARCH) $(NFPM) pkg --packager deb \
		--config $(DEB_DIR)/nfpm.yaml --target $(DEB_DIR)/

run: build ## build and start relayd in the foreground (loopback default config)
	./$(BIN) --config-file=$(CONFIG) --foreground --state-dir=$(CURDIR)/run/state

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
	@$(GOENV) set -x; $(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./...

generate: ## rebuild the committed BPF objects and bindings (bpf/*_bpfel*) with Debian's clang-14
	BPF2GO_CC=$(BPF_CLANG) BPF2GO_STRIP=$(BPF_STRIP) BPF2GO_CFLAGS= $(GO) generate ./bpf/...

check-generated: generate ## fail when the committed BPF objects differ from a fresh build
	@stale=$$(git status --porcelain --untracked-files=all -- 'bpf/*_bpfel*'); \
	if [ -n "$$stale" ]; then echo "$$stale"; \
		echo "bpf/: generated files are stale: run 'make generate' and commit them"; exit 1; fi

test: deps lint check-generated ## install test dependencies, then run every test (race detector on), the cgo-free codec tests and the bench smoke test
	@$(GOENV) set -x; $(GO) test -race -count=1 -timeout 20m ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./pkg/transcode/... && CGO_ENABLED=0 $(GO) build ./...
	$(MAKE) bench-quick

bench: deps ## relayd (userspace, xdp) vs the incumbent and the XDP ceiling; writes bench/results/latest and BENCHMARKS.md (root, ~12 min)
	@$(GOENV) set -x; $(GO) run ./bench --out bench/results/latest --update-benchmarks BENCHMARKS.md --profile

bench-quick: ## bench smoke test (~1 min): fails when calls do not carry media (root; runs in CI)
	@if [ "$$(id -u)" != 0 ] && [ -z "$$CI" ]; then \
		echo "bench-quick skipped: needs root for network namespaces"; \
	else \
		$(GOENV) set -x; $(GO) run ./bench --quick --out $${TMPDIR:-/tmp}/relayd-bench-quick; \
	fi

test-unit: ## unit tests only (no root needed)
	@$(GOENV) set -x; $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/)

test-e2e: deps ## the Kamailio + sipp end-to-end tests
	@$(GOENV) set -x; $(GO) test -count=1 -v ./test/e2e/

fuzz: ## every fuzz target in FUZZSLICES slices of FUZZTIME (default 1 x 20s) under the shared lock, up to FUZZEXECS; see scripts/fuzz.sh, FUZZING.md
	@$(GOENV) GO=$(GO) ./scripts/fuzz.sh

clean: ## remove build output
	rm -rf bin
