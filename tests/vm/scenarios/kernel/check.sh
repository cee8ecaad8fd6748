. /lib/vmtest.sh

version=$(holden --version 2>&1)
case "$version" in
"holden "[0-9]*) pass "holden --version runs the static binary ($version)" ;;
*) fail "holden --version" "printed '$version'" ;;
esac

case "$(uname -r)" in
6.1.*) pass "kernel is 6.1 ($(uname -r))" ;;
*) fail "kernel is 6.1" "uname -r says $(uname -r)" ;;
esac

fstype=$(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts)
expect_eq "cgroup2 is mounted at /sys/fs/cgroup" cgroup2 "$fstype"

controllers=" $(cat /sys/fs/cgroup/cgroup.controllers) "
for c in memory cpu pids; do
    case "$controllers" in
    *" $c "*) pass "the root cgroup offers the $c controller" ;;
    *) fail "the root cgroup offers the $c controller" "cgroup.controllers:$controllers" ;;
    esac
done

# A child cgroup with the controllers enabled has the files holden writes.
echo "+memory +cpu +pids" >/sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/probe
for f in memory.max cpu.max pids.max memory.events cgroup.kill cgroup.events; do
    check "a child cgroup has $f" test -e /sys/fs/cgroup/probe/$f
done
rmdir /sys/fs/cgroup/probe

expect_eq "the shell /init is PID 1" 1 "$(awk '/^Pid:/ { print $2 }' /proc/1/status)"
check "memhog is in the image" test -x /bin/memhog

done_checks
