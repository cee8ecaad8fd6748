# A daemonized grandchild: new session (so not in our process group), parent gone (so
# re-parented to PID 1), and deaf to SIGTERM and SIGHUP.
echo $$ >/run/forker.pid
(setsid sh -c 'trap "" TERM HUP INT; echo $$ >/run/grandchild.pid; while :; do sleep 1; done' \
    </dev/null >/dev/null 2>&1 &)
sleep 3600 &
wait
