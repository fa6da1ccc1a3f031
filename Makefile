# Patchwork: `make demo` runs it with two demo councils; `make test` runs every check;
# `make release` builds the wheel to deploy (dist/). Each creates the virtualenv and
# installs what it needs on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
STATIC := deploy/frontend/govuk/govuk-frontend.min.css

.PHONY: demo test install lint typecheck pytest bench clean federation-demo release deploy-test

install: $(STAMP) $(STATIC)

$(STAMP): pyproject.toml demo/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./demo
	touch $(STAMP)

$(STATIC): package.json package-lock.json deploy/build_frontend.py
	npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python deploy/build_frontend.py

demo: install
	PATCHWORK_ENV=development $(BIN)/patchwork migrate_platform
	PATCHWORK_ENV=development $(BIN)/patchwork demo_setup
	PATCHWORK_ENV=development $(BIN)/patchwork runserver 127.0.0.1:8000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	PATCHWORK_ENV=test $(BIN)/mypy .

pytest: install
	PATCHWORK_ENV=test $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# As root: the release built, a Debian 12 root filesystem made with debootstrap, and the
# Ansible playbooks run against systemd-nspawn containers (single host, then split), with
# a browser signing in over HTTPS. See docs/operations.md, "The deployment test".
deploy-test: install
	PATCHWORK_ENV=test PATCHWORK_DEPLOY_TEST=1 $(BIN)/pytest tests/deploy -v -s $(PYTEST_ARGS)

# Two separate deployments (two databases, two servers on loopback ports) that swap council
# cards, sign a data-sharing agreement over federation and answer a lookup over HTTP.
federation-demo: install
	PATCHWORK_ENV=development $(BIN)/python -m patchwork_demo.federation

# The wheel Ansible deploys, built from this working tree with GOV.UK Frontend inside it;
# deploy/release.py refuses to leave a wheel without the assets and prints its path.
release: install
	$(BIN)/python deploy/release.py

bench: install
	PATCHWORK_ENV=test $(BIN)/python tests/bench/bench_onboarding.py

clean:
	rm -rf $(VENV) build node_modules deploy/frontend
