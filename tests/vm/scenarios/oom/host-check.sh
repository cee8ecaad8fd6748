#!/bin/sh
# holden's log on the console: each OOM kill is one transition line, told apart from a SIGKILL.
log=$1
n=$(grep -ac 'hog: STARTING -> BACKOFF.*OOM' "$log")
if [ "$n" = 2 ]; then echo "PASS: the log shows 2 OOM kills followed by BACKOFF"
else echo "FAIL: the log shows 2 OOM kills followed by BACKOFF: found $n such lines"; fi
if grep -aq 'hog: STARTING -> FATAL.*OOM' "$log"; then echo "PASS: the log shows the third OOM kill leading to FATAL"
else echo "FAIL: the log shows the third OOM kill leading to FATAL: no 'hog: STARTING -> FATAL ... OOM' line"; fi
