# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make bench   set up, run the embedded default benchmark, write leaderboards/
#   make test    set up, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.promptshift-installed
TEST_STAMP := $(VENV)/.promptshift-test-installed
# pip's --no-compile and Python writing bytecode for what it imports: pip byte-compiles every file of every package
# it installs (torch's thousands included: 40 s of the set-up here), while a run imports a fraction of them and
# writes those once. Some environments set PYTHONDONTWRITEBYTECODE=1, which would make every process compile its
# imports again: the commands below clear it.
PIP_INSTALL := $(VENV)/bin/pip install -q --no-compile -c constraints.txt
RUN_ENV := PYTHONDONTWRITEBYTECODE=

.PHONY: bench test setup setup-test browser clean-results constraints

setup: $(STAMP)
setup-test: $(TEST_STAMP)

# Every dependency, torch and torchvision included, at the exact version tested (constraints.txt); editable, so
# `promptshift` (the console command) runs this checkout's code. The benchmark needs no test or cluster extras.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[test,cluster]'
	touch $(TEST_STAMP)

# Rewrite constraints.txt from the current environment, keeping its header comment.
constraints: $(TEST_STAMP)
	{ sed -n '/^#/!q;p' constraints.txt; $(VENV)/bin/pip freeze --all --exclude-editable --exclude promptshift --exclude pip; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# --force: the default suite's own results replace its tables whole (after a suite change, rows of the old version
# are meant to go; `promptshift leaderboard` without --force refuses to drop rows).
bench: $(STAMP)
	$(RUN_ENV) $(VENV)/bin/promptshift run --suite default --force

# The HTML leaderboard test drives a real headless Chromium (Debian's package); without root or apt it skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || echo "chromium not installed: the browser test will be skipped"; }

# The tests on one xdist worker per usable core (at least 2: many tests wait on subprocesses and sleeps; at most 8),
# each worker one torch/OpenMP thread. loadgroup: the tests that share an expensive fixture run on one worker (the
# groups: tests/conftest.py, `xdist_scope`); every other test goes wherever a worker is free.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(8, max(2, len(os.sched_getaffinity(0)))))" 2>/dev/null || echo 2)
TEST_ENV := $(RUN_ENV) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

test: $(TEST_STAMP) browser
	$(TEST_ENV) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

clean-results:
	rm -rf results
