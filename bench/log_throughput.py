#!/usr/bin/env python3
"""Capture throughput of holden's log path, against the same writer writing straight to a file.

One program (bench/lines.c) writes MIB MiB (default 512) of 128-byte lines as fast as it can,
in one of three ways (--writers): `line` (a write(2) per line), `stdio` (C stdio's default
buffering: 4 KiB writes) and `block` (64 KiB writes). Each round runs, for each writer:

  direct       the writer with stdout opened on a file (O_WRONLY|O_CREAT|O_TRUNC, like `>`)
  relay        the floor of any capture through a pipe: the writer's stdout on a pipe, moved
               into the file by a bare C loop doing what holden's splice path does
               (`lines relay`, in bench/lines.c)
  splice       `holden run` capturing it: stdout = "out.log", no rotation, no timestamps
  rotate       the same with log_max_bytes = "50MB", log_backups = 20
  timestamps   the same with log_timestamps = true (the line path)

Time: from the writer's own stamp before its first byte to the last byte in the file: the
writer's stamp after its last write for `direct`; for holden the later of that and the time
of the writer's transition to EXITED, which holden takes after it has drained the pipe into the
file. holden's CPU: its on-CPU time (/proc/PID/schedstat) from just before `start writer` to
that transition, so it counts the relaying (and one control request), not holden's startup.

Before every case the previous case's files are deleted and `sync` is run, so no case starts
with another's dirty pages or freed blocks still to write back; then 1 GiB is written in memory
and freed, because on a VM whose balloon reports free pages to the host (virtio free page
reporting) a case that happens to get reported pages pays host faults for them, and ran up to
4x slower than the same case on warm pages. Rounds interleave the cases,
so slow phases of a shared machine hit them alike; the table shows medians (and the best
round) over the rounds, and "of direct": the median over the rounds of direct's time over the
case's time in the same round. Every captured file is compared with what
the writer writes (`cmp`), so the figures only count runs where every byte arrived once, in
order. Nothing is asserted about speed: this prints figures.

Usage: bench/log_throughput [--rounds N] [--mib N] [--writers line,stdio,block]
                            [--cases relay,splice,rotate,timestamps] [--json]
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

BENCH = os.path.dirname(os.path.abspath(__file__))
WRITERS = {
    "line": "a write(2) per line",
    "stdio": "C stdio, default buffering (4 KiB writes)",
    "block": "64 KiB writes",
}
CASES = ["direct", "relay", "splice", "rotate", "timestamps"]
LINE = 128
STAMP = len("2026-11-23T07:41:00.123Z ")


def die(msg):
    print(f"log_throughput: {msg}", file=sys.stderr)
    sys.exit(1)


def on_cpu_ns(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def read_stamps(path):
    """The writer's start and end (and the relay's end, when a relay ran), in seconds."""
    with open(path) as f:
        return [int(x) / 1e9 for x in f.read().split()]


def fresh(dir_):
    """An empty `dir_`, with what was deleted written back."""
    shutil.rmtree(dir_, ignore_errors=True)
    os.makedirs(dir_)
    os.sync()
    warm = b"\1" * (1 << 30)
    del warm


def direct(args, lines_bin, mode, dir_):
    fresh(dir_)
    out, stamps = os.path.join(dir_, "out.log"), os.path.join(dir_, "stamps")
    with open(out, "wb") as f:
        subprocess.run([lines_bin, mode, str(args.mib), stamps], stdout=f, check=True)
    start, end = read_stamps(stamps)
    return end - start, None, [out]


def relay(args, lines_bin, mode, dir_):
    fresh(dir_)
    out, stamps = os.path.join(dir_, "out.log"), os.path.join(dir_, "stamps")
    subprocess.run([lines_bin, "relay", mode, str(args.mib), stamps, out], check=True)
    start, end, relay_end = read_stamps(stamps)
    return max(end, relay_end) - start, None, [out]


class Control:
    """A `watch` connection to holden's control socket (docs/control-protocol.md)."""

    def __init__(self, path, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    die(f"holden's socket {path} never accepted a connection")
                time.sleep(0.01)
        self.file = self.sock.makefile("rb")
        self.send({"cmd": "watch"})

    def send(self, req):
        self.sock.sendall(json.dumps(req).encode() + b"\n")

    def lines(self):
        for raw in self.file:
            yield json.loads(raw)
        die("holden closed the control connection")

    def close(self):
        self.file.close()
        self.sock.close()


def captured(args, lines_bin, mode, dir_, case):
    fresh(dir_)
    stamps = os.path.join(dir_, "stamps")
    config = os.path.join(dir_, "supervisor.toml")
    with open(config, "w") as f:
        f.write(
            f"""[supervisor]
socket = "{dir_}/holden.sock"
logfile = "{dir_}/holden.log"
cgroups = "off"

[programs.writer]
command = {json.dumps([lines_bin, mode, str(args.mib), stamps])}
autostart = false
autorestart = "never"
stdout = "out.log"
stderr = "null"
log_timestamps = {"true" if case == "timestamps" else "false"}
log_max_bytes = "{"50MB" if case == "rotate" else "0"}"
log_backups = 20
"""
        )
    holden = subprocess.Popen([args.holden, "run", "-c", config], stderr=subprocess.DEVNULL)
    try:
        ctl = Control(f"{dir_}/holden.sock", time.monotonic() + 10)
        cpu0 = on_cpu_ns(holden.pid)
        ctl.send({"cmd": "start", "names": ["writer"]})
        for msg in ctl.lines():
            if msg.get("event") == "transition" and msg["name"] == "writer":
                if msg["to"] == "EXITED":
                    exited = msg["since"]
                    break
                if msg["to"] in ("FATAL", "BACKOFF"):
                    die(f"the writer failed under holden: {msg}")
            elif msg.get("ok") is False:
                die(f"holden refused a request: {msg}")
        cpu = (on_cpu_ns(holden.pid) - cpu0) / 1e9
        ctl.close()
    finally:
        holden.send_signal(signal.SIGTERM)
        try:
            code = holden.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holden.kill()
            holden.wait()
            die("holden did not stop within 10 s of SIGTERM")
    if code != 0:
        die(f"holden exited with {code}")
    start, end = read_stamps(stamps)
    names = sorted(
        (n for n in os.listdir(dir_) if n == "out.log" or n.startswith("out.log.")),
        key=lambda n: -int(n.rsplit(".", 1)[1]) if n != "out.log" else 0,
    )
    return max(end, exited) - start, cpu, [os.path.join(dir_, n) for n in names]


def check(args, files, case, reference):
    """Every byte once, in order: the files, oldest first, are what the writer wrote."""
    total = args.mib << 20
    sizes = [os.path.getsize(f) for f in files]
    if case == "timestamps":
        want = total // LINE * (STAMP + LINE)
        if sum(sizes) != want or any(s % (STAMP + LINE) for s in sizes):
            die(f"timestamps: {sizes} bytes, want {want} in whole lines")
        with open(files[0], "rb") as f:
            first = f.readline()
        if len(first) != STAMP + LINE or first[STAMP - 1 : STAMP] != b" " or b"T" not in first[:STAMP]:
            die(f"timestamps: the first line is {first[:60]!r}...")
        return
    if sum(sizes) != total:
        die(f"{case}: {sum(sizes)} bytes arrived, {total} were written")
    offset = 0
    for f, size in zip(files, sizes):
        # Every file holds whole lines (rotation falls between two) and equals the same
        # stretch of the reference: the writer's lines all look alike, so any stretch of
        # whole lines does.
        if size % LINE:
            die(f"{case}: {f} holds {size} bytes, not whole lines")
        r = subprocess.run(["cmp", "-s", "-n", str(size), f, reference])
        if r.returncode != 0:
            die(f"{case}: {f} differs from what the writer wrote (bytes {offset}..{offset + size})")
        offset += size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--holden", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--writers", default="line,stdio,block")
    ap.add_argument("--cases", default=",".join(CASES), help="direct is always run: the ratios need it")
    ap.add_argument("--dir", help="scratch folder (default: a new one under $TMPDIR)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    writers = args.writers.split(",")
    cases = ["direct"] + [c for c in args.cases.split(",") if c != "direct"]
    for c in cases:
        if c not in CASES:
            die(f"unknown case {c!r}: pick from {', '.join(CASES)}")
    for w in writers:
        if w not in WRITERS:
            die(f"unknown writer {w!r}: pick from {', '.join(WRITERS)}")

    scratch = tempfile.mkdtemp(prefix="holden-bench-logs.", dir=args.dir)
    try:
        lines_bin = os.path.join(scratch, "lines")
        subprocess.run(["cc", "-O2", "-o", lines_bin, os.path.join(BENCH, "lines.c")], check=True)
        reference = os.path.join(scratch, "reference")
        with open(reference, "wb") as f:
            subprocess.run([lines_bin, "block", str(args.mib), os.path.join(scratch, "s")], stdout=f, check=True)
        work = os.path.join(scratch, "run")
        results = {w: {c: [] for c in cases} for w in writers}
        for r in range(args.rounds):
            for w in writers:
                for c in cases:
                    if c == "direct":
                        took, cpu, files = direct(args, lines_bin, w, work)
                    elif c == "relay":
                        took, cpu, files = relay(args, lines_bin, w, work)
                    else:
                        took, cpu, files = captured(args, lines_bin, w, work, c)
                    check(args, files, c, reference)
                    results[w][c].append((took, cpu))
            took = " ".join(f"{w}/{c} {results[w][c][-1][0]:.3f}" for w in writers for c in cases)
            print(f"round {r + 1}/{args.rounds}: {took}", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    mib = args.mib
    load = open("/proc/loadavg").read().split()[0]
    print(
        f"{mib} MiB of {LINE}-byte lines; medians of {args.rounds} rounds (best in brackets); "
        f"{os.cpu_count()} CPUs, load {load} at the end"
    )
    print(f"{'writer':<7} {'case':<11} {'time':>17} {'MiB/s':>7} {'of direct':>10} {'holden CPU':>19}")
    table = {}
    for w in writers:
        direct_times = [t for t, _ in results[w]["direct"]]
        for c in cases:
            times = [t for t, _ in results[w][c]]
            med = statistics.median(times)
            cpus = [u for _, u in results[w][c] if u is not None]
            row = {
                "seconds": med,
                "best": min(times),
                "mib_per_s": mib / med,
                "of_direct": statistics.median(d / t for d, t in zip(direct_times, times)),
                "holden_cpu_s": statistics.median(cpus) if cpus else None,
            }
            table.setdefault(w, {})[c] = row
            cpu = "" if not cpus else f"{row['holden_cpu_s']:.3f} s ({100 * row['holden_cpu_s'] / med:.0f}%)"
            ratio = "" if c == "direct" else f"{100 * row['of_direct']:.0f}%"
            print(
                f"{w:<7} {c:<11} {med:7.3f} s ({min(times):6.3f}) {mib / med:7.0f} {ratio:>10} {cpu:>19}"
            )
    print("writers: " + "; ".join(f"{w} = {WRITERS[w]}" for w in writers))
    if args.json:
        print(json.dumps({"mib": mib, "rounds": args.rounds, "results": table}))


if __name__ == "__main__":
    main()
