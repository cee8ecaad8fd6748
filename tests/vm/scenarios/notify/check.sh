. /lib/vmtest.sh

if wait_for 20 state_is db STARTING; then pass "db is STARTING"; else fail "db is STARTING" "$(status_json db)"; fi
db_pid=$(json_get "$(status_json db)" pid)
sock=$(tr '\0' '\n' <"/proc/$db_pid/environ" | sed -n 's/^NOTIFY_SOCKET=//p')
check "db has a NOTIFY_SOCKET in a private directory" sh -c "[ -S '$sock' ] && ls -ld '$(dirname "$sock")' | grep -q '^drwx------'"
check "db runs in its cgroup /supervisor/db" sh -c "grep -qx '$db_pid' /sys/fs/cgroup/supervisor/db/cgroup.procs"
# Well past min_uptime: still STARTING, and web waits for it.
sleep 1
expect_eq "db is still STARTING past min_uptime" STARTING "$(json_get "$(status_json db)" state)"
expect_eq "db is not ready" false "$(json_get "$(status_json db)" ready)"
expect_eq "web waits for db" STOPPED "$(json_get "$(status_json web)" state)"

touch /run/db-go
if wait_for 10 state_is db RUNNING; then pass "READY=1 makes db RUNNING"; else fail "READY=1 makes db RUNNING" "$(status_json db)"; fi
expect_eq "status_text is db's STATUS=" db-accepting "$(json_get "$(status_json db)" status_text)"
if wait_for 10 state_is web RUNNING; then pass "web starts once db is ready"; else fail "web starts once db is ready" "$(status_json web)"; fi
# The watchdog is petted: db stays RUNNING well past 2 s.
sleep 3
expect_eq "WATCHDOG=1 keeps db RUNNING" RUNNING "$(json_get "$(status_json db)" state)"
expect_eq "db has not restarted" 0 "$(json_get "$(status_json db)" restarts)"
expect_eq "health ok" true "$(json_get "$(status_json db)" ok)"

touch /run/db-hang
restarted() { [ "$(json_get "$(status_json db)" restarts)" = 1 ]; }
if wait_for 15 restarted; then pass "a missed watchdog restarts db"; else fail "a missed watchdog restarts db" "$(status_json db)"; fi
# The new run is STARTING again: db-go still exists, so it is ready at once... and hangs at once
# too (db-hang exists), so it goes on failing; stop it before it goes FATAL.
holden stop db >/dev/null 2>&1
check "no notify socket left after stop" sh -c "[ -z \"\$(ls /run/holden/notify 2>/dev/null)\" ]"

done_checks
shutdown_vm
