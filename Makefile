# go-metro: the two commands a fresh machine needs (as root, Debian with Go 1.26):
#   make demo   builds, brings up a namespace lab with a real delay, runs the
#               check for a few seconds and prints its metrics beside the
#               kernel's own srtt
#   make test   unit tests with the race detector, fuzz seeds, and the
#               end-to-end lab tests (root; they fail rather than skip in CI)
SHELL := /bin/bash
GO ?= go
DEB_PACKAGES := libpcap-dev tshark tcpdump ethtool iproute2 libcap2-bin util-linux procps

.PHONY: deps demo test unit lab vet fmt-check bench bench-live

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(GO) mod download

demo: deps
	$(GO) run ./tests/cmd/demo

test: deps fmt-check vet unit lab

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags pcap ./capture/source/

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/tests')
	$(GO) build -tags pcap ./...

lab:
	$(GO) test -count=1 -timeout 20m -v ./tests/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./capture/...

# make bench-live: go-metro's CPU and RSS beside tcpdump -s 128 at the same
# traffic (iperf3 in namespaces, shaped to ~100k packets/s and unshaped),
# alternating runs, medians of 3 pairs (root; apt-get install iperf3 tcpdump).
bench-live:
	$(GO) run ./tests/cmd/benchlive $(BENCH_LIVE_FLAGS)
