# hilt — see README.md. Every target works on a fresh Debian machine with Go 1.26.
GO        ?= go
BIN       := bin/hilt
DEVBIN    := bin/hilt-refdev
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# One random stamp per make invocation, linked into bin/hilt and bin/hilt-refdev: the
# simulated bench starts its devices from hilt-refdev (the firmware alone, which starts
# faster and in less memory at each of a device's reboots) only when its stamp is hilt's
# (internal/buildpair; its LinkFlag spells the same flag for the e2e tests).
STAMP     := $(shell od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
STAMPFLAG := -X github.com/hilt-project/hilt/internal/buildpair.stamp=$(STAMP)
LDFLAGS   := -X main.version=$(VERSION) $(STAMPFLAG)
PKGS      := ./...

.PHONY: all build run test unit e2e vet fmt-check deps contract fuzz fuzz-long flake matrix bench clean \
	deps-qemu qemu-image test-qemu flake-qemu

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hilt
	$(GO) build -ldflags "$(STAMPFLAG)" -o $(DEVBIN) ./fixtures/refdev/cmd/refdev

## run: the whole baseline against two simulated devices (embedded broker), reports in out/
run: build
	$(BIN) run --out out

## test: every test, then a short fuzz pass; installs the system packages it needs where missing
## (the emulated device's tests need the kernel and initramfs: qemu-image). The e2e package runs
## the emulated runs (TestQemu) side by side with the simulated detection matrix.
test: deps deps-qemu qemu-image vet fmt-check
	$(GO) test -count=1 -timeout 30m $(PKGS)
	$(MAKE) fuzz FUZZTIME=50000x

deps:
	scripts/deps.sh test

deps-qemu:
	scripts/deps.sh qemu

## qemu-image: the emulated device's kernel (Debian's, by apt-get download) and initramfs
## (/init and the reference firmware from this tree) in QEMU_CACHE; docs/QEMU.md
QEMU_CACHE ?= .cache/qemu
# The firmware's build date, from which its declared support period runs (IN-02): the
# initramfs holds no file dates, so the firmware is told at link time.
REFDEV_BUILD_DATE ?= $(shell date -u +%Y-%m-%d)
qemu-image:
	scripts/fetch-kernel.sh $(QEMU_CACHE)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(QEMU_CACHE)/init ./fixtures/qemu/init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/hilt-project/hilt/fixtures/refdev.buildDate=$(REFDEV_BUILD_DATE)" \
		-o $(QEMU_CACHE)/refdev ./fixtures/refdev/cmd/refdev
	$(GO) run ./fixtures/qemu/mkimage -init $(QEMU_CACHE)/init -device $(QEMU_CACHE)/refdev -kernel-root $(QEMU_CACHE)/kernel -o $(QEMU_CACHE)/initramfs.cpio.gz

## test-qemu: the emulated device alone: driver, bench, image, control socket, and the
## emulated hilt runs (e2e TestQemu*)
test-qemu: deps-qemu qemu-image
	$(GO) test -count=1 -timeout 10m ./drivers/qemu/ ./harness/emu/ ./fixtures/qemu/... ./harness/runner/
	$(GO) test -count=1 -timeout 40m -run '^TestQemu' -v ./e2e

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## contract: the CLI and output contract check shipped beside the project
contract: build
	../shared/tools/contract-check --all

## fuzz: every fuzz target for FUZZTIME each (fuzz-long: 2m). make test runs 50000 inputs per
## target (a count, not a time: Go 1.26's fuzz coordinator can fail a time-bounded run with
## "context deadline exceeded" at its end on a busy machine, golang/go#75804)
FUZZ_TARGETS := ./harness/profile:FuzzParse ./harness/agent:FuzzParseAnswer ./harness/agent:FuzzDecodeResponse \
	./drivers/netprobe:FuzzAnalyze ./harness/secretscan:FuzzScan
FUZZTIME ?= 30s
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
	  $(GO) test $${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME); \
	done
fuzz-long:
	$(MAKE) fuzz FUZZTIME=2m

## flake: the compliant baseline N times (default 50) on simulated devices; reports every
## check whose verdict changed. flake-qemu: the same on emulated devices (default N=5)
N ?= 50
flake: build
	scripts/flake.sh $(N)
flake-qemu: build qemu-image
	scripts/flake.sh $(if $(filter 50,$(N)),5,$(N)) --device fixtures/devices/qemu.yaml

## matrix: the detection matrix (every flaw against the simulated devices), written to docs/DETECTION.md
matrix:
	HILT_MATRIX_OUT=$(CURDIR)/docs/DETECTION.md $(GO) test ./e2e -run '^TestDetectionMatrix$$' -count=1 -timeout 30m -v

clean:
	rm -rf bin out

## bench: speed at scale against simulated devices, nmap and tshark, and the baseline on one
## emulated unit, written to BENCHMARKS.md (about 15 minutes; installs nmap, tshark and QEMU
## where missing)
bench: build
	scripts/bench.sh
