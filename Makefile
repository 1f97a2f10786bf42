# The two commands of the README: `make test` and `make demo`. Both create .venv from the pinned files first.
# `make docs` builds the documentation site into site/ (MkDocs, pinned in requirements-docs.lock).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out
# glibc's huge-page malloc for the buffers XLA's CPU runtime maps on every call (fewer page faults per step;
# docs: Performance). Unknown to glibc < 2.35, which ignores it; set GLIBC_TUNABLES= to turn it off.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: venv venv-tpu test test-slow lint format demo bench docs lock clean

$(STAMP): requirements.lock setup.cfg pyproject.toml
	@echo ">> creating $(VENV) from requirements.lock (about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e '.[torch,dev]'
	@touch $(STAMP)

venv: $(STAMP)

# libtpu (the `tpu` extra), so that `python -m lsta_jax.preflight` and its test compile for TPU slices on this
# host; CI installs it. Not in the default venv: on a host without a TPU, libtpu logs its failed
# initialisation to stderr at every JAX start.
TPU_STAMP := $(VENV)/.tpu-installed
$(TPU_STAMP): $(STAMP)
	$(PY) -m pip install -q libtpu==0.0.42.1
	@touch $(TPU_STAMP)

venv-tpu: $(TPU_STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

demo: venv
	$(PY) -m lsta_jax.demo --output $(DEMO_DIR)

# lsta_jax against its PyTorch reference, quick mode (4 frames; a few minutes on a CPU): table, JSON, PNG
BENCH_DIR ?= bench_out
bench: venv
	$(PY) -m lsta_jax.benchmarks.versus_torch --quick --output $(BENCH_DIR)

# The documentation site: docs/ + the docstrings (mkdocstrings) -> site/; --strict turns every warning
# (a broken link, an unknown cross-reference, a docstring griffe cannot parse) into a failure.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) requirements-docs.lock
	$(PY) -m pip install -q -r requirements-docs.lock
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lock: venv
	$(PY) -m pip freeze --exclude-editable | grep -v -iE '^(torch|pip)==' > requirements.lock.tmp
	@echo "torch==2.13.0" >> requirements.lock.tmp && mv requirements.lock.tmp requirements.lock

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(BENCH_DIR) site .pytest_cache .ruff_cache
