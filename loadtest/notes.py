"""What the report says about a missed target: why, and what would move it.

The reasons come from profiles and measurements of this gateway on the reference machine
(2 cores); the profile printed below each report is this run's own evidence.
"""

from __future__ import annotations

from .report import Report

WHY: dict[str, str] = {
    "joins": (
        "The web process is CPU-bound in Python. Joins made in the same event-loop turn share "
        "one round trip (`EVALSHA join` with the concert's key prefix as its one key, the token "
        "index `SET`, and `SADD wr:concerts` once per batch; `waitingroom/scripts.py: "
        "AutoPipeline`), packed by the gateway and written on connections it keeps. What "
        "remains is aiohttp's own request handling and the writing of answers (about half the "
        "samples), the round trip (about a fifth, much of it the `send` to Redis), the view's "
        "and the middlewares' Python. The bare handler does no I/O, so 0.5× of it needs a join "
        "that costs about two bare requests. What would move it: fewer middleware layers, a "
        "token that names its concert (no index `SET` per join), and more web processes (one "
        "per core)."),
    "scale-out": (
        "On 2 cores, two web processes share them with wrk, redis-server and the admitter; the "
        "bare process's own 2-vs-1 ratio, measured in the same run, is the machine's ceiling. "
        "When the gateway's ratio is close to the bare one, the miss is the machine, not the "
        "gateway; 1.7× needs at least one more free core per added web process."),
    "admission": (
        "Admission is timed by Redis's clock and keeps ticks' jitter (the budget cap leaves room "
        "for a late tick); a miss means admitter ticks were delayed by more than half an "
        "interval, on a machine this busy. The admitted events in the JSON beside the report "
        "show which ticks."),
    "admission delay": (
        "Whole admitted events arrive late together when the web process's event loop stalls. "
        "The position tick yields every 256 sockets, and full garbage collections run only on "
        "a schedule (`GC_FULL_INTERVAL`); the web process logs any collection over 100 ms and "
        "`/metrics` has `waitingroom_gc_pause_seconds`: look there first."),
    "fan-out": (
        "The hub's per-frame work beyond the bare loop (position arithmetic with `bisect`, "
        "`RateInfo.eta`, building a `PositionFrame`, the slow-client check) is in the profile "
        "below; fewer Python calls per waiter (encode once per distinct position/ETA, skip the "
        "struct) would move it."),
}


def explain(report: Report, missed: set[str]) -> None:
    if not missed:
        report.note("Targets", "Every target was met in this run.")
        return
    lines = [f"- **{m}**: {WHY.get(m, 'see the profile below.')}" for m in sorted(missed)]
    report.note("Missed targets: why, and what would move them", "\n".join(lines))
