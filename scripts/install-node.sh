#!/usr/bin/env bash
# Idempotent: Node.js >= 20 with npm, for running the real LiteMaaS backend code in tests
# (litemaas_hooks_sandbox.litemaas_backend). Does nothing when `node` >= 20 and `npm` are on PATH.
# Otherwise apt-get installs the distribution's nodejs + npm and fails clearly when that is older than 20.
set -euo pipefail

log() { printf 'install-node: %s\n' "$*" >&2; }
die() { printf 'install-node: ERROR: %s\n' "$*" >&2; exit 1; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && [ "$(node_major)" -ge 20 ]; then
    log "Node.js $(node --version) found"
    exit 0
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
        die "need root to run: $* (or install Node.js >= 20 with npm yourself)"; fi
}
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install Node.js >= 20 with npm yourself"
apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

apt update -qq
apt install -y -qq --no-install-recommends nodejs npm
[ "$(node_major)" -ge 20 ] || die "the distribution's Node.js $(node --version 2>&1) is older than 20: install Node.js >= 20 with npm (the LiteMaaS backend v0.4.0 runs on Node 20)"
command -v npm >/dev/null 2>&1 || die "npm missing after installing nodejs"
log "Node.js $(node --version) installed"
