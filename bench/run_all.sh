#!/usr/bin/env bash
# Run every benchmark in sequence and print all figures (about 20 minutes on 2 cores, 12 of them
# remote.py's, mostly the backend's own sync at 65 ms):
#
#     bench/run_all.sh            # from the repository root; uses .venv/bin/python (override: PYTHON=...)
#
# cli_startup (wall time and RSS of every command), backfill (10,000 deployments), latency (>= 500 single changes through a relay process), burst
# (2,000 changes in ~1 s, 2 relay processes), proxy_overhead (real litellm proxy with/without the plugin),
# remote (both databases behind a 0/10/65 ms link: round trips per change, backfill at 1,000 and 10,000
# vs the backend's own syncModels; its 100,000-model run is opt-in: bench/remote.py --big 100000).
# Each script starts its own throwaway PostgreSQL and stops by itself; extra arguments are not passed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
echo "machine: $(uname -srm), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for bench in cli_startup backfill latency burst proxy_overhead remote; do
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
