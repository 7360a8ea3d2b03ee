# Developer entry points. `make test` is the test command (CI runs it through .ci/run).
SHELL := /bin/bash
VENV ?= .venv
# only the lint targets that exist (bench/ may be absent in a fresh clone)
LINT_PATHS := $(wildcard src sandbox tests bench)

.PHONY: venv test test-litellm-1.81 demo

# Idempotent: PostgreSQL server (apt-get, if missing) + $(VENV) with uv and the project (test+dev).
venv:
	@VENV=$(VENV) bash scripts/bootstrap.sh

test: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports  # the layers of pyproject.toml [tool.importlinter]
	@rc=0; $(VENV)/bin/pytest -q || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; fi; \
	exit $$rc

# The suite again against LiteLLM 1.81.0 (what LiteMaaS runs), with its own schema (litellm-proxy-extras).
test-litellm-1.81:
	@VENV=.venv-litellm-1.81 LITELLM_SPEC='litellm[proxy]==1.81.0' bash scripts/bootstrap.sh
	.venv-litellm-1.81/bin/pytest -q --ignore=tests/deploy  # deploy/ and images/ checks do not depend on it (run once)

# The live demo (implemented by `litemaas-hooks demo`).
demo: venv
	$(VENV)/bin/litemaas-hooks demo
