# Two entry points for a newcomer: `make demo` (the main job) and `make test` (every test).
# The demo installs the runtime only (`pip install -e .`); `make test` adds the dev, cluster and
# vmaf extras (pytest, Playwright, ONNX, Ray, vmaf-torch) on top of the same venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TEST_EXTRAS := dev,cluster,vmaf

.PHONY: demo test setup system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[$(TEST_EXTRAS)]'
	touch $(TEST_STAMP)

setup: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

demo: $(STAMP)
	$(BIN)/promptus demo

test: $(TEST_STAMP) system-deps
	bash scripts/run-tests.sh

clean:
	rm -rf $(VENV) build *.egg-info
