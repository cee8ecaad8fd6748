#!/usr/bin/env python3
"""Issue 13's figures as one markdown table, one column per run (bench/issue13.sh --table).

    python3 bench/issue13_table.py RUN [RUN...]

A RUN is a folder written by bench/issue13.sh (run.json, bench-cgroups.json, bench-scale.json,
peers/peers-*.json, vm-*.log; whatever is missing shows as n/a), or a results JSON of the peer
harness (../shared/bench/run.py): a column with the peer figures only. Each figure is the
median over the run's repetitions; a verdict is printed beside each figure that has a target.
Timings are figures: nothing here fails on a missed target. Python 3 standard library only.
"""

import json
import re
import statistics
import sys
from pathlib import Path


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def dig(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


# The VM scenario's FIGURE lines (tests/vm/scenarios/respawn/check.sh).
VM_FIGURES = {
    "holden": re.compile(r"FIGURE: respawn p50, .*?: ([0-9.]+) ms"),
    "floor": re.compile(r"FIGURE: floor p50, .*?: ([0-9.]+) ms"),
    "ratio": re.compile(r"FIGURE: respawn / floor = ([0-9.]+)x"),
}


class Run:
    """One column: what one bench/issue13.sh run (or one peer-harness file) measured."""

    def __init__(self, arg):
        p = Path(arg)
        self.meta, self.bench, self.scale, self.peers, self.vm = {}, None, None, None, []
        if p.is_dir():
            self.meta = load_json(p / "run.json") or {}
            self.bench = load_json(p / "bench-cgroups.json")
            self.scale = load_json(p / "bench-scale.json")
            found = sorted((p / "peers").glob("*.json")) if (p / "peers").is_dir() else []
            self.peers = load_json(found[-1]) if found else None
            for log in sorted(p.glob("vm-*.log")):
                text = log.read_text(errors="replace")
                rep = {k: float(m.group(1)) for k, rx in VM_FIGURES.items() if (m := rx.search(text))}
                if rep:
                    self.vm.append(rep)
        else:
            self.peers = load_json(p)
            if self.peers is None:
                sys.exit(f"issue13_table: {arg} is neither a run folder nor a JSON file")
        version = self.meta.get("version") or dig(self.peers, "meta", "versions", "holden") or "holden ?"
        m = re.search(r"\(([^)]+)\)", version)
        self.label = (m.group(1) if m else version) + (" (quick)" if self.meta.get("quick") else "")
        when = self.meta.get("started") or dig(self.peers, "meta", "started") or "?"
        reps = self.meta.get("reps") or dig(self.peers, "meta", "reps") or "?"
        load = self.meta.get("load_at_start")
        self.about = f"{self.label}: {version}, {when}, {reps} rep(s)" + (f", load at start {load}" if load else "")

    def bench_med(self, doc, scenario, *keys):
        reps = dig(doc, "results", scenario) or []
        return median([dig(r, *keys) for r in reps])

    def cg(self, scenario, *keys):
        return self.bench_med(self.bench, scenario, *keys)

    def sc(self, *keys):
        return self.bench_med(self.scale, "scale", *keys)

    def peer(self, scenario, peer, key):
        return dig(self.peers, "summary", scenario, peer, key)

    def vm_med(self, key):
        return median([r.get(key) for r in self.vm])

    def scale_sizes(self):
        reps = dig(self.scale, "results", "scale") or []
        return reps[0].get("sizes", []) if reps else []


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def fmt(v, unit="", digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 100:
            digits = 0
        v = f"{v:.{digits}f}"
    return f"{v}{unit}"


def cell(v, unit="", ok=None, digits=2):
    text = fmt(v, unit, digits)
    if v is None or ok is None:
        return text
    return f"{text} {'meets' if ok else '**MISSES**'}"


def rows_for(run):
    """(section, figure, target, cell) for one run; the same rows for every run."""
    r = run
    out = []

    def add(section, figure, target, value, unit="", ok=None, digits=2):
        out.append((section, figure, target, cell(value, unit, ok if value is not None else None, digits)))

    # --- the peer harness: cgroups on (its holden adapter's default), this machine ---------------
    sec = "peer harness (cgroups on)"
    hr, base, runit = r.peer("respawn", "holden", "p50_ms"), r.peer("respawn", "baseline", "p50_ms"), \
        r.peer("respawn", "runit", "p50_ms")
    x = ratio(hr, base)
    add(sec, "respawn exit→start p50, holden", "≤ 2× floor and < runit", hr, " ms",
        None if x is None or runit is None else (x <= 2 and hr < runit))
    add(sec, "  holden / harness floor", "≤ 2×", x, "×", None if x is None else x <= 2)
    add(sec, "  harness floor (posix_spawn + waitpid)", "", base, " ms")
    for p in ("runit", "s6", "supervisord"):
        add(sec, f"  {p}", "", r.peer("respawn", p, "p50_ms"), " ms")
    for p in ("holden", "runit", "s6", "supervisord"):
        add(sec, f"startup 200 all up, {p}" if p == "holden" else f"  {p}", "", r.peer("startup", p, "all_up_ms"),
            " ms")

    # --- the VM: pure cgroup v2 --------------------------------------------------------------------
    sec = "VM, pure v2 (tests/vm respawn)"
    add(sec, "respawn p50, lived 1 s, holden", "", r.vm_med("holden"), " ms")
    add(sec, "  fork+exec+waitpid floor p50", "", r.vm_med("floor"), " ms")
    vx = r.vm_med("ratio")
    add(sec, "  holden / floor (median of runs)", "≤ 1.5×", vx, "×", None if vx is None else vx <= 1.5)

    # --- holden_bench, cgroups on ------------------------------------------------------------------
    sec = "holden_bench, cgroups on"
    up, loop = r.cg("startup", "all_up_ms"), r.cg("startup", "floor", "all_up_ms")
    sx = ratio(up, loop)
    add(sec, "start 200 programs, all up", "", up, " ms")
    add(sec, "  posix_spawn loop of the same 200", "", loop, " ms")
    add(sec, "  holden / loop", "≤ 1.5×", sx, "×", None if sx is None else sx <= 1.5)
    add(sec, "  first program up", "", r.cg("startup", "first_ms"), " ms")
    rp, rf = r.cg("respawn", "p50_ms"), r.cg("respawn", "floor", "p50_ms")
    add(sec, "respawn p50, lived 0.6 s", "", rp, " ms")
    add(sec, "  posix_spawn floor, living as long", "", rf, " ms")
    rx = ratio(rp, rf)
    add(sec, "  holden / floor", "≤ 1.5× (holden_bench's)", rx, "×", None if rx is None else rx <= 1.5)
    wk = r.cg("idle", "wakeups_per_s")
    add(sec, "idle wakeups/s, 100 programs", "0", wk, "", None if wk is None else wk == 0)
    ww = r.cg("idle", "watch", "wakeups_per_s")
    add(sec, "  with a `watch` client", "0", ww, "", None if ww is None else ww == 0)
    add(sec, "  CPU ms/s", "", r.cg("idle", "cpu_ms_per_s"), "")
    r1, r200 = r.cg("memory", "rss_kib_n1"), r.cg("memory", "rss_kib_n200")
    add(sec, "RSS, 1 program", "", None if r1 is None else r1 / 1024, " MiB")
    add(sec, "RSS, 200 programs", "< 4 MiB", None if r200 is None else r200 / 1024, " MiB",
        None if r200 is None else r200 < 4 * 1024)

    # --- holden_bench scale, cgroups off -----------------------------------------------------------
    sec = "holden_bench scale, cgroups off"
    sizes = r.scale_sizes() or [1000, 5000]
    for n in sizes:
        k = str(n)
        add(sec, f"start {n} programs, all up", "", r.sc(k, "all_up_ms"), " ms")
        add(sec, f"  posix_spawn loop, {n}", "", r.sc(k, "floor", "all_up_ms"), " ms")
        rss = r.sc(k, "rss_kib")
        add(sec, f"  RSS at {n}", "", None if rss is None else rss / 1024, " MiB")
        add(sec, f"  fds at {n}", "", r.sc(k, "fds"), "", digits=0)
        add(sec, f"  `holden status` at {n}", "", r.sc(k, "status_p50_ms"), " ms")
    lo, hi = sizes[0], sizes[-1]
    allowed = 1.1 * hi / lo
    gx = ratio(r.sc(str(hi), "all_up_ms"), r.sc(str(lo), "all_up_ms"))
    add(sec, f"{hi} / {lo} programs, holden", f"≤ {allowed:.1f}×", gx, "×", None if gx is None else gx <= allowed)
    add(sec, f"  {hi} / {lo}, posix_spawn loop", "", ratio(r.sc(str(hi), "floor", "all_up_ms"),
                                                             r.sc(str(lo), "floor", "all_up_ms")), "×")
    return out


def table(runs):
    per_run = [rows_for(r) for r in runs]
    lines = ["# Issue 13: figures", ""]
    lines += [f"- {r.about}" for r in runs]
    lines += ["", "| figure | target | " + " | ".join(r.label for r in runs) + " |",
              "|---|---|" + "---|" * len(runs)]
    section = None
    for i, (sec, figure, target, _) in enumerate(per_run[0]):
        if sec != section:
            section = sec
            lines.append(f"| **{sec}** | |" + " |" * len(runs))
        figure = "· " + figure[2:] if figure.startswith("  ") else figure
        lines.append(f"| {figure} | {target} | " + " | ".join(rows[i][3] for rows in per_run) + " |")
    return "\n".join(lines)


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    print(table([Run(a) for a in argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
