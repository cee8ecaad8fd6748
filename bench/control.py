#!/usr/bin/env python3
"""Control socket benchmark (issue 5): `holden status --json` round trip with 200 programs, and
holden's idle wakeups with a `watch` client connected and nothing changing.

    HOLDEN_BIN=target/release/holden python3 bench/control.py [--programs 200] [--reps 300]

Prints one JSON line of figures on stdout (progress on stderr). Standard library only.
Figures:
  socket_rtt_ms     one `status` request/response on an open connection (the protocol cost)
  connect_rtt_ms    connect + `status` + close (what a client pays, minus process start)
  cli_rtt_ms        the whole `holden status --json` process (exec + connect + print)
  idle_wakeups      context switches of holden's thread over `--idle` seconds with one
                    watcher connected and every program RUNNING (target: 0)
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def summary(values):
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(pct(values, 95), 3),
        "min": round(min(values), 3),
        "n": len(values),
    }


def request(sock_file, sock, line):
    sock.sendall(line)
    reply = sock_file.readline()
    if not reply:
        raise RuntimeError("holden closed the connection")
    return reply


def ctx_switches(pid):
    total = 0
    with open(f"/proc/{pid}/task/{pid}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=200)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--cli-reps", type=int, default=50)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--cgroups", action="store_true", help="each program in its own cgroup (root): status reads usage")
    args = ap.parse_args()
    holden = os.environ.get("HOLDEN_BIN") or shutil.which("holden") or "target/release/holden"
    holden = os.path.abspath(holden)
    work = tempfile.mkdtemp(prefix="holden-bench-control-")
    sock_path = os.path.join(work, "holden.sock")
    cfg = os.path.join(work, "supervisor.toml")
    with open(cfg, "w") as f:
        cg = f'cgroups = "required"\ncgroup_path = "/holden-bench-{os.getpid()}"' if args.cgroups else 'cgroups = "off"'
        f.write(f'[supervisor]\nsocket = "{sock_path}"\nlogfile = "{work}/holden.log"\n{cg}\n\n')
        for i in range(args.programs):
            f.write(f'[programs.p{i:03}]\ncommand = "sleep 100000"\nmin_uptime = "100ms"\nstdout = "null"\nstderr = "null"\n\n')
    proc = subprocess.Popen([holden, "run", "-c", cfg], stdin=subprocess.DEVNULL, start_new_session=True)
    result = {"programs": args.programs, "cgroups": args.cgroups, "holden": holden}
    try:
        deadline = time.monotonic() + 60
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError("programs did not all reach RUNNING within 60 s")
            out = subprocess.run([holden, "status", "--json", "--socket", sock_path], capture_output=True)
            if out.returncode == 0:
                progs = json.loads(out.stdout)["programs"]
                if len(progs) == args.programs and all(p["state"] == "RUNNING" for p in progs):
                    break
            time.sleep(0.05)
        log(f"{args.programs} programs RUNNING")

        line = b'{"cmd":"status"}\n'
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock_path)
        sf = s.makefile("rb")
        size = len(request(sf, s, line))
        result["status_bytes"] = size
        rtt = []
        for _ in range(args.reps):
            t = time.perf_counter()
            request(sf, s, line)
            rtt.append((time.perf_counter() - t) * 1000)
        s.close()
        result["socket_rtt_ms"] = summary(rtt)

        rtt = []
        for _ in range(args.reps):
            t = time.perf_counter()
            c = socket.socket(socket.AF_UNIX)
            c.connect(sock_path)
            cf = c.makefile("rb")
            request(cf, c, line)
            c.close()
            rtt.append((time.perf_counter() - t) * 1000)
        result["connect_rtt_ms"] = summary(rtt)

        rtt = []
        for _ in range(args.cli_reps):
            t = time.perf_counter()
            out = subprocess.run([holden, "status", "--json", "--socket", sock_path], capture_output=True)
            rtt.append((time.perf_counter() - t) * 1000)
            if out.returncode != 0:
                raise RuntimeError(out.stderr.decode())
        result["cli_rtt_ms"] = summary(rtt)
        log("round trips measured")

        w = socket.socket(socket.AF_UNIX)
        w.connect(sock_path)
        wf = w.makefile("rb")
        request(wf, w, b'{"cmd":"watch"}\n')
        time.sleep(0.2)
        before = ctx_switches(proc.pid)
        time.sleep(args.idle)
        after = ctx_switches(proc.pid)
        result["idle_seconds"] = args.idle
        result["idle_wakeups"] = after - before
        w.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
