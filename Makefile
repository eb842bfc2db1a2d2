# go-metro: the two commands a fresh machine needs (as root, Debian with Go 1.26):
#   make demo   builds, brings up a namespace lab with a real delay, runs the
#               check for a few seconds and prints its metrics beside the
#               kernel's own srtt
#   make test   unit tests with the race detector, fuzz seeds, the end-to-end
#               lab tests (root; they fail rather than skip in CI), the real
#               Datadog Agent built with go-metro from each tree in ../shared
#               (7.63 and 7.68, each with its own toolchain), its mocksender
#               tests and the agent lab, then the real-capture corpus tests
SHELL := /bin/bash
GO ?= go
# docker.io: the lab builds the standalone image and runs it as the
# DaemonSet does (tests/image_test.go), and the agent lab runs containers
# of images built FROM scratch (tests/agent); both start dockerd when none
# runs.
DEB_PACKAGES := libpcap-dev tshark tcpdump ethtool iproute2 libcap2-bin util-linux procps docker.io dnsmasq

.PHONY: deps demo test unit lab vet fmt-check bench pgo corpus bench-live bench-scale image

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(GO) mod download

demo: deps
	$(GO) run ./tests/cmd/demo

test: deps fmt-check vet unit lab agents-test corpus

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags pcap ./capture/source/

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/tests')
	$(GO) build -tags pcap ./...

# tests/agent runs in agent-lab, after the others: two labs at once would
# perturb the load test's drop count and the accuracy bounds.
lab:
	$(GO) test -count=1 -timeout 20m -v $$($(GO) list ./tests/... | grep -v '/tests/agent$$\|/tests/corpus$$')

# make image IMAGE=registry.example.com/go-metro:TAG: the standalone image
# (deploy/docker/Dockerfile.go-metro, FROM scratch: nothing is pulled).
IMAGE ?= go-metro:dev
image:
	$(GO) run ./deploy/docker/imagecontext -o bin/image
	docker build -f deploy/docker/Dockerfile.go-metro -t $(IMAGE) bin/image

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./capture/...

# make pgo: the profile `go build ./cmd/go-metro` optimises with (profile-
# guided optimisation, -pgo=auto): a CPU profile of the hot-path benchmark,
# the per-packet path over the realistic synthetic capture. Regenerate it
# when the hot path changes; HotPath runs ~10 % faster built with it.
pgo:
	$(GO) test -run '^$$' -bench 'HotPath$$' -benchtime 30000000x -cpuprofile cmd/go-metro/default.pgo -o /dev/null ./capture/

# ---- The real Datadog Agent with go-metro (check/README.md) ----
# `make agent AGENT_SRC=/path/to/datadog-agent` builds bin/agent from any
# datadog-agent checkout from 7.63 on, without modifying it:
# check/agent-workspace.sh writes a go.work (the checkout's plus go-metro's
# two modules) and a `go build -overlay` for the one registration line into
# bin/agent-work/; check/agent-tags.sh reads from the checkout which variant
# of check/ fits its API (build tags) and which Go toolchain it pins, and
# the build runs with that toolchain (GOTOOLCHAIN; the module proxy serves
# it), as the agent's release build does. Without a checkout these targets
# skip, except in CI (CI set), where they fail.
AGENT_SRC ?= ../shared/datadog-agent
AGENT_WORK ?= $(CURDIR)/bin/agent-work
# The agent is built with go-metro's hot-path profile (make pgo), as the
# standalone binary is; AGENT_PGO= builds it without (the first build with
# it recompiles the agent's packages once: about 2 minutes here).
AGENT_PGO ?= $(CURDIR)/cmd/go-metro/default.pgo
# The tests are compiled with the same profile: the agent's packages they
# share with the agent build then come from the build cache.
agent_pgo = $(if $(AGENT_PGO),-pgo="$(AGENT_PGO)")
AGENT_BIN ?= $(CURDIR)/bin/agent
# The agent's container tags, so that the custom agent sees containers and
# pods (workloadmeta, tagger) as the official one does; zlib (pure Go) gives
# the serializer a stream compressor: without it the agent's default zstd
# falls back to none, and every series payload is dropped ("Stream
# compression not available"). The release build's zstd tag needs cgo and
# libzstd.
AGENT_TAGS ?= zlib docker containerd kubelet
# Lazy binding, as the agent's own build links: with the container tags
# the binary references NVML symbols that only exist where a GPU driver is
# installed, and eager binding kills it at start (undefined symbol:
# nvmlDeviceSetMemClkVfOffset).
AGENT_LDFLAGS ?= -extldflags=-Wl,-z,lazy
# Skip (exit 0) or fail when the checkout is missing.
agent_src_check = if [ ! -f "$(AGENT_SRC)/go.work" ]; then \
	if [ -n "$$CI" ]; then echo "no datadog-agent checkout at AGENT_SRC=$(AGENT_SRC) and CI is set" >&2; exit 1; fi; \
	echo "skipped: no datadog-agent checkout at AGENT_SRC=$(AGENT_SRC)"; exit 0; fi
