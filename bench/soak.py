#!/usr/bin/env python3
"""holden's soak (issue 14): figures, not assertions; the short form with assertions is
tests/integration/soak.rs.

    python3 bench/soak.py                          # churn + kills, cgroups = "off" for the churn
    python3 bench/soak.py --restarts 10000 --kills 100 --programs 50
    python3 bench/soak.py --only churn             # or: --only kills (root: it uses cgroups)

churn: PROGRAMS programs that each run a little while and fail, restarting for ever
(start_limit_burst = 0). With every program stopped, holden's fd count and RSS are printed, then
after RESTARTS restarts (and every program stopped again) once more: they must be flat.

kills: holden with 5 steady and 5 crash-looping programs under cgroups is SIGKILLed at KILLS
random moments and started again each time. Between kills the cgroups are sampled every 5 ms:
the most processes ever seen in one program's cgroup (1: never two copies), and after a last
clean shutdown whether any cgroup was left behind.

It runs target/release/holden (or --holden / $HOLDEN_BIN) on configs in a fresh temp dir.
Python 3 standard library only.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CG_ROOT = "/sys/fs/cgroup"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(sock_path, req):
    """One request on the control socket, its reply parsed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def programs_of(sock_path):
    reply = request(sock_path, {"cmd": "status"})
    return reply["programs"]


def wait(what, cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise SystemExit(f"soak: timed out waiting for {what}")


class Holden:
    def __init__(self, binary, tmp, programs, extra=""):
        self.binary, self.tmp = binary, tmp
        self.sock = os.path.join(tmp, "holden.sock")
        self.config = os.path.join(tmp, "supervisor.toml")
        with open(self.config, "w") as f:
            f.write(
                f'[supervisor]\nsocket = "{self.sock}"\nlogfile = "{tmp}/holden.log"\n{extra}\n{programs}'
            )
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "run", "-c", self.config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.tmp, "holden.stderr"), "a"),
            start_new_session=True,
        )

        def up():
            try:
                programs_of(self.sock)
                return True
            except OSError:
                if self.proc.poll() is not None:
                    with open(os.path.join(self.tmp, "holden.stderr")) as f:
                        err = f.read()[-2000:]
                    holders = subprocess.run(["ss", "-xlp"], capture_output=True, text=True).stdout
                    holders = "\n".join(l for l in holders.splitlines() if self.sock in l)
                    raise SystemExit(f"soak: holden exited with {self.proc.returncode}:\n{err}{holders}")
                return False

        wait("holden's socket", up)

    def kill(self, sig):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def crashers(n):
    out = []
    for i in range(n):
        out.append(
            f'[programs.c{i}]\ncommand = ["sh", "-c", "echo run; sleep 0.{1 + i % 3}{i % 10}; exit 1"]\n'
            f'stdout = "c{i}.log"\nmin_uptime = "20ms"\nrestart_delay = "10ms"\nmax_restart_delay = "10ms"\n'
            "max_restarts = 100000000\nstart_limit_burst = 0\n"
        )
    return "".join(out)


