. /lib/vmtest.sh
agent=/run/agent.sock

if wait_for 10 holden ping --agent $agent; then
    pass "holden ping answers through the agent"
else
    fail "holden ping answers through the agent" "$(holden ping --agent $agent 2>&1)"
fi

# spawn_case WHAT CMD...: the child ends on its own; spawn must not invent its status.
spawn_case() {
    what=$1; shift
    out=$(holden spawn --agent $agent --restart never -- "$@" 2>&1)
    status=$?
    # Exit 1, and it says it does not know ("unknown", "cannot tell"), naming no status of
    # its own: exit 1 alone would also be any error's.
    if [ "$status" = 1 ] && printf '%s' "$out" | grep -qiE 'unknown|cannot tell|can not tell|not known' &&
        ! printf '%s' "$out" | grep -qiE 'exit (status|code)[: ]+[0-9]|killed by|signal [0-9A-Z]'; then
        pass "spawn of a child that $what exits 1 and says the status is unknown ($out)"
    else
        fail "spawn of a child that $what exits 1 and says the status is unknown" "exit $status: $out"
    fi
}
spawn_case "exits 7" /bin/sh -c 'exit 7'
spawn_case "is killed by SIGKILL" /bin/sh -c 'kill -KILL $$'
spawn_case "exits 0" /bin/true

# The same through holden itself: a program with `agent = ...` that exits 7.
if wait_for 30 state_is remote EXITED; then
    pass "the agent-spawned program remote ended and went to EXITED"
else
    fail "the agent-spawned program remote ended and went to EXITED" "status: $(status_json remote)"
fi
status=$(status_json remote)
echo "vmtest: holden status remote --json: $status"
case "$status" in
*'"last_exit":{"code":null,"signal":null,"oom_killed":false}'*)
    pass "status --json gives its last exit as unknown (code and signal null), not 7" ;;
*) fail "status --json gives its last exit as unknown (code and signal null), not 7" "$status" ;;
esac

shutdown_vm
