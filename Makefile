# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use; re-running skips the install unless pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo test install clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# the CPU wheel first, so the project's torch requirement never pulls a CUDA build
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	rm -rf runs/demo
	$(BIN)/flowforge train configs/rf-checkerboard.yaml run.name=demo
	$(BIN)/flowforge eval runs/demo
	@echo "demo written to runs/demo: report.md, samples/eval.png, metrics.jsonl"

# pytest exits 5 when no test is collected; that is not a failure of the code under test
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests src; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

clean:
	rm -rf $(VENV) runs .pytest_cache
