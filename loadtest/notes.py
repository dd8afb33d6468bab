"""What the report says about a missed target: why, and what would move it."""

from __future__ import annotations

from .report import Report

WHY: dict[str, str] = {}


def explain(report: Report, missed: set[str]) -> None:
    if not missed:
        report.note("Targets", "Every target was met in this run.")
        return
    lines = [f"- **{m}**: {WHY.get(m, 'see the profile below.')}" for m in sorted(missed)]
    report.note("Missed targets: why, and what would move them", "\n".join(lines))
