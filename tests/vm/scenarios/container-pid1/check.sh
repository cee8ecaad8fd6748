. /lib/vmtest.sh
cg=/sys/fs/cgroup

expect_eq "holden is PID 1" holden "$(cat /proc/1/comm)"
if [ "$(readlink /proc/1/ns/cgroup)" != "$(readlink /proc/self/ns/cgroup)" ] ||
    [ "$(readlink /proc/1/ns/cgroup)" = "$(cat /run/init-cgroupns 2>/dev/null)" ]; then
    fail "holden runs in a cgroup namespace of its own" "$(readlink /proc/1/ns/cgroup)"
else
    pass "holden runs in a cgroup namespace of its own ($(readlink /proc/1/ns/cgroup))"
fi
expect_eq "holden moved itself into the leaf /holden of its namespace" "0::/holden" "$(cat /proc/1/cgroup)"
expect_eq "the namespace root holds no process" "" "$(cat $cg/cgroup.procs)"

expect_controllers_enabled "" /supervisor

if wait_for 10 test -n "$(procs_of supervisor/limited)"; then
    pid=$(procs_of supervisor/limited | head -n1)
    pass "the program limited runs in /supervisor/limited (pid $pid)"
else
    fail "the program limited runs in /supervisor/limited" "cgroup.procs stayed empty for 10 s"
fi
expect_eq "memory.max holds memory_limit = 48MiB" 50331648 "$(cat $cg/supervisor/limited/memory.max 2>&1)"
read -r quota period <$cg/supervisor/limited/cpu.max
if [ -n "$period" ] && [ "$quota" != max ] && [ $((quota * 4)) -eq "$period" ]; then
    pass "cpu.max holds cpu_limit = 0.25 ($quota $period)"
else
    fail "cpu.max holds cpu_limit = 0.25" "found '$quota $period'"
fi
expect_eq "pids.max holds pids_limit = 16" 16 "$(cat $cg/supervisor/limited/pids.max 2>&1)"

shutdown_vm
