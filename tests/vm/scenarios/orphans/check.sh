. /lib/vmtest.sh

# orphans: the cats whose parent is PID 1.
orphans() {
    for f in /proc/[0-9]*/stat; do
        read -r line <"$f" 2>/dev/null || continue
        set -- $line
        [ "$2" = "(cat)" ] && [ "$4" = 1 ] && echo "$1"
    done
}
# zombies: children of PID 1 in state Z (exited, not reaped).
zombies() {
    for f in /proc/[0-9]*/stat; do
        read -r line <"$f" 2>/dev/null || continue
        set -- $line
        [ "$3" = Z ] && [ "$4" = 1 ] && echo "$1 $2"
    done
}
count() { "$@" | wc -l | tr -d ' '; }
orphans_are() { [ "$(count orphans)" = "$1" ]; }
no_orphans_no_zombies() { [ "$(count orphans)" = 0 ] && [ "$(count zombies)" = 0 ]; }

if wait_for 30 orphans_are 50; then
    pass "50 orphans of the daemonizer were re-parented to PID 1"
else
    fail "50 orphans of the daemonizer were re-parented to PID 1" "found $(count orphans)"
fi
# Open the gate: every cat reads EOF and exits. (Read-write: that open never blocks, even if
# no cat is there to read.)
exec 3<>/run/gate
exec 3>&-
if wait_for 30 no_orphans_no_zombies; then
    pass "all 50 orphans exited and PID 1 reaped them: no zombie"
else
    fail "all 50 orphans exited and PID 1 reaped them: no zombie" \
        "orphans alive: $(count orphans), zombies of PID 1: $(zombies | tr '\n' ' ')"
fi
# Shells reap their own children a moment after they exit: allow that moment.
all_zombies() { for f in /proc/[0-9]*/stat; do awk '$3 == "Z" { print $1, $2, "ppid", $4 }' "$f" 2>/dev/null; done; }
no_zombie_at_all() { [ -z "$(all_zombies)" ]; }
if wait_for 5 no_zombie_at_all; then
    pass "no zombie anywhere in the machine"
else
    fail "no zombie anywhere in the machine" "$(all_zombies | tr '\n' ';')"
fi

shutdown_vm
