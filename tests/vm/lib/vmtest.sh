# Shell helpers for scenario checkers (busybox sh). Source it: `. /lib/vmtest.sh`.
#
# A checker prints one line per check, "PASS: name" or "FAIL: name: what was seen", and ends
# with `done_checks`, which prints "DONE: ..."; the runner on the host reads these lines from
# the serial console (holden may prefix them with "checker | "), and counts a scenario as
# failed when any check failed, none passed, or DONE never came.

export PATH=/bin
VMTEST_PASSED=0
VMTEST_FAILED=0

pass() { VMTEST_PASSED=$((VMTEST_PASSED + 1)); echo "PASS: $1"; }

# fail NAME DETAIL...
fail() {
    VMTEST_FAILED=$((VMTEST_FAILED + 1))
    _name=$1; shift
    echo "FAIL: $_name: $*"
}

# check NAME CMD...: PASS when CMD succeeds, else FAIL with CMD's output.
check() {
    _name=$1; shift
    if _out=$("$@" 2>&1); then pass "$_name"; else fail "$_name" "\`$*\` failed: $_out"; fi
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$2', found '$3'"; fi
}

# uptime_ms: milliseconds since boot, for deadlines.
uptime_ms() {
    read -r _up _ </proc/uptime
    echo "${_up%.*}${_up#*.}0"
}

# wait_for SECONDS CMD...: poll CMD every 50 ms until it succeeds (0) or the deadline passes (1).
wait_for() {
    _deadline=$(( $(uptime_ms) + $1 * 1000 )); shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$(uptime_ms)" -ge "$_deadline" ] && return 1
        sleep 0.05
    done
}

# file_is PATH VALUE: the first line of PATH is VALUE (for wait_for).
file_is() { [ -r "$1" ] && [ "$(head -n1 "$1")" = "$2" ]; }

# done_checks: the last line of every checker.
done_checks() {
    echo "DONE: $VMTEST_PASSED passed, $VMTEST_FAILED failed"
}

# --- for checkers that run as a program under holden (PID1=holden) ---------------------------

# status_json NAME: `holden status NAME --json` on one line without blanks (empty on error).
status_json() { holden status "$1" --json 2>/dev/null | tr -d ' \n\t'; }

# json_get JSON KEY: the first value of KEY in JSON, strings unquoted ("null" for null).
json_get() {
    printf '%s' "$1" | grep -o "\"$2\":\(\"[^\"]*\"\|[^,}]*\)" | head -n1 | cut -d: -f2- | tr -d '"'
}

# state_is NAME STATE: the program's state per `holden status --json` (for wait_for).
state_is() { [ "$(json_get "$(status_json "$1")" state)" = "$2" ]; }

# procs_of CGROUP: the pids in a cgroup (relative to /sys/fs/cgroup), one a line.
# memory, cpu and pids are enabled in the cgroup.subtree_control of each given cgroup (paths
# below /sys/fs/cgroup, "" for the root): the controllers programs' cgroups need.
expect_controllers_enabled() {
    for parent in "$@"; do
        for c in memory cpu pids; do
            case " $(cat /sys/fs/cgroup$parent/cgroup.subtree_control 2>/dev/null) " in
            *" $c "*) pass "$c is enabled in the cgroup.subtree_control of ${parent:-/}" ;;
            *) fail "$c is enabled in the cgroup.subtree_control of ${parent:-/}" \
                "found '$(cat /sys/fs/cgroup$parent/cgroup.subtree_control 2>&1)'" ;;
            esac
        done
    done
}

procs_of() { cat "/sys/fs/cgroup/$1/cgroup.procs" 2>/dev/null; }

# stat_field PID N: field N of /proc/PID/stat (3 = state, 4 = ppid, 6 = session).
stat_field() { awk -v n="$2" '{ print $n }' "/proc/$1/stat" 2>/dev/null; }

# shutdown_vm: the last step of a checker under holden. Prints DONE, then sends SIGTERM to
# PID 1 (holden): its graceful shutdown stops every program and it exits, which ends the VM
# (the kernel panics on PID 1's exit, and panic=-1 with -no-reboot makes qemu quit). A
# watchdog outside the checker's session powers off with a FAIL line if holden is still
# running 20 s later; holden's shutdown normally kills it first, with the checker's cgroup.
shutdown_vm() {
    done_checks
    setsid sh -c 'sleep 20; echo "FAIL: holden exits within 20 s of SIGTERM"; poweroff -f' \
        </dev/null >/dev/console 2>&1 &
    kill -TERM 1
}
