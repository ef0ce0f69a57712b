# All set-up happens here: `make demo` and `make test` work on a fresh machine (Debian/Ubuntu; root for apt).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Real data and tools from Debian: Fashion-MNIST, the King James Bible, a headless browser for report tests.
APT_PKGS := dataset-fashion-mnist bible-kjv bible-kjv-text chromium
DEMO_DB  := runs/demo.sqlite

.PHONY: demo test lint bench system clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,ray,jax]'
	touch $(STAMP)

# Installs the Debian packages when missing; without root it says what to install and goes on (tests skip).
system:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: install $$missing (apt-get) for the Fashion-MNIST, Bible and browser parts"; fi; \
	fi

demo: $(STAMP) system
	rm -rf $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm runs/demo-report
	$(BIN)/optsearch search --task mnist1d_large --strategy ppo --budget 256 --workers 2 --executor process \
	  --db $(DEMO_DB)
	$(BIN)/optsearch report $(DEMO_DB) --out runs/demo-report

test: $(STAMP) system
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

bench: $(STAMP) system
	$(BIN)/python benchmarks/optimizer_step.py
	$(BIN)/python benchmarks/evaluate_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
