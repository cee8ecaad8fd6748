# trapper.sh SIG: says which signal stopped it; every other catchable signal is ignored.
sig=$1
for s in TERM INT HUP QUIT USR1 USR2; do [ $s = "$sig" ] || trap '' $s; done
# The sleep inherits the ignored signals (and, being a background job of a script, ignores
# SIGINT too): only SIGKILL is sure to end it.
trap 'echo "trapper: stopped by SIG$sig"; kill -KILL $child 2>/dev/null; exit 0' "$sig"
echo $$ >/run/trapper-$sig.pid
sleep 3600 &
child=$!
wait
