#!/usr/bin/env bash
# README's set-up block, proven as a newcomer meets it: on a fresh clone of HEAD, run the block's
# FIRST command verbatim (it builds holden and supervises the example supervisor.toml), wait with
# deadlines until the example's web server answers and memhog has been OOM-killed and reported,
# then Ctrl-C holden (SIGINT) and check that it exits 0 leaving no process and no cgroup behind.
# The block's SECOND command must be exactly what .ci/run runs. Run by .ci/run (as root: the
# example's memhog has a memory limit, which needs cgroups).
#
# Environment: HOLDEN_README_BUILD_TIMEOUT (seconds until the web server answers, build
# included; default 1800), HOLDEN_README_KEEP=1 (keep the clone, for a post-mortem).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_timeout=${HOLDEN_README_BUILD_TIMEOUT:-1800}
say() { echo "readme-test: $*"; }
fail() { echo "readme-test: FAIL: $*" >&2; exit 1; }

# --- README's set-up block: the first fenced block of the "Set up" section -------------------
block=$(awk '
    /^## / { inside = ($0 ~ /^## Set up/); next }
    inside && !open && /^```/ { open = 1; next }
    inside && open && /^```/ { exit }
    inside && open { print }
' "$repo/README.md")
mapfile -t commands < <(grep -v '^[[:space:]]*\(#\|$\)' <<<"$block")
[ ${#commands[@]} -ge 2 ] || fail "README.md's set-up block has fewer than two commands:
$block"
first=${commands[0]}
second=${commands[1]%%#*}
second=$(sed 's/[[:space:]]*$//' <<<"$second")

# --- the second command is what .ci/run runs --------------------------------------------------
grep -qxF -- "$second" "$repo/.ci/run" \
    || fail "README's second command '$second' is not a line of .ci/run"
say "README's second command '$second' is what .ci/run runs"

[ "$(id -u)" = 0 ] || fail "needs root (the example's memhog has a memory limit: cgroups)"

# --- a fresh clone of HEAD --------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/holden-readme-XXXXXX")
clone=$tmp/holden
holden_pid=
cleanup() {
    local status=$?
    if [ -n "$holden_pid" ] && kill -0 "$holden_pid" 2>/dev/null; then
        kill -INT "$holden_pid" 2>/dev/null || true
        sleep 1
        kill -INT "$holden_pid" 2>/dev/null || true
    fi
    [ -n "${runner:-}" ] && kill -KILL -- "-$runner" 2>/dev/null || true
    if [ "${HOLDEN_README_KEEP:-0}" = 1 ]; then
        say "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit $status
}
trap cleanup EXIT
git clone -q "$repo" "$clone"
say "cloned HEAD ($(git -C "$clone" rev-parse --short HEAD)) into $clone"

# What the example promises, read from its supervisor.toml.
config=$clone/supervisor.toml
port=$(awk '/^\[programs\.web\]/ { w = 1; next } /^\[/ { w = 0 } w && /^command/' "$config" \
    | grep -oE 'http\.server +[0-9]+' | grep -oE '[0-9]+$' || true)
[ -n "$port" ] || fail "no web server port (http.server PORT) in [programs.web] of supervisor.toml"
cgroup_path=$(grep -oE '^cgroup_path *= *"[^"]+"' "$config" | cut -d'"' -f2)
[ -n "$cgroup_path" ] || fail "no cgroup_path in supervisor.toml"
grep -q '^\[programs\.memhog\]' "$config" || fail "no [programs.memhog] in supervisor.toml"
# The web server serves the clone's folder: a file only this clone has tells its answer apart.
token=$(basename "$tmp")
echo "$token" >"$clone/readme-test-token"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "something listens on 127.0.0.1:$port already: the example's web server could not"
fi

# --- the first command, verbatim, in the background -------------------------------------------
say "running README's first command: $first"
(cd "$clone" && exec setsid -w bash -c "$first") >"$tmp/out.log" 2>&1 </dev/null &
runner=$!
log_tail() { echo "--- its output (last 30 lines):"; tail -n 30 "$tmp/out.log"; }
holden_in_clone() { # the pid of holden run started in the clone
    local p
    for p in $(pgrep -f 'holden run' || true); do
        [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$clone" ] && [ "$(basename "$(readlink "/proc/$p/exe" 2>/dev/null)")" = holden ] \
            && { echo "$p"; return 0; }
    done
    return 1
}
wait_until() { # DEADLINE_S WHAT COMMAND...
    local deadline=$(( $(date +%s) + $1 )) what=$2
    shift 2
    until "$@"; do
        kill -0 "$runner" 2>/dev/null || { log_tail; fail "the command ended while waiting for $what"; }
        [ "$(date +%s)" -lt "$deadline" ] || { log_tail; fail "timed out waiting for $what"; }
        sleep 0.2
    done
}
http_get() { # PATH: the whole HTTP/1.0 reply from 127.0.0.1:$port (bash's /dev/tcp: no curl)
    (exec 3<>"/dev/tcp/127.0.0.1/$port" \
        && printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3 \
        && timeout 2 cat <&3) 2>/dev/null
}
web_answers() {
    local reply
    reply=$(http_get /readme-test-token) || return 1
    [[ $reply == "HTTP/1."?" 200 "* && $reply == *$'\r\n\r\n'"$token"* ]]
}
t0=$(date +%s)
wait_until "$build_timeout" "the web server on port $port (build included)" web_answers
say "the web server answers on 127.0.0.1:$port ($(( $(date +%s) - t0 )) s after the command started)"
holden_pid=$(holden_in_clone) || fail "no holden running in $clone"
web_ready() { grep -q "web: STARTING -> RUNNING (ready: probe http 200)" "$tmp/out.log"; }
wait_until 30 "web to be RUNNING by its http readiness probe" web_ready
say "web became RUNNING when its readiness probe got HTTP 200"
holden=$clone/target/release/holden
memhog_oom_reported() {
    (cd "$clone" && "$holden" status memhog --json 2>/dev/null) | grep -qE '"oom_killed": *true'
}
wait_until 60 "memhog to be OOM-killed and reported (status --json: oom_killed)" memhog_oom_reported
grep -q "killed by the kernel's OOM killer" "$tmp/out.log" \
    || { log_tail; fail "holden's log does not report memhog's OOM kill"; }
say "memhog was OOM-killed, and holden reported it"

# --- Ctrl-C: SIGINT to holden; exit 0; nothing left -------------------------------------------
kill -INT "$holden_pid"
deadline=$(( $(date +%s) + 30 ))
while kill -0 "$runner" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { log_tail; fail "holden did not exit within 30 s of SIGINT"; }
    sleep 0.1
done
set +e
wait "$runner"
status=$?
set -e
runner=
[ "$status" = 0 ] || { log_tail; fail "the command exited $status after SIGINT, not 0"; }
say "SIGINT: holden stopped every program and exited 0"
left=()
for p in /proc/[0-9]*; do
    case "$(readlink "$p/cwd" 2>/dev/null)" in "$clone"|"$clone"/*) left+=("${p#/proc/}") ;; esac
done
mapfile -t -O ${#left[@]} left < <(pgrep -f "$clone" || true)
[ ${#left[@]} = 0 ] || fail "processes of the clone are left: $(ps -o pid,args -p "$(IFS=,; echo "${left[*]}")" || true)"
for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    if [ -d "${hierarchy%/}$cgroup_path" ]; then
        fail "cgroup ${hierarchy%/}$cgroup_path is left"
    fi
done
say "no process and no cgroup ($cgroup_path) left; ok"
