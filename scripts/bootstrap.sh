#!/usr/bin/env bash
# Idempotent set-up shared by `make venv` and `.ci/run`:
#   1. PostgreSQL server binaries (the tests start a throwaway server): apt-get install postgresql
#      when no /usr/lib/postgresql/*/bin/postgres exists (as root, or through sudo);
#   2. a virtualenv (.venv, or $VENV) with uv, and this project installed editable with the
#      test and dev extras. Re-installs only when pyproject.toml changed since the last run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.lmh-bootstrap"

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root to run: $* (re-run as root, or install it yourself)"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* with your package manager"
    local attempt
    for attempt in 1 2 3; do
        if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; then
            return 0
        fi
        log "apt-get install $* failed (attempt $attempt/3); retrying"
        sleep $((attempt * 5))
    done
    die "apt-get install $* failed 3 times"
}

have_pg_server() {
    if [ -n "${LITEMAAS_HOOKS_PG_BINDIR:-}" ] && [ -x "$LITEMAAS_HOOKS_PG_BINDIR/postgres" ]; then
        return 0
    fi
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# -- 1. PostgreSQL server ---------------------------------------------------------------------------
if have_pg_server; then
    log "PostgreSQL server found: $(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n1)"
else
    log "no PostgreSQL server (/usr/lib/postgresql/*/bin/postgres): installing package postgresql"
    apt_install postgresql
    have_pg_server || die "postgresql installed but /usr/lib/postgresql/*/bin/postgres still missing"
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    die "running as root but OS user 'postgres' is missing (PostgreSQL refuses to run as root): apt-get install -y postgresql"
fi

# -- 1a. PgBouncer (tests/integration/test_pgbouncer.py runs our connections through it) -----------
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
    log "PgBouncer found: $( (command -v pgbouncer || echo /usr/sbin/pgbouncer) | head -n1)"
else
    log "no pgbouncer: installing package pgbouncer"
    apt_install pgbouncer
fi

bash scripts/install-node.sh  # Node.js >= 20: the real LiteMaaS backend code runs in tests
# -- 1b. headless Chromium for the Admin UI browser tests (Debian package; never a playwright download)
bash scripts/install-browser.sh
bash scripts/install-deploy-tools.sh  # checkers of deploy/ and images/ in their own venv (tests/deploy)

# -- 2. virtualenv ---------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (Python >= 3.11 is required)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$("$PYTHON" --version 2>&1) is too old: Python >= 3.11 is required (set PYTHON=...)"

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        log "python3 -m venv failed; installing python3-venv"
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi

# LITELLM_SPEC pins LiteLLM for a second test venv (e.g. 'litellm[proxy]==1.81.0', what LiteMaaS runs).
LITELLM_SPEC=${LITELLM_SPEC:-}
want="$( (cat pyproject.toml sandbox/pyproject.toml; printf '%s' "$LITELLM_SPEC") | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/uv" ]; then
    log "$VENV is up to date"
    exit 0
fi
if [ ! -x "$VENV/bin/uv" ]; then
    log "installing uv into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
fi
log "installing the project (editable, extras test+dev) into $VENV"
if [ -n "$LITELLM_SPEC" ]; then
    "$VENV/bin/uv" pip install --python "$VENV/bin/python" -e '.[test,dev]' -e './sandbox[browser]' "$LITELLM_SPEC"
else
    "$VENV/bin/uv" pip install --python "$VENV/bin/python" -e '.[test,dev]' -e './sandbox[browser]'
fi
printf '%s\n' "$want" >"$STAMP"
log "done"
