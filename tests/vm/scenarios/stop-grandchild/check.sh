. /lib/vmtest.sh
cg=/sys/fs/cgroup/supervisor/forker

if wait_for 20 test -s /run/grandchild.pid; then
    gpid=$(cat /run/grandchild.pid)
    main=$(cat /run/forker.pid)
    pass "forker (pid $main) and its daemonized grandchild (pid $gpid) run"
else
    fail "forker and its daemonized grandchild run" "no /run/grandchild.pid after 20 s"
    shutdown_vm
    exit 0
fi
expect_eq "the grandchild is in forker's cgroup" "0::/supervisor/forker" "$(cat /proc/$gpid/cgroup)"
expect_eq "the grandchild was re-parented to PID 1" 1 "$(stat_field $gpid 4)"
if [ "$(stat_field $gpid 6)" != "$(stat_field $main 6)" ]; then
    pass "the grandchild left forker's session"
else
    fail "the grandchild left forker's session" "both in session $(stat_field $gpid 6)"
fi
breeder=$(cat /run/breeder.pid 2>/dev/null)
many() { [ "$(cat $cg/pids.current)" -ge 20 ]; }
if wait_for 20 many; then
    pass "the breeder (pid $breeder) keeps forking: $(cat $cg/pids.current) processes in forker's cgroup"
else
    fail "the breeder keeps forking" "pids.current: $(cat $cg/pids.current 2>&1)"
fi
had_cgroup=no
[ -e $cg/cgroup.procs ] && had_cgroup=yes

out=$(holden stop forker 2>&1)
expect_eq "holden stop forker exits 0 ($out)" 0 $?
expect_eq "forker is STOPPED" STOPPED "$(json_get "$(status_json forker)" state)"
if [ -e $cg/cgroup.events ]; then
    expect_eq "forker's cgroup.events says populated 0" "populated 0" "$(grep populated $cg/cgroup.events)"
    expect_eq "forker's cgroup.procs is empty" "" "$(cat $cg/cgroup.procs)"
elif [ $had_cgroup = yes ]; then
    pass "forker's cgroup is empty: holden removed it"
else
    fail "forker's cgroup is empty" "$cg never existed"
fi
for p in $gpid $breeder; do
    if wait_for 5 test ! -e /proc/$p; then
        pass "grandchild $p is gone (killed and reaped)"
    else
        fail "grandchild $p is gone" "state $(stat_field $p 3)"
    fi
done

shutdown_vm
