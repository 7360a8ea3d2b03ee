#!/usr/bin/env bash
# Idempotent: Debian's headless Chromium for the Admin UI browser tests (tests/e2e/test_admin_ui.py).
# playwright-python drives it through executable_path: no browser is ever downloaded by playwright.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    printf 'install-browser: chromium found: %s\n' "$(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    printf 'install-browser: WARNING: not root: install chromium yourself (apt-get install chromium); the browser tests skip without it\n' >&2
    exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
for attempt in 1 2 3; do
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; then
        exit 0
    fi
    printf 'install-browser: apt-get install chromium failed (attempt %s/3); retrying\n' "$attempt" >&2
    sleep $((attempt * 5))
done
printf 'install-browser: ERROR: apt-get install chromium failed 3 times\n' >&2
exit 1
