# hilt — see README.md. Every target works on a fresh Debian machine with Go 1.26.
GO        ?= go
BIN       := bin/hilt
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
PKGS      := ./...

.PHONY: all build run test unit e2e vet fmt-check deps contract fuzz fuzz-long flake bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hilt

## run: the whole baseline against two simulated devices (embedded broker), reports in out/
run: build
	$(BIN) run --out out

## test: every test; installs the system packages it needs where they are missing
test: deps vet fmt-check
	$(GO) test -count=1 -timeout 14m $(PKGS)

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

## fuzz-long: longer fuzzing of every fuzz target (FUZZTIME per target, default 2m)
FUZZTIME ?= 2m
fuzz-long:
	$(GO) test ./drivers/netprobe -run '^$$' -fuzz FuzzAnalyze -fuzztime $(FUZZTIME)
	$(GO) test ./harness/secretscan -run '^$$' -fuzz . -fuzztime $(FUZZTIME)

clean:
	rm -rf bin out
