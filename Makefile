# Every target creates .venv when it is missing, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BENCH ?=

.PHONY: compile demo test bench check lint typecheck format clean fuzz soak

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The bid path compiled to C by mypyc, in place beside its sources (infra/compiled.py lists
# the modules), and again whenever one changed. Without a C compiler it stays interpreted:
# the same behaviour, slower.
compile: $(STAMP)
	$(BIN)/python -m infra.compiled build || (echo "mypyc build failed: the bid path runs interpreted" && $(BIN)/python -m infra.compiled clean)

demo: compile
	$(BIN)/dsp demo

# The console's browser tests drive Debian's headless Chromium (no browser download):
# installed when missing, refreshing the package lists once if the first try fails.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends

$(CHROMIUM):
	$(APT_INSTALL) chromium || ($(SUDO) apt-get update && $(APT_INSTALL) chromium)

test: compile $(CHROMIUM)
	$(BIN)/python -m pytest -q

# The Redis Cluster tests alone (marker `cluster`, tests/cluster): a real 3-master, 3-replica
# cluster on loopback ports, a master killed under load included. `make test` runs them too
# (about 20 s), so CI needs no separate step.
.PHONY: test-cluster
test-cluster: compile
	$(BIN)/python -m pytest -q -m cluster

# The bid group loads both servers with wrk (Debian's package) when it can be installed;
# without it, with the built-in generator (its ceiling is measured and printed).
bench: compile
	command -v wrk >/dev/null || $(APT_INSTALL) wrk || ($(SUDO) apt-get update && $(APT_INSTALL) wrk) || echo "wrk not installed: built-in load generator"
	$(BIN)/python -m bench $(if $(BENCH),--only $(BENCH),)

# Locust against a freshly seeded bidder on an embedded Redis, bounded in time (20 s by
# default); prints requests/s, p50/p95/p99 and failures per scenario. LOADTEST="--workers 2"
# runs locust distributed (a master and 2 workers); `python -m loadtests.run --help` for more.
LOADTEST ?=
.PHONY: loadtest
loadtest: compile
	$(BIN)/python -m loadtests.run $(LOADTEST)

# The long fuzz run of the bid endpoint (FUZZ_REQUESTS, default 100,000); a short one is in `test`.
fuzz: compile
	$(BIN)/python -m bench.fuzz $(if $(FUZZ_REQUESTS),--requests $(FUZZ_REQUESTS),)

# 30 minutes at half the bidder's maximum throughput (SOAK_SECONDS for a shorter run); not CI.
soak: compile
	$(BIN)/python -m bench.soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint test

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find infra dmp dsp -name '*.so' -delete
