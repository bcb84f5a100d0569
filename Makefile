# thermalzsq: `make demo` runs the demo pipeline, `make test` runs every test.
# Both install what they need first (Debian packages, ONNX Runtime, the Rust build)
# and do nothing for a step that is already done.

SHELL := /bin/bash
.DEFAULT_GOAL := demo

ORT_VERSION := 1.31.1
ORTLIB := .ortlib/onnxruntime/capi/libonnxruntime.so.$(ORT_VERSION)
APT_PACKAGES := libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	libgstrtspserver-1.0-dev pkg-config python3-pip \
	mosquitto mosquitto-clients libssl-dev openssl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export ORT_DYLIB_PATH := $(CURDIR)/$(ORTLIB)
export GST_PLUGIN_PATH := $(CURDIR)/target/release
export PIP_BREAK_SYSTEM_PACKAGES := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test deps ortlib build check bench report clean

## Debian packages, installed only if one is missing.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }

## ONNX Runtime's shared library from the PyPI wheel (CPU build), into .ortlib/.
ortlib: $(ORTLIB)
$(ORTLIB):
	python3 -m pip install -q --no-deps --target .ortlib onnxruntime==$(ORT_VERSION)
	@test -f $@ || { echo "the onnxruntime wheel did not carry $@"; exit 1; }

build: deps ortlib
	cargo build --release --workspace

## The main job: the demo pipeline on the bundled model and a generated recording.
demo: build
	pipelines/demo.sh

## Every test: unit, integration, plugin (Harness and gst-launch), plus fmt and clippy.
test: deps ortlib
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## The zero-shot vs real-data results table: docs/results.md and docs/results/*.png
## (16 minutes on 2 cores from a fresh clone, measured; measurements are cached under
## out/report/, so a rerun only recomputes what changed). REPORT_ARGS=--full for every
## measurement on every model, --fresh to recompute.
report: deps ortlib
	cargo run --release -p zsq -- report $(REPORT_ARGS)

bench: deps ortlib
	cargo bench --workspace

clean:
	cargo clean
