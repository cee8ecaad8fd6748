#!/bin/sh
# Each program was stopped by its own stop_signal, before PID 1 exited.
log=$1
panic=$(grep -an 'Attempted to kill init!' "$log" | head -n1 | cut -d: -f1)
for s in TERM INT HUP; do
    line=$(grep -an "trapper: stopped by SIG$s" "$log" | head -n1 | cut -d: -f1)
    if [ -z "$line" ]; then
        echo "FAIL: the program with stop_signal $s was stopped by SIG$s: no 'stopped by SIG$s' line"
    elif [ -n "$panic" ] && [ "$line" -gt "$panic" ]; then
        echo "FAIL: the program with stop_signal $s was stopped by SIG$s before holden exited: after"
    else
        echo "PASS: the program with stop_signal $s was stopped by SIG$s before holden exited"
    fi
done
if grep -aq 'SIGKILL' "$log"; then
    echo "FAIL: every program ended by its stop_signal, none needed SIGKILL: $(grep -a SIGKILL "$log" | head -n1)"
else
    echo "PASS: every program ended by its stop_signal, none needed SIGKILL"
fi
