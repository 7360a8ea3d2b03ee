#!/usr/bin/env bash
# Idempotent: Node.js >= 20 with npm, for running the real LiteMaaS backend code in tests
# (litemaas_hooks_sandbox.litemaas_backend). Does nothing when `node` >= 20 and `npm` are on PATH.
# Otherwise apt-get: the distribution's nodejs when its candidate is >= 20, else NodeSource's
# node_20.x repository (Debian 12's own nodejs is 18).
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
candidate=$(apt-cache policy nodejs | sed -n 's/^ *Candidate: *\([0-9]*\).*/\1/p')
if [ "${candidate:-0}" -lt 20 ]; then
    log "the distribution's nodejs is ${candidate:-absent}: adding NodeSource's node_20.x repository"
    apt install -y -qq --no-install-recommends ca-certificates curl gnupg
    as_root mkdir -p /etc/apt/keyrings
    curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key \
        | as_root gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
    echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_20.x nodistro main" \
        | as_root tee /etc/apt/sources.list.d/nodesource.list >/dev/null
    apt update -qq
    apt install -y -qq --no-install-recommends nodejs  # NodeSource's nodejs ships npm
else
    apt install -y -qq --no-install-recommends nodejs npm
fi
[ "$(node_major)" -ge 20 ] || die "installed Node.js $(node --version 2>&1) is older than 20"
command -v npm >/dev/null 2>&1 || die "npm missing after installing nodejs"
log "Node.js $(node --version) installed"
