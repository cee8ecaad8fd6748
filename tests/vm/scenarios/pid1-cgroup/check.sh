. /lib/vmtest.sh
cg=/sys/fs/cgroup

expect_eq "holden is PID 1" holden "$(cat /proc/1/comm)"
# The real root cgroup is exempt from "no internal processes": holden may stay in it, or move
# into the leaf /holden. (In a container's cgroup namespace it must move: container-pid1.)
case "$(cat /proc/1/cgroup)" in
"0::/" | "0::/holden") pass "holden sits in the real root or in the leaf /holden ($(cat /proc/1/cgroup))" ;;
*) fail "holden sits in the real root or in the leaf /holden" "$(cat /proc/1/cgroup)" ;;
esac

expect_controllers_enabled "" /supervisor

if wait_for 10 test -n "$(procs_of supervisor/limited)"; then
    pid=$(procs_of supervisor/limited | head -n1)
    pass "the program limited runs in /supervisor/limited (pid $pid)"
    expect_eq "its /proc/PID/cgroup names it" "0::/supervisor/limited" "$(cat /proc/$pid/cgroup)"
else
    fail "the program limited runs in /supervisor/limited" "cgroup.procs stayed empty for 10 s"
fi
expect_eq "the checker runs in /supervisor/checker" "0::/supervisor/checker" "$(cat /proc/self/cgroup)"

expect_eq "memory.max holds memory_limit = 64MiB" 67108864 "$(cat $cg/supervisor/limited/memory.max 2>&1)"
read -r quota period <$cg/supervisor/limited/cpu.max
if [ -n "$period" ] && [ "$quota" != max ] && [ $((quota * 2)) -eq "$period" ]; then
    pass "cpu.max holds cpu_limit = 0.5 ($quota $period)"
else
    fail "cpu.max holds cpu_limit = 0.5" "found '$quota $period'"
fi
expect_eq "pids.max holds pids_limit = 32" 32 "$(cat $cg/supervisor/limited/pids.max 2>&1)"
expect_eq "the checker, without limits, has memory.max max" max "$(cat $cg/supervisor/checker/memory.max 2>&1)"

shutdown_vm
