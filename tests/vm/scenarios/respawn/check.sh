# The respawn figure of issue 13 (see scenario.conf). The checker sleeps while anything is
# measured (one vCPU: a polling checker would take turns with holden and with the floor loop),
# and the first gap of each series is left out (holden's own start, the loop's first fork).
. /lib/vmtest.sh

N=5                       # respawns measured, under holden and in the floor loop alike
LIVE_MS=1000              # as holden.toml's `bhstamp live 1000`
stamps=/run/lived.stamps
floor=/run/floor.stamps

# gaps_ms FILE: from each run's exit stamp ("E ns") to the next run's start stamp ("S ns"), ms.
gaps_ms() {
    awk '$1 == "E" { e = $2; next } $1 == "S" && e != "" { printf "%.3f\n", ($2 - e) / 1e6; e = "" }' "$1" 2>/dev/null
}
# measured FILE: the N gaps measured (the first one left out).
measured() { gaps_ms "$1" | tail -n +2 | head -n "$N"; }
# p50: the median of the numbers on stdin.
p50() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
n_measured() { measured "$1" | grep -c . ; }
# bhstamps: pids of every live bhstamp process (the program's runs and the floor's children).
bhstamps() {
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = /bin/bhstamp ] && echo "${p#/proc/}"
    done
}

# --- under holden: `lived` has been restarting since boot; sleep through N + 1 respawns -------
deadline=$(( $(uptime_ms) + 60000 ))
sleep $(( (N + 2) * LIVE_MS / 1000 ))
while [ "$(n_measured $stamps)" -lt "$N" ] && [ "$(uptime_ms)" -lt "$deadline" ]; do sleep 1; done
got=$(n_measured $stamps)
if [ "$got" -ge "$N" ]; then
    pass "holden respawned lived $((N + 1)) times (every exit followed by a start)"
else
    fail "holden respawned lived $((N + 1)) times" "$got measured gaps in 60 s: $(tr '\n' ' ' <$stamps)"
fi
json=$(status_json lived)
restarts=$(json_get "$json" restarts)
if [ "${restarts:-0}" -ge $((N + 1)) ]; then pass "holden status counts the restarts ($restarts)"; else fail "holden status counts the restarts" "$json"; fi
# A run lives 1 s: the pid status gives may be gone by the time its cgroup is read; ask again.
run_in_cgroup() {
    pid=$(json_get "$(status_json lived)" pid)
    seen=$(cat "/proc/$pid/cgroup" 2>&1)
    [ "$seen" = "0::/supervisor/lived" ]
}
if wait_for 10 run_in_cgroup; then
    pass "a respawned run (pid $pid) sits in /supervisor/lived"
else
    fail "a respawned run sits in /supervisor/lived" "pid $pid: $seen"
fi

holden stop lived >/dev/null 2>&1
if wait_for 10 state_is lived STOPPED; then pass "lived stops"; else fail "lived stops" "$(status_json lived)"; fi
check "no process left in /supervisor/lived" sh -c '[ -z "$(cat /sys/fs/cgroup/supervisor/lived/cgroup.procs)" ]'

# --- the floor: fork + exec + waitpid of the same program, living as long, in this VM -------
if /bin/bhstamp floor $((N + 2)) $floor $LIVE_MS; then
    pass "the floor loop ran $((N + 2)) runs"
else
    fail "the floor loop ran $((N + 2)) runs" "bhstamp floor exited with $?"
fi
expect_eq "the floor loop has $N measured gaps" "$N" "$(n_measured $floor)"
expect_eq "no bhstamp process is left" "" "$(bhstamps | tr '\n' ' ')"

# --- the figures (printed, never judged) ------------------------------------------------------
h50=$(measured $stamps | p50)
f50=$(measured $floor | p50)
ratio=$(awk -v h="$h50" -v f="$f50" 'BEGIN { if (f > 0 && h != "n/a") printf "%.2f", h / f; else print "n/a" }')
echo "FIGURE: respawn p50, exit to exec of a program that lived 1 s, holden (cgroups, pure v2): $h50 ms (gaps: $(measured $stamps | tr '\n' ' '))"
echo "FIGURE: floor p50, fork+exec+waitpid of the same program in this VM: $f50 ms (gaps: $(measured $floor | tr '\n' ' '))"
echo "FIGURE: respawn / floor = ${ratio}x (issue 13's target: at most 1.5x)"
# holden logs to /run/holden.log here (the emulated serial console is slow and would be timed
# too); on a failure, its lines go to the console.
[ "$VMTEST_FAILED" = 0 ] || sed 's/^/holden.log | /' /run/holden.log
shutdown_vm
