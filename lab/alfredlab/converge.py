"""Convergence measurement: poll `alfred -r TYPE` on every node until it holds
every expected record (or a deadline passes).

How time is measured: the caller passes t0 (time.monotonic() right after the
last `alfred -s` returned).  Each node is polled by its own thread, one
`-r` per expected type per round, rounds `interval` apart.  A node's
convergence time is the moment the *first fully matching* `-r` answer was
received, minus t0 (an upper bound; resolution = interval + the duration of
one `-r`).  Extra records (not expected) are ignored; a record whose payload
differs from the expected bytes does not count.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from .lab import DaemonCrashed, Node
from .records import ParseError, parse_records
from .util import LabError


@dataclass
class NodeResult:
    node: str
    label: str
    converged_s: float | None = None
    polls: int = 0
    have: int = 0           # matching records in the last answer
    want: int = 0
    errors: list[str] = field(default_factory=list)
    crashed: str | None = None
    last_view: dict = field(default_factory=dict)  # type -> {mac: bytes}


@dataclass
class ConvergenceResult:
    nodes: list[NodeResult]
    deadline_s: float
    elapsed_s: float

    @property
    def fraction(self) -> float:
        if not self.nodes:
            return 1.0
        return sum(1 for r in self.nodes if r.converged_s is not None) / len(self.nodes)

    @property
    def all_converged(self) -> bool:
        return all(r.converged_s is not None for r in self.nodes)

    @property
    def max_s(self) -> float | None:
        ts = [r.converged_s for r in self.nodes if r.converged_s is not None]
        return max(ts) if ts and self.all_converged else None

    def record_fraction(self) -> float:
        want = sum(r.want for r in self.nodes)
        return (sum(r.have for r in self.nodes) / want) if want else 1.0

    def to_json(self, **extra) -> dict:
        d = {
            "nodes": len(self.nodes),
            "converged_nodes": sum(1 for r in self.nodes if r.converged_s is not None),
            "fraction": round(self.fraction, 4),
            "record_fraction": round(self.record_fraction(), 4),
            "max_s": None if self.max_s is None else round(self.max_s, 3),
            "deadline_s": self.deadline_s,
            "per_node": {r.node: (None if r.converged_s is None else round(r.converged_s, 3))
                         for r in self.nodes},
            "crashed": [r.node for r in self.nodes if r.crashed],
        }
        d.update(extra)
        return d

    def result_line(self, **extra) -> str:
        return "RESULT " + json.dumps(self.to_json(**extra), sort_keys=True)

    def table(self) -> str:
        rows = [("node", "daemon", "records", "converged after", "polls", "notes")]
        for r in self.nodes:
            t = "-" if r.converged_s is None else f"{r.converged_s:7.3f} s"
            notes = r.crashed or ("; ".join(r.errors[-1:]) if r.errors else "")
            rows.append((r.node, r.label, f"{r.have}/{r.want}", t, str(r.polls), notes[:60]))
        w = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * x for x in w))
        ms = self.max_s
        lines.append(f"converged: {self.fraction * 100:.0f}% of nodes, "
                     f"{self.record_fraction() * 100:.1f}% of records; "
                     + (f"slowest node {ms:.3f} s" if ms is not None else
                        f"NOT converged within {self.deadline_s:g} s"))
        return "\n".join(lines)


def wait_converged(nodes: list[Node], expected: dict[int, dict[str, bytes]], *, t0: float,
                   deadline_s: float, interval: float = 0.1, client_bin: str | None = None,
                   per_call_timeout: float = 15.0) -> ConvergenceResult:
    """expected: {type: {mac: payload}}; every node must hold all of them."""
    want_total = sum(len(v) for v in expected.values())
    results = {nd.name: NodeResult(nd.name, nd.label, want=want_total) for nd in nodes}
    end = t0 + deadline_s

    def worker(nd: Node):
        res = results[nd.name]
        pending = {t: dict(v) for t, v in expected.items()}
        matched = {t: 0 for t in expected}
        while time.monotonic() < end:
            for t in list(pending):
                try:
                    cp = nd.client(["-r", str(t)], bin=client_bin,
                                   timeout=max(1.0, min(per_call_timeout, end - time.monotonic() + 1)))
                    res.polls += 1
                    if cp.returncode != 0:
                        res.errors.append(f"-r {t}: exit {cp.returncode} "
                                          f"{cp.stderr.decode(errors='replace').strip()}")
                        continue
                    view = parse_records(cp.stdout)
                except (LabError, ParseError) as e:
                    res.errors.append(str(e).splitlines()[0])
                    view = None
                if view is None:
                    continue
                res.last_view[t] = view
                matched[t] = sum(1 for mac, data in expected[t].items() if view.get(mac) == data)
                if matched[t] == len(expected[t]):
                    del pending[t]
            res.have = sum(matched.values())
            if not pending:
                res.converged_s = time.monotonic() - t0
                return
            if nd.proc is not None and nd.proc.poll() is not None:
                try:
                    nd.check()
                except DaemonCrashed as e:
                    res.crashed = str(e).splitlines()[0]
                return
            time.sleep(interval)

    threads = [threading.Thread(target=worker, args=(nd,), daemon=True) for nd in nodes]
    for th in threads:
        th.start()
    for th in threads:
        th.join(deadline_s + per_call_timeout + 5)
    return ConvergenceResult([results[nd.name] for nd in nodes], deadline_s, time.monotonic() - t0)
