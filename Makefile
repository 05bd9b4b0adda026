# shortllm — build, test, lint, benchmark.
GO      ?= go
BIN     ?= bin/shortllm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build build-noxla test test-race lint bench fuzz clean demo demo-model

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/shortllm

# Pure-Go, static binary without the XLA backend (no cgo).
build-noxla:
	CGO_ENABLED=0 $(GO) build -tags noxla -ldflags "$(LDFLAGS)" -o $(BIN)-noxla ./cmd/shortllm

# The suite is ~10 CPU-minutes on two cores; packages run side by side, so a package's wall
# time can pass go test's default 10-minute limit without anything being wrong.
test:
	$(GO) test -timeout 30m ./...

test-race:
	$(GO) test -race -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet -tags noxla ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...

# Short runs of every fuzz target (each FUZZTIME), to catch regressions; not part of test.
FUZZTIME ?= 15s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# The whole experiment in small, on the model that ships in testdata/demo (3–5 minutes on
# two cores): score, prune (25% asked, 18.7% removed), LoRA and CPT, evaluate (perplexity,
# zero-shot, speed), report → $(DEMO_OUT)/report.md.
# 25% removes 2 of the 10 blocks (little cost on this model); 40% removes 4, where pruning
# visibly costs perplexity and retraining recovers part of it, as in the paper.
DEMO_OUT ?= runs/demo
DEMO_RATIOS ?= 25%,40%
demo: build
	$(BIN) pipeline --config testdata/demo/pipeline.yaml --out $(DEMO_OUT) --ratios $(DEMO_RATIOS)
	@echo "report: $(DEMO_OUT)/report.md"

# Rebuild testdata/demo (tokenizer, config, data, model) from Go's own copy of Newton's Opticks.
demo-model: build
	BIN=$(BIN) scripts/demo-model.sh

clean:
	rm -rf bin
