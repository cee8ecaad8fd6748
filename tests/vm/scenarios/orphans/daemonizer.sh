# 50 orphans: each subshell starts a `cat` in the background and exits at once, so the cat's
# parent is gone and the kernel re-parents it to PID 1. Each cat blocks opening the FIFO
# /run/gate until the checker opens it for writing and closes it: then all 50 read EOF and
# exit together, and their 50 SIGCHLDs reach PID 1 at once.
mkfifo /run/gate
i=0
while [ $i -lt 50 ]; do
    (cat /run/gate >/dev/null &)
    i=$((i + 1))
done
echo "daemonizer: 50 orphans started"
# Stay alive (as a daemon's parent would not): this keeps the orphans' cgroup alive, so that
# only their own exit ends them.
sleep 3600 &
wait
