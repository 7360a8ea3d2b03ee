#!/bin/sh
# Install litemaas-hooks into the Python environment that runs LiteLLM without changing any package already
# installed there -- above all LiteLLM itself (LiteMaaS runs its own fork, quay.io/rh-aiservices-bu/
# litellm-non-root). Every installed distribution is pinned to its installed version as a pip constraint, so
# pip only adds what is missing (psycopg, orjson, pynacl, ...) and fails loudly instead of replacing
# something. Used by Containerfile.plugin; CI runs this same script against a venv holding litellm 1.81.0.
#   PYTHON=/usr/bin/python3.13 sh install-into-litellm.sh /path/to/litemaas-hooks   (a source tree or a wheel)
set -eu
PYTHON=${PYTHON:-python3}
if [ $# -ne 1 ]; then
    echo "usage: PYTHON=/path/to/python $0 <litemaas-hooks source dir or wheel>" >&2
    exit 2
fi
src=$1
version_of() {
    "$PYTHON" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1"
}
if ! before=$(version_of litellm 2>/dev/null); then
    echo "install-into-litellm: $PYTHON has no litellm installed: set PYTHON to the interpreter that runs LiteLLM" \
        "(LiteMaaS's image: /usr/bin/python3.13)" >&2
    exit 1
fi
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    "$PYTHON" -m ensurepip --default-pip >/dev/null 2>&1 || {
        echo "install-into-litellm: $PYTHON has no pip (and no ensurepip): install pip for it first" >&2
        exit 1
    }
fi
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$PYTHON" - "$constraints" <<'PY'
import sys
from importlib.metadata import distributions

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pip's own copy
    from pip._vendor.packaging.version import InvalidVersion, Version

pins = {}
for dist in distributions():
    name = dist.metadata["Name"]
    try:
        Version(dist.version)
    except (InvalidVersion, TypeError):
        continue  # not a PEP 440 version: pip could not read the pin anyway
    if name:
        pins[name.lower().replace("_", "-")] = dist.version
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.writelines(f"{name}=={version}\n" for name, version in sorted(pins.items()))
PY
"$PYTHON" -m pip install --no-cache-dir --disable-pip-version-check --constraint "$constraints" "$src"
after=$(version_of litellm)
if [ "$before" != "$after" ]; then
    echo "install-into-litellm: litellm changed from $before to $after: refusing this image" >&2
    exit 1
fi
echo "install-into-litellm: litemaas-hooks $(version_of litemaas-hooks) installed; litellm $after unchanged"
