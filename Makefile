# Kiln: `make demo` and `make test` install what is missing, build, and run.
SHELL := /bin/bash
SWIFT ?= swift
KILN := .build/debug/kiln
OUT ?= out

.PHONY: all deps build test unit conformance samples demo bench clean

all: build

# System packages (apt) the build and the tests need; installs only what is missing.
deps:
	@bash tools/install-deps.sh

build: deps
	$(SWIFT) build --build-tests

# The whole suite: unit tests, the Keras conformance corpus, the samples.
test: build
	bash tools/test-all.sh $(KILN) $(OUT)

unit: build
	$(SWIFT) test --skip-build --disable-swift-testing

conformance: build
	python3 Tests/run_conformance.py --kiln $(KILN)

samples: build
	bash samples/run.sh $(KILN) $(OUT)/samples

# The default sample end to end: compile the demo CNN, link a C program, print its predictions.
demo: deps
	$(SWIFT) build --product kiln
	$(KILN) summary samples/models/mnist_cnn.keras
	bash samples/run.sh $(KILN) $(OUT)/demo

bench: deps
	$(SWIFT) build -c release --product kiln
	$(if $(wildcard /opt/kerasvenv/bin/python),KERAS_BACKEND=jax /opt/kerasvenv/bin/python,python3) tools/bench.py --kiln .build/release/kiln --out $(OUT)/bench

clean:
	rm -rf .build $(OUT)
