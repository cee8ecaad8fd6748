#!/usr/bin/env bash
# Benchmark of `holden agent`: spawns per second (START_PROCESS round trip, pidfd received)
# and the agent's RSS. Usage: bench/agent.sh [SPAWNS] [CLIENTS...]
# Target: over 2000 spawns/s on a 2-core machine. Figures vary with the machine's load: run it
# on a quiet machine, and read /proc/loadavg (printed first) with the figures. Each run also
# prints a baseline: the same spawns done in-process, without agent or socket.
set -euo pipefail
cd "$(dirname "$0")/.."
spawns=${1:-5000}
shift || true
clients=("${@:-1 2 4}")
if ! log=$(cargo build --release --bin holden --example agent_bench 2>&1); then
    echo "$log" >&2
    exit 1
fi
echo "load: $(cat /proc/loadavg)"
for c in ${clients[@]}; do
    target/release/examples/agent_bench target/release/holden "$spawns" "$c"
done
