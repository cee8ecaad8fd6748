#!/bin/sh
# holden's own log lines on the console: the transitions say why.
log=$1
for line in "db: STARTING -> RUNNING (ready: READY=1)" "db: RUNNING -> STOPPING (watchdog: no WATCHDOG=1 for 2s; sent SIGTERM)"; do
    if grep -qF "$line" "$log"; then echo "PASS: console has '$line'"; else echo "FAIL: console has '$line': not found"; fi
done
