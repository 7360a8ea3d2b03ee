#!/usr/bin/env bash
# Run every benchmark in sequence and print all figures (about 6-8 minutes on 2 cores):
#
#     bench/run_all.sh            # from the repository root; uses .venv/bin/python (override: PYTHON=...)
#
# cli_startup (wall time and RSS of every command), backfill (10,000 deployments), latency (>= 500 single changes through a relay process), burst
# (2,000 changes in ~1 s, 2 relay processes), proxy_overhead (real litellm proxy with/without the plugin).
# Each script starts its own throwaway PostgreSQL and stops by itself; extra arguments are not passed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
echo "machine: $(uname -srm), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for bench in cli_startup backfill latency burst proxy_overhead; do
    echo
    echo "=== bench/${bench}.py ==="
    started=$(date +%s)
    if ! "$PYTHON" "bench/${bench}.py"; then
        echo "!!! bench/${bench}.py failed"
        status=1
    fi
    echo "(${bench}: $(( $(date +%s) - started ))s wall; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
done
exit "$status"
