# 50 orphans: each subshell starts a sleep in the background and exits at once, so the sleep's
# parent is gone and the kernel re-parents it to PID 1. They all end about 5 s from now.
i=0
while [ $i -lt 50 ]; do
    (sleep 5 &)
    i=$((i + 1))
done
echo "daemonizer: 50 orphans started"
# Stay alive (as a daemon's parent would not): this keeps the orphans' cgroup alive, so that
# only their own exit ends them.
sleep 3600 &
wait
