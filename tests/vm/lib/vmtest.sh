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
