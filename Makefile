# hilt — see README.md. Every target works on a fresh Debian machine with Go 1.26.
GO        ?= go
BIN       := bin/hilt
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
PKGS      := ./...

.PHONY: all build run test unit e2e vet fmt-check deps contract fuzz fuzz-long flake matrix bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hilt

## run: the whole baseline against two simulated devices (embedded broker), reports in out/
run: build
	$(BIN) run --out out

## test: every test, then a short fuzz pass; installs the system packages it needs where missing
test: deps vet fmt-check
	$(GO) test -count=1 -timeout 14m $(PKGS)
	$(MAKE) fuzz FUZZTIME=5s

deps:
	scripts/deps.sh test

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## contract: the CLI and output contract check shipped beside the project
contract: build
	../shared/tools/contract-check --all

## fuzz: every fuzz target for FUZZTIME each (make test runs it for 5s; fuzz-long for 2m)
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

## matrix: the detection matrix (every flaw against the simulated devices), written to docs/DETECTION.md
matrix:
	HILT_MATRIX_OUT=$(CURDIR)/docs/DETECTION.md $(GO) test ./e2e -run '^TestDetectionMatrix$$' -count=1 -timeout 30m -v

clean:
	rm -rf bin out
