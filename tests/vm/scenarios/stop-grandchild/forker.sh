# Two daemonized grandchildren: each in a new session (so not in our process group), parent
# gone (so re-parented to PID 1), and deaf to SIGTERM, SIGHUP and SIGINT. The second one,
# the breeder, keeps forking orphans as fast as pids_limit lets it: a cgroup whose membership
# changes all the time, which only cgroup.kill empties in one step.
echo $$ >/run/forker.pid
(setsid sh -c 'trap "" TERM HUP INT; echo $$ >/run/grandchild.pid; while :; do sleep 1; done' \
    </dev/null >/dev/null 2>&1 &)
(setsid sh -c 'trap "" TERM HUP INT; echo $$ >/run/breeder.pid; while :; do (sleep 5 &); done' \
    </dev/null >/dev/null 2>&1 &)
sleep 3600 &
wait
