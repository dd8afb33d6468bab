"""What the report says about a missed target: why, and what would move it.

The reasons come from profiles and measurements of this gateway on the reference machine
(2 cores); the profile printed below each report is this run's own evidence.
"""

from __future__ import annotations

from .report import Report

WHY: dict[str, str] = {
    "joins": (
        "The web process is CPU-bound in Python (about 90 % of a core, redis-server about 15 %). "
        "A join is one Redis round trip now (`EVALSHA join` with the index `SET` and `SADD "
        "wr:concerts` in one pipeline, `waitingroom/scripts.py: pipelined`), which took joins from "
        "about 2,800/s to about 4,100/s on this machine; what remains is redis-py's pipeline "
        "machinery (`Pipeline.execute` about 30 % of samples inclusive: command packing, pool "
        "checkout, RESP parsing, `send`) beside aiohttp's request handling. The bare handler does "
        "no I/O, so 0.5× of it needs a join that costs about one bare request. What would move "
        "it: the hiredis parser (`redis[hiredis]`), `SADD wr:concerts` once per process per "
        "concert rather than per join, a plain `Redis.evalsha` without the pipeline when the "
        "index write moves into the script (single-Redis deployments), and more web processes."),
    "scale-out": (
        "On 2 cores, two web processes share them with wrk, redis-server and the admitter; the "
        "bare process's own 2-vs-1 ratio, measured in the same run, is the machine's ceiling. "
        "When the gateway's ratio is close to the bare one, the miss is the machine, not the "
        "gateway; 1.7× needs at least one more free core per added web process."),
    "admission": (
        "`waitingroom/lua/admit.lua` caps the budget at `rate + 1` every tick "
        "(`budget = math.min(budget + rate * elapsed, rate + 1)`). When an admitter tick runs late "
        "(it first runs the booking sweep on PostgreSQL, and the machine is busy), `rate × "
        "elapsed` passes the cap and the surplus is thrown away; the next, early tick then admits "
        "fewer. The admitted events show it: ticks after a long gap admit exactly rate + 1 and "
        "the following ones fewer than rate. What would move it: cap only an idle or paused "
        "queue (no banking), or cap at about 1.5 × rate; and run the booking sweep after the "
        "admission step, or in its own loop, so admission is not timed by PostgreSQL."),
    "admission delay": (
        "Most admitted frames arrive within a few ms, but whole events arrive late together: the "
        "web process's event loop is busy elsewhere and the pub/sub listener cannot run. The "
        "position tick sends to every waiting socket in one pass without yielding (`Hub.tick`, "
        "`await self.position(...)` per waiter; `send_str` only yields when a socket's buffer "
        "is full), so at 19,000 sockets an admission arriving mid-tick waits for the rest of the "
        "tick (hundreds of ms), and the slowest ticks (see 'slowest' above) are longer still. "
        "What would move it: yield to the loop every few hundred sends in the tick "
        "(`await asyncio.sleep(0)`), dispatch admissions ahead of position updates, split the "
        "sends over the tick interval, or hold fewer sockets per process."),
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
