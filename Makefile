# Developer entry points. `make test` is the test command (CI runs it through .ci/run).
SHELL := /bin/bash
VENV ?= .venv
# only the lint targets that exist (bench/ may be absent in a fresh clone)
LINT_PATHS := $(wildcard src tests bench)

.PHONY: venv test demo

# Idempotent: PostgreSQL server (apt-get, if missing) + $(VENV) with uv and the project (test+dev).
venv:
	@VENV=$(VENV) bash scripts/bootstrap.sh

test: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy
	@rc=0; $(VENV)/bin/pytest -q || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; fi; \
	exit $$rc

# The live demo (implemented by `litemaas-hooks demo`).
demo: venv
	$(VENV)/bin/litemaas-hooks demo
