# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make bench   set up, run the embedded default benchmark, write leaderboards/
#   make test    set up, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.promptshift-installed

.PHONY: bench test setup browser clean-results constraints

setup: $(STAMP)

# Every dependency, torch and torchvision included, at the exact version tested (constraints.txt); editable, so
# `promptshift` (the console command) runs this checkout's code.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,cluster]'
	touch $(STAMP)

# Rewrite constraints.txt from the current environment, keeping its header comment.
constraints: $(STAMP)
	{ sed -n '/^#/!q;p' constraints.txt; $(VENV)/bin/pip freeze --all --exclude-editable --exclude promptshift --exclude pip; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# --force: the default suite's own results replace its tables whole (after a suite change, rows of the old version
# are meant to go; `promptshift leaderboard` without --force refuses to drop rows).
bench: $(STAMP)
	$(VENV)/bin/promptshift run --suite default --force

# The HTML leaderboard test drives a real headless Chromium (Debian's package); without root or apt it skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || echo "chromium not installed: the browser test will be skipped"; }

test: $(STAMP) browser
	$(PY) -m pytest -q

clean-results:
	rm -rf results
