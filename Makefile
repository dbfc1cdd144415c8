# Packshot: `make demo` runs the pipeline on embedded defaults, `make test` runs the tests.
# Both call `setup`, which needs only python3, git and make on the machine.

PYTHON ?= python3
VENV   := .venv
UV     := $(VENV)/bin/uv
PY     := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.setup-done
# Our own packages (the wheel's, pyproject.toml).
PACKAGES := core imaging tasks flows deployments webhook dashboard

.PHONY: setup demo test lint typecheck bench browser clean

setup: $(SETUP_STAMP)
	# Our own modules' bytecode, as an installed wheel has it: without it every command and
	# every fresh process compiles them again (about 0.13 s of a `packshot process`). Quick
	# when nothing changed; a file edited since is compiled again here, or at import.
	@$(PY) -m compileall -q $(PACKAGES)

$(SETUP_STAMP): pyproject.toml uv.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"
	# Compiled bytecode: every flow run is a fresh process, and without .pyc files each one
	# would compile Prefect's thousands of modules again (environments often forbid writing
	# them at run time).
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --all-extras --compile-bytecode --python $(PY)
	# A migrated Prefect database, copied into each new home: a first `packshot process`
	# skips the hundred-odd migrations (deployments/local_server.py).
	$(PY) -m deployments.local_server --template
	@touch $@

demo: setup
	$(VENV)/bin/packshot demo $(DEMO_ARGS)

test: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2 --dist loadfile --no-loadscope-reorder

# The dashboard's end-to-end test drives Debian's chromium through Playwright (never
# `playwright install`). Installed when missing: as root (CI) a failure stops the build;
# elsewhere without sudo the test is skipped and says why.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  elif command -v sudo >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "chromium missing and not root: the dashboard browser test will be skipped"; \
	  fi; }

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/segmentation.py --baseline --hard
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/derivatives.py
	$(PY) benchmarks/gradient.py
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/dashboard.py

clean:
	rm -rf $(VENV) .packshot .pytest_cache .mypy_cache .ruff_cache
