# A database that takes a while: READY=1 once /run/db-go exists, then WATCHDOG=1 every 0.3 s
# until /run/db-hang exists (then it hangs: alive, silent).
while [ ! -e /run/db-go ]; do sleep 0.05; done
/bin/sdnotify READY=1 STATUS=db-accepting
while [ ! -e /run/db-hang ]; do
    sleep 0.3
    /bin/sdnotify WATCHDOG=1
done
exec sleep 3600