def churn(args, tmp):
    h = Holden(args.holden, tmp, crashers(args.programs), 'cgroups = "off"')
    h.start()
    sock = h.sock

    def total(state=None):
        ps = programs_of(sock)
        return sum(p["restarts"] for p in ps), all(p["state"] == state for p in ps)

    def stop_all():
        request(sock, {"cmd": "stop", "all": True})
        wait("every program stopped", lambda: total("STOPPED")[1])
        time.sleep(0.2)  # let holden close the clients' connections before counting fds

    wait("every program to have run", lambda: all(p["restarts"] >= 1 for p in programs_of(sock)))
    stop_all()
    fds0, rss0, (r0, _) = fd_count(h.proc.pid), rss_kib(h.proc.pid), total()
    request(sock, {"cmd": "start", "all": True})
    t0 = time.monotonic()
    step = max(args.restarts // 10, 1)
    mark = step
    while True:
        r, _ = total()
        if r - r0 >= mark:
            print(f"  {r - r0:6d} restarts  fds {fd_count(h.proc.pid):4d}  RSS {rss_kib(h.proc.pid):6d} KiB", flush=True)
            mark += step
        if r - r0 >= args.restarts:
            break
        time.sleep(0.05)
    took = time.monotonic() - t0
    stop_all()
    fds1, rss1, (r1, _) = fd_count(h.proc.pid), rss_kib(h.proc.pid), total()
    h.kill(signal.SIGTERM)
    print(
        f"churn: {r1 - r0} restarts of {args.programs} programs in {took:.1f} s "
        f"({(r1 - r0) / took:.0f}/s); holden's fds {fds0} -> {fds1}, RSS {rss0} -> {rss1} KiB"
    )
    return fds0 == fds1


def hierarchies():
    out = [os.path.join(CG_ROOT, d) for d in os.listdir(CG_ROOT)]
    out = [d for d in out if os.path.exists(os.path.join(d, "cgroup.procs"))]
    if os.path.exists(os.path.join(CG_ROOT, "cgroup.procs")):
        out.append(CG_ROOT)
    return out


def kills(args, tmp):
    if os.geteuid() != 0:
        print("kills: skipped (needs root for cgroups)")
        return True
    cg = f"/holden-soak-{os.getpid()}"
    memory = os.path.join(CG_ROOT, "memory")
    base = memory if os.path.isdir(memory) else CG_ROOT
    parent = os.path.join(base, cg.lstrip("/"))
    programs = "".join(
        f'[programs.s{i}]\ncommand = "sleep 1000"\nmin_uptime = "50ms"\n'
        f'[programs.c{i}]\ncommand = ["perl", "-e", "select(undef, undef, undef, 0.05 + rand(0.3)); exit 1"]\n'
        'min_uptime = "20ms"\nrestart_delay = "10ms"\nmax_restarts = 100000000\nstart_limit_burst = 0\n'
        for i in range(5)
    )
    h = Holden(args.holden, tmp, programs, f'cgroups = "required"\ncgroup_path = "{cg}"')
    most, seen = 0, set()

    def sample(seconds):
        nonlocal most
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for d in os.listdir(parent) if os.path.isdir(parent) else []:
                p = os.path.join(parent, d, "cgroup.procs")
                if os.path.isfile(p):
                    with open(p) as f:
                        procs = f.read().split()
                    most = max(most, len(procs))
                    seen.update(procs)
            time.sleep(0.005)

    t0 = time.monotonic()
    try:
        for n in range(args.kills):
            h.start()
            sample(random.uniform(0.05, 0.6))
            h.kill(signal.SIGKILL)
        h.start()
        sample(1.0)
        h.kill(signal.SIGTERM)
    finally:
        leaked = [os.path.join(d, cg.lstrip("/")) for d in hierarchies()]
        leaked = [d for d in leaked if os.path.exists(d)]
        for d in leaked:  # what a failed run left in its own cgroups: end it, remove them
            for _ in range(50):
                for procs in subprocess.run(["find", d, "-name", "cgroup.procs"], capture_output=True, text=True).stdout.split():
                    with open(procs) as f:
                        for pid in f.read().split():
                            try:
                                os.kill(int(pid), signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                subprocess.run(["find", d, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+"], stderr=subprocess.DEVNULL)
                if not os.path.exists(d):
                    break
                time.sleep(0.05)
    alive = [p for p in seen if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] != "Z"]
    print(
        f"kills: {args.kills} SIGKILLs in {time.monotonic() - t0:.1f} s; most processes ever in one program's "
        f"cgroup: {most} (1: never two copies); {len(seen)} pids seen, {len(alive)} still alive; "
        f"cgroups left after the last clean exit: {len(leaked)}"
    )
    return most <= 1 and not alive and not leaked


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--holden", default=os.environ.get("HOLDEN_BIN", "target/release/holden"))
    ap.add_argument("--programs", type=int, default=50)
    ap.add_argument("--restarts", type=int, default=10000)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--only", choices=["churn", "kills"])
    args = ap.parse_args()
    args.holden = os.path.abspath(args.holden)
    ok = True
    for name, fn in [("churn", churn), ("kills", kills)]:
        if args.only and args.only != name:
            continue
        tmp = tempfile.mkdtemp(prefix="holden-soak-")
        try:
            ok &= fn(args, tmp)
        finally:
            if not os.environ.get("SOAK_KEEP"):
                shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
