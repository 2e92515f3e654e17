# The two commands of the quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-web test test-quick test-latest lint bench fuzz lock clean docs-cli

# The development environment is locked: exact versions with their hashes
# (requirements/dev.txt, made by `make lock` from pyproject.toml's ranges), so that a release
# upstream cannot break a newcomer's first `make test`. The venv's own pip installs it; nothing
# is upgraded, and a second run installs nothing.
LOCK := requirements/dev.txt

$(BIN)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

# Regenerate the lock from pyproject.toml's ranges (newest versions they allow, every platform).
# uv is the resolver only; it is installed at one pinned version into the venv for this.
UV_VERSION := 0.13.9
lock: $(BIN)/.installed
	$(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra test --universal \
		--generate-hashes --python-version 3.11 --upgrade --quiet -o $(LOCK)
	$(BIN)/python -m pip uninstall -q -y uv
	@echo "$(LOCK) regenerated: review 'git diff $(LOCK)', then 'make test' installs it."

# The newest releases pyproject.toml's ranges allow, in a throwaway venv: lint, types and the
# suite. Not part of CI; run it before moving the lock (docs/DEVELOPING.md).
LATEST := build/latest-venv
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade -e '.[test]'
	$(LATEST)/bin/python -m pip list --format=freeze > build/latest-versions.txt
	touch $(LATEST)/bin/.installed
	@echo "newest versions: build/latest-versions.txt"
	$(MAKE) test BIN=$(LATEST)/bin VENV=$(LATEST)

# The seed's mpush demo, then the example website (http://127.0.0.1:8080/) until Ctrl-C.
demo: $(BIN)/.installed
	$(BIN)/redline demo
	@echo
	@echo "Next: the example website (examples/website). Open http://127.0.0.1:8080/ - Ctrl-C stops it."
	$(BIN)/redline up examples/website/redline.toml

# The example website (docs/web.md) on http://127.0.0.1:8080/ until Ctrl-C.
demo-web: $(BIN)/.installed
	$(BIN)/redline up examples/website/redline.toml

# docs/cli.md from the commands' own --help (tests/cli/test_reference.py checks it is whole).
docs-cli: $(BIN)/.installed
	$(BIN)/python -m redline.cli.reference > docs/cli.md

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests fuzz $(wildcard bench)
	$(BIN)/ruff format --check src tests fuzz $(wildcard bench)
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache

# The full suite on the embedded Valkey, then the queue and connection tests again on Debian's
# Redis 7 (REDLINE_TEST_SERVER=redis-server) when it is installed, with the job limits' scripts
# (`job_admit` is a function of the `redline_jobs` library).
REDIS7_TESTS := tests/queue tests/jobs/test_limit_scripts.py tests/cli/test_queue.py tests/test_connection.py \
	tests/test_keys.py

# The suite in three steps: most tests on TEST_WORKERS pytest-xdist workers (they mostly wait
# on servers and processes, so three share 2 cores well; handed out one at a time, the longest
# first: tests/scheduling.py), then the tests marked `slow` (chaos: kills, outages, rollouts),
# two at a time, then those also marked `alone` (wrk load, a server restart) one at a time,
# on an otherwise quiet machine.
TEST_WORKERS ?= 3

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not slow" --durations=15
	$(BIN)/pytest -n 2 -m "slow and not alone" --durations=11
	$(BIN)/pytest -m alone --durations=6
	@if command -v redis-server >/dev/null; then \
		echo "Redis 7 pass: $$(redis-server --version | cut -d' ' -f1-3)"; \
		REDLINE_TEST_SERVER=redis-server $(BIN)/pytest -q -n $(TEST_WORKERS) $(REDIS7_TESTS); \
	else \
		echo "skipped: Redis 7 pass (needs redis-server: apt-get install redis-server)"; \
	fi

# The quick loop while developing: everything but the slow chaos tests, in parallel.
test-quick: $(BIN)/.installed
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not slow"

# The atheris targets in fuzz/, FUZZ_SECONDS each (the suite runs them briefly); corpora and
# any crash-* inputs are kept in build/fuzz/.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := config envelope rquery

fuzz: $(BIN)/.installed
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/$$target && \
		$(BIN)/python -m fuzz.$$target -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=build/fuzz/ build/fuzz/$$target || exit 1; \
	done

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
