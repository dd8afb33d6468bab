"""The Markdown report: one table of figures, each beside its same-run ceiling and its target."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from pathlib import Path
from typing import Any

from .profile import Profile

REPORTS = Path(__file__).parent / "reports"


@dataclasses.dataclass(slots=True)
class Row:
    section: str
    figure: str
    gateway: str
    ceiling: str
    ratio: str
    target: str
    result: str  # "met", "missed" or "—"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**missed**")


def fmt(x: float | None, unit: str = "", digits: int = 0) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}{unit}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}×"


@dataclasses.dataclass(slots=True)
class Report:
    title: str
    mode: str
    rows: list[Row] = dataclasses.field(default_factory=list)
    sections: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    profiles: list[tuple[str, Profile]] = dataclasses.field(default_factory=list)
    chart: str | None = None
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, *cells: str) -> None:
        self.rows.append(Row(*cells))

    def note(self, heading: str, text: str) -> None:
        self.sections.append((heading, text))

    def render(self) -> str:
        load = os.getloadavg()
        out = [f"# {self.title}", "",
               f"{self.mode}. Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. "
               "Every ceiling was measured in this same run with the same client; the ratio is "
               "the figure to compare between runs on a shared, noisy machine.", ""]
        for k, v in self.facts.items():
            out.append(f"- {k}: {v}")
        out += ["", "| section | figure | gateway | ceiling (same run) | ratio | target | result |",
                "| --- | --- | ---: | ---: | ---: | --- | --- |"]
        for r in self.rows:
            out.append(f"| {r.section} | {r.figure} | {r.gateway} | {r.ceiling} | {r.ratio} | "
                       f"{r.target} | {r.result} |")
        if self.chart:
            out += ["", f"![queue length, admitted per second and open sockets]({self.chart})"]
        for heading, text in self.sections:
            out += ["", f"## {heading}", "", text.strip()]
        for what, p in self.profiles:
            out += ["", f"### Profile: {what}", ""]
            if p.error:
                out.append(f"py-spy failed: `{p.error.strip()[:300]}`")
                continue
            out += [f"{p.samples} samples (py-spy, 200 Hz). Hottest leaf functions (self time):",
                    "", "| share | function |", "| ---: | --- |"]
            out += [f"| {s:.1%} | `{f}` |" for f, s in p.self_top]
            out += ["", "On the stack (inclusive), below the event loop:", "",
                    "| share | function |", "| ---: | --- |"]
            skip = ("<module>", "_run_code", "_run_module_as_main", "main (", "run (uvloop",
                    "run_until_complete", "_until_signalled", "serve_web", "run_app")
            out += [f"| {s:.1%} | `{f}` |" for f, s in p.incl_top
                    if not any(f.startswith(x) or x in f for x in skip)][:12]
            if p.raw_path:
                out.append(f"\nCollapsed stacks: `{p.raw_path}` (flamegraph.pl or speedscope).")
        return "\n".join(out) + "\n"


def say(text: str) -> None:
    """Progress, on stderr (stdout carries the report)."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


class Table:
    """Rows of figure | ours | ceiling | ratio | target | result."""

    def __init__(self, title: str, head: tuple[str, ...] = ("figure", "ours", "ceiling (same run)",
                                                            "ratio", "target", "result")) -> None:
        self.title, self.head, self.rows = title, head, list[tuple[str, ...]]()

    def add(self, *cells: str) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.head) + " |",
               "| " + " | ".join("---" for _ in self.head) + " |"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(out)
