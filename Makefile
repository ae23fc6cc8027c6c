# Kiln: `make demo` and `make test` install what is missing, build, and run.
SHELL := /bin/bash
SWIFT ?= swift
KILN := .build/debug/kiln
OUT ?= out

.PHONY: all deps build test unit conformance samples demo bench dependent sanitize clean install uninstall fuzz

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

# The library under AddressSanitizer + UBSan, ThreadSanitizer and valgrind, and checkpoints killed
# mid-save (tools/sanitize.sh; README "Reliability"). `make test` runs its short form.
sanitize: build
	bash tools/sanitize.sh $(KILN) $(OUT)/sanitize

# One sample of samples/NAME in its full form (samples/README.md lists them), e.g. `make sample-ner`;
# `make test` runs each one's short form (run.sh --short), which asserts its result.
sample-%: build
	@[ -f samples/$*/run.sh ] || { echo "make: no sample '$*'; see samples/README.md" >&2; exit 2; }
	bash samples/$*/run.sh $(KILN) $(OUT)/$*

# The default sample end to end: compile the demo CNN, link a C program, print its predictions.
demo: deps
	$(SWIFT) build --product kiln
	$(SWIFT) build --product KilnRuntimeShared
	$(KILN) summary samples/models/mnist_cnn.keras
	bash samples/run.sh $(KILN) $(OUT)/demo

# A package that depends on Kiln by path (samples/dependent) builds and compiles a model with it.
dependent: deps
	cd samples/dependent && $(SWIFT) build -c release && .build/release/kiln-dependent $(abspath $(OUT))/dependent

# The five seed workloads W1-W5 beside Keras, JAX, ONNX Runtime and PyTorch (the reference scripts in
# ../shared/bench), and the small CNN and MLP beside Keras; see bench/README.md. Kiln only (and
# exit 0) when ../shared/bench or a Python with keras+jax is missing. BUDGET: seconds per measurement.
BENCH_PY ?= $(if $(wildcard /opt/kerasvenv/bin/python),/opt/kerasvenv/bin/python,python3)
BUDGET ?= 4
BENCH_ARGS ?=
bench: deps
	$(SWIFT) build -c release --product kiln
	KERAS_BACKEND=jax $(BENCH_PY) tools/bench.py --kiln .build/release/kiln --out $(OUT)/bench --budget $(BUDGET) $(BENCH_ARGS)

# The kiln command (a release build) in $(DESTDIR)$(PREFIX)/bin, and the C runtime it compiles into
# every library in $(DESTDIR)$(PREFIX)/share/kiln/Runtime (where kiln looks for it, beside bin/).
# `make install PREFIX=$$HOME/.local` needs no root; DESTDIR stages a package.
PREFIX ?= /usr/local
DESTDIR ?=
install: deps
	$(SWIFT) build -c release --product kiln
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/share/kiln/Runtime"
	install -m 755 .build/release/kiln "$(DESTDIR)$(PREFIX)/bin/kiln"
	install -m 644 Runtime/*.c Runtime/*.h "$(DESTDIR)$(PREFIX)/share/kiln/Runtime/"
	@echo "installed $(DESTDIR)$(PREFIX)/bin/kiln ($$("$(DESTDIR)$(PREFIX)/bin/kiln" --version))"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/bin/kiln"
	rm -rf "$(DESTDIR)$(PREFIX)/share/kiln"

# Coverage-guided fuzzing of Kiln's readers with libFuzzer (README "Fuzzing and bounded inputs"):
# each target (npy, history, keras, legacy, weights; FUZZ_TARGETS picks some) for FUZZ_SECONDS
# seconds, or for FUZZ_RUNS executions when that is given. `make test` runs each for a few seconds.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_TARGETS ?=
fuzz: deps
	$(SWIFT) package resolve
	bash tools/fuzz.sh $(if $(FUZZ_RUNS),runs $(FUZZ_RUNS),run $(FUZZ_SECONDS)) $(FUZZ_TARGETS)

clean:
	rm -rf .build samples/dependent/.build $(OUT)