# The checkout's variant tags and toolchain, into the shell of the recipe.
agent_env = variant=$$(check/agent-tags.sh "$(AGENT_SRC)") && \
	toolchain=$$(check/agent-tags.sh --toolchain "$(AGENT_SRC)") && \
	echo "agent $(AGENT_SRC): toolchain $$toolchain, variant tags [$$variant]"

.PHONY: agent agent-workspace agent-test agent-lab agents agents-test

agent-workspace:
	@$(agent_src_check); check/agent-workspace.sh "$(AGENT_SRC)" "$(AGENT_WORK)"

agent: agent-workspace
	@$(agent_src_check); $(agent_env) && here=$$PWD && cd "$(AGENT_SRC)" && \
	GOTOOLCHAIN=$$toolchain GOWORK="$(AGENT_WORK)/go.work" $(GO) build -tags "$(AGENT_TAGS) $$variant" \
		-ldflags '$(AGENT_LDFLAGS)' -overlay "$(AGENT_WORK)/overlay.json" $(agent_pgo) -o "$(AGENT_BIN)" ./cmd/agent && \
	echo "built $(AGENT_BIN) from $(AGENT_SRC) with go-metro registered ($$($(AGENT_BIN) version 2>/dev/null | head -n 1))"

# The mocksender tests of check/ (build tag test) and vet, in the workspace,
# with the agent's toolchain and variant.
agent-test: agent-workspace
	@$(agent_src_check); $(agent_env) && cd check && \
	GOTOOLCHAIN=$$toolchain GOWORK="$(AGENT_WORK)/go.work" $(GO) vet -tags "test $$variant" $(agent_pgo) ./... && \
	GOTOOLCHAIN=$$toolchain GOWORK="$(AGENT_WORK)/go.work" $(GO) test -tags "test $$variant" $(agent_pgo) -count=1 ./...

# The lab test driving bin/agent (root; tests/agent/).
agent-lab: agent
	@$(agent_src_check); GOMETRO_AGENT="$(AGENT_BIN)" $(GO) test -count=1 -timeout 10m -v ./tests/agent/

# Every agent tree in ../shared (AGENTS), each built with its own toolchain
# into bin/agent-<tree>, its mocksender tests run, and the agent lab run
# against its binary: what `make test` (and so CI) runs.
AGENTS ?= $(wildcard ../shared/datadog-agent ../shared/datadog-agent-7.68)
agents-test:
	@if [ -n "$$CI" ] && [ -z "$(AGENTS)" ]; then echo "no agent trees in ../shared and CI is set" >&2; exit 1; fi
	@set -e; for src in $(AGENTS); do name=$$(basename $$src); \
		$(MAKE) --no-print-directory agent-test agent-lab AGENT_SRC=$$src \
			AGENT_WORK=$(CURDIR)/bin/work-$$name AGENT_BIN=$(CURDIR)/bin/$$name; done

# Real captures (../shared/corpus): replay every file, and compare each flow
# with tshark's ack_rtt on the files where tshark finds >= 20 samples; part of
# `make test`, kept out of `make lab` so that its CPU (both cores for about a
# minute) cannot disturb the lab's timing-sensitive tests. Figures: -v.
corpus:
	$(GO) test -count=1 -timeout 15m -v ./tests/corpus/

# make bench-live: go-metro's CPU and RSS beside tcpdump -s 128 at the same
# traffic (iperf3 in namespaces, shaped to ~100k packets/s and unshaped),
# alternating runs, medians of 3 pairs (root; apt-get install iperf3 tcpdump).
bench-live:
	$(GO) run ./tests/cmd/benchlive $(BENCH_LIVE_FLAGS)

# make bench-scale: go-metro's CPU per frame, drops and RSS beside tcpdump
# -s 128 while tcpreplay sends a synthetic capture into a veth at rising
# rates up to the most this machine sends, alternating runs; and the peak
# RSS and CPU per packet of `go-metro replay` against the number of
# concurrent connections, 1 k to 1 M, and of `go-metro run` reporting
# over them every second (root; apt-get install tcpreplay tcpdump).
# BENCH_SCALE_FLAGS='-load build' competes with a Go build.
bench-scale:
	$(GO) run ./tests/cmd/benchscale $(BENCH_SCALE_FLAGS)
