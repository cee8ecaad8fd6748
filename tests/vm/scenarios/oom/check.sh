. /lib/vmtest.sh

if wait_for 30 state_is hog FATAL; then
    pass "hog reached FATAL"
else
    fail "hog reached FATAL" "status: $(status_json hog)"
fi
status=$(status_json hog)
echo "vmtest: holden status hog --json: $status"
expect_eq "status --json reports last_exit.oom_killed true" true "$(json_get "$status" oom_killed)"
expect_eq "status --json counts max_restarts = 2 restarts" 2 "$(json_get "$status" restarts)"
expect_eq "status --json reports the memory limit (30MB)" 30000000 "$(json_get "$status" memory_limit)"
expect_eq "a FATAL program has no pid" null "$(json_get "$status" pid)"

# The kernel's own count, where holden left the cgroup in place.
events=/sys/fs/cgroup/supervisor/hog/memory.events
if [ -e $events ]; then
    expect_eq "memory.events counts 3 OOM kills (1 run + 2 restarts)" 3 \
        "$(awk '$1 == "oom_kill" { print $2 }' $events)"
fi

shutdown_vm
