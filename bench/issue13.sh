#!/usr/bin/env bash
# Issue 13's figures for one holden binary, on this machine, as one table (docs/benchmarks.md,
# "Issue 13: the before/after set"). Run it once per binary on a quiet machine: before = main
# at the issue's start, after = main at its end; then print both side by side with --table.
#
#   bench/issue13.sh [options] HOLDEN           run everything for the binary HOLDEN (root)
#   bench/issue13.sh --table RUN [RUN...]       the table again, one column per RUN
#
# A RUN is the --out folder of an earlier run, or a results JSON of the peer harness
# (peers-DATE.json: a column with the peer figures only).
#
# Options:
#   --out DIR      where the results go (default: a new $TMPDIR/holden-issue13-XXXX)
#   --reps N       repetitions of everything (default 3; medians reported)
#   --quick        a smoke test: 1 rep, short windows, scale at 200 and 1000 programs, the
#                  peer harness's --quick (the figures mean little)
#   --vm BIN_DIR   also boot the VM scenario tests/vm/scenarios/respawn N times with the static
#                  holden in BIN_DIR (as tests/vm/run.sh -k takes it: holden, examples/memhog,
#                  examples/sdnotify; `tests/vm/run.sh -b` builds them in
#                  target/vm/x86_64-unknown-linux-gnu/release)
#   --no-peers     leave out the peer harness (../shared/bench/run.py)
#
# What runs, in this order (each step's output is kept in DIR; a step that fails is reported
# and the others still run):
#   1. bench/holden_bench.py --cgroups --only respawn,startup,idle,memory   (cgroups on)
#   2. bench/holden_bench.py --only scale --scale-sizes 1000,5000           (cgroups off)
#   3. ../shared/bench/run.py --only holden,runit,s6,supervisord --scenario respawn,startup
#   4. with --vm: tests/vm/run.sh -k respawn, N times
#   5. bench/issue13_table.py DIR: the table, also written to DIR/table.md
#
# To measure an older commit, build it in a worktree of its own (the script and the VM scenario
# come from this checkout, the binary from there):
#   git worktree add ../before 06d2c40 && (cd ../before && cargo build --release &&
#       tests/vm/run.sh -b)       # run.sh -b of a checkout that has it, else build as run.sh does
#   bench/issue13.sh --out /tmp/i13-before --vm ../before/target/vm/x86_64-unknown-linux-gnu/release \
#       ../before/target/release/holden
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
peers_harness=$repo/../shared/bench/run.py

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

if [ "${1:-}" = --table ]; then
    shift
    [ $# -gt 0 ] || usage
    exec python3 "$here/issue13_table.py" "$@"
fi

out= reps=3 quick=0 vm_dir= peers=1
while [ $# -gt 0 ]; do
    case $1 in
    --out) out=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --quick) quick=1; reps=1; shift ;;
    --vm) vm_dir=$2; shift 2 ;;
    --no-peers) peers=0; shift ;;
    -h | --help) usage ;;
    -*) echo "issue13: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# = 1 ] || usage
holden=$(realpath "$1")
[ -x "$holden" ] || { echo "issue13: no holden binary at $1" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "issue13: needs root (cgroups, runit, s6)" >&2; exit 2; }
if [ -n "$vm_dir" ]; then
    vm_dir=$(realpath "$vm_dir")
    [ -x "$vm_dir/holden" ] || { echo "issue13: no static holden in $vm_dir" >&2; exit 2; }
fi
if [ -z "$out" ]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/holden-issue13-XXXX")
else
    mkdir -p "$out"
fi
out=$(realpath "$out")

say() { echo "issue13: $*" >&2; }
failed=()
# step NAME CMD...: run CMD with its stdout and stderr in $out/NAME.log, say how it went.
step() {
    local name=$1 t0 rc
    shift
    say "$name: $* (output in $out/$name.log)"
    t0=$(date +%s)
    "$@" >"$out/$name.log" 2>&1
    rc=$?
    say "$name: exit $rc after $(($(date +%s) - t0)) s"
    [ $rc = 0 ] || failed+=("$name (exit $rc)")
}

version=$("$holden" --version 2>/dev/null || echo unknown)
load() { cut -d' ' -f1-3 /proc/loadavg; }
python3 - "$out/run.json" "$holden" "$version" "$reps" "$quick" "$(load)" <<'EOF'
import json, os, platform, sys, time
path, holden, version, reps, quick, load = sys.argv[1:]
json.dump({"holden": holden, "version": version, "reps": int(reps), "quick": quick == "1",
           "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "load_at_start": load,
           "cpus": os.cpu_count(), "kernel": platform.release()}, open(path, "w"), indent=1)
EOF
say "$version ($holden), $reps rep(s), results in $out, load $(load)"

bench=(python3 "$here/holden_bench.py" --holden "$holden" --reps "$reps")
if [ $quick = 1 ]; then
    cg_extra=(--respawns 3 --idle-secs 3 --settle 1)
    scale_sizes=200,1000
else
    cg_extra=()
    scale_sizes=1000,5000
fi
step bench-cgroups "${bench[@]}" --cgroups --only respawn,startup,idle,memory "${cg_extra[@]}" \
    --json "$out/bench-cgroups.json"
step bench-scale "${bench[@]}" --only scale --scale-sizes "$scale_sizes" --json "$out/bench-scale.json"

if [ $peers = 1 ]; then
    if [ -f "$peers_harness" ]; then
        peer_args=(--only holden,runit,s6,supervisord --scenario respawn,startup --reps "$reps"
            --results "$out/peers")
        [ $quick = 1 ] && peer_args+=(--quick)
        mkdir -p "$out/peers"
        step peers env HOLDEN_BIN="$holden" python3 "$peers_harness" "${peer_args[@]}"
    else
        say "peers: no harness at $peers_harness; left out"
        failed+=("peers (no harness)")
    fi
fi

if [ -n "$vm_dir" ]; then
    for rep in $(seq 1 "$reps"); do
        step "vm-$rep" env HOLDEN_VM_BIN_DIR="$vm_dir" "$repo/tests/vm/run.sh" -k respawn
    done
fi

say "done, load $(load)"
python3 "$here/issue13_table.py" "$out" | tee "$out/table.md"
if [ ${#failed[@]} -gt 0 ]; then
    say "failed: ${failed[*]}"
    exit 1
fi
exit 0
