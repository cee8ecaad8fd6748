. /lib/vmtest.sh
for s in TERM INT HUP; do
    if wait_for 20 test -s /run/trapper-$s.pid; then
        pass "the program stopped by SIG$s runs"
    else
        fail "the program stopped by SIG$s runs" "no /run/trapper-$s.pid after 20 s"
    fi
done
# The rest is read from the console by host-check.sh: each program's last words, then
# PID 1's exit status (EXPECT_INIT_EXIT=0).
shutdown_vm
