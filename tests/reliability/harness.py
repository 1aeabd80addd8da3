"""Runs N start/stop cycles of a manifest in ONE interpreter, so devup's own open files and
memory can be compared across cycles. Prints one JSON line per cycle:
{"cycle", "code", "fds", "rss", "zombies", "children", "start_s", "stop_s"}.

Usage: python harness.py MANIFEST CYCLES
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path

import psutil

from orchestrator.config.environ import build_env
from orchestrator.config.manifest import load_manifest, start_order
from orchestrator.output.printer import Printer
from orchestrator.output.writer import TerminalWriter
from orchestrator.ports.allocation import allocate_ports
from orchestrator.run.states import State
from orchestrator.run.supervisor import Supervisor
from orchestrator.system import reaper


def main() -> None:
    manifest = load_manifest(Path(sys.argv[1]))
    cycles = int(sys.argv[2])
    order = start_order(manifest)
    plan = allocate_ports(manifest, list(manifest.services))
    envs = {name: build_env(manifest, plan.ports, name, color=False)[0] for name in order}
    reaper.become_subreaper()
    devnull = os.open(os.devnull, os.O_WRONLY)
    writer = TerminalWriter(devnull)
    printer = Printer(order, writer.write, color=False)
    me = psutil.Process()
    for cycle in range(1, cycles + 1):
        sup = Supervisor(manifest, order, dict(plan.ports), envs, printer, watching=False)
        began = time.monotonic()
        marks: dict[str, float] = {}

        def stop_when_up(sup: Supervisor = sup, marks: dict[str, float] = marks) -> None:
            if all(s.state in (State.READY, State.RUNNING) for s in sup.services.values()):
                marks["up"] = time.monotonic()
                sup.shutdown(0)
            elif not sup.shutting_down:
                sup.timers.call_later(0.01, stop_when_up)

        sup.timers.call_later(0.01, stop_when_up)
        code = sup.run()
        reaper.stop_adopted(manifest.settings.stop_timeout_s, printer.say)
        ended = time.monotonic()
        gc.collect()
        children = me.children()
        zombies = sum(1 for c in children if c.status() == psutil.STATUS_ZOMBIE)
        for child in children:
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{child.pid}/stat").read_text().strip()
                print(f"cycle {cycle}: child left: {stat}", file=sys.stderr, flush=True)
        row = {
            "cycle": cycle,
            "code": code,
            "fds": len(os.listdir("/proc/self/fd")),
            "rss": me.memory_info().rss,
            "zombies": zombies,
            "children": len(children),
            "start_s": round(marks.get("up", ended) - began, 3),
            "stop_s": round(ended - marks.get("up", ended), 3),
            "ready_s": {n: s.spawn.ready_after_s for n, s in sup.services.items()},
        }
        print(json.dumps(row), flush=True)
    writer.close()


if __name__ == "__main__":
    main()
