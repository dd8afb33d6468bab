"""The HTTP load client: wrk (C, one thread per core asked) with a Lua script that joins a queue
with a distinct user id per request, or sends requests from a list, and prints its figures as
JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

SCRIPT = """
local base = %(base)d
local path = "%(path)s"
local headers = {["Content-Type"] = "application/json"}
local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local counter = 0
function request()
  counter = counter + 1
  local uid = base + tid * 100000000 + counter
  -- %%.0f: plain concatenation would print a 15-digit id in exponent form, which is no integer.
  return wrk.format("POST", path, headers, string.format('{"user_id":%%.0f}', uid))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"max_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# Requests from a list, in turn (each one once while the list lasts); counts answers by status.
LIST_SCRIPT = """
local items = {%(items)s}
local reqs = {}
local threads = {}
statuses = {}  -- global: done() reads it from each thread

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, it in ipairs(items) do
    reqs[i] = wrk.format(it[1], it[2], it[3], it[4])
  end
end

local counter = 0
function request()
  counter = counter + 1
  return reqs[(counter - 1) %% #reqs + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
%(delay)s

function done(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do table.insert(parts, string.format('"%%d":%%d', k, v)) end
  end
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,' ..
    '"max_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,' ..
    '"statuses":{%%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ",")))
end
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors plus 4xx/5xx answers
    statuses: dict[int, int] = dataclasses.field(default_factory=dict)  # answers by status

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


async def run(url: str, concert_id: int, *, base_user: int, seconds: float, connections: int,
              threads: int = 1) -> HttpResult:
    """POST joins to url for seconds at a fixed number of open connections."""
    path = f"/api/v1/concerts/{concert_id}/queue"
    return await _run(SCRIPT % {"base": base_user, "path": path}, url.rstrip("/") + path,
                      seconds=seconds, connections=connections, threads=threads)


def _lua(text: str) -> str:
    assert "]==]" not in text
    return f"[==[{text}]==]"


async def run_list(url: str, requests: list[Request], *, seconds: float, connections: int,
                   pause_ms: int | None = None) -> HttpResult:
    """Send these requests in turn (from the first again once all are sent) for seconds at a
    fixed number of open connections, one wrk thread. With pause_ms, each connection waits a
    random 0 .. twice pause_ms before each request (pause_ms on average): clients that come back
    every so often rather than as fast as they can."""
    def item(r: Request) -> str:
        headers = ",".join(f"[ {_lua(k)} ]={_lua(v)}" for k, v in r.headers.items())
        body = _lua(r.body) if r.body is not None else "nil"
        return f"{{{_lua(r.method)},{_lua(r.path)},{{{headers}}},{body}}}"

    items = ",\n".join(map(item, requests))
    delay = (f"function delay() return math.random(0, {2 * pause_ms}) end"
             if pause_ms else "")
    return await _run(LIST_SCRIPT % {"items": items, "delay": delay},
                      url.rstrip("/") + requests[0].path,
                      seconds=seconds, connections=connections, threads=1)


async def _run(script_text: str, url: str, *, seconds: float, connections: int,
               threads: int) -> HttpResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script_text)
        script = f.name
    try:
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", "5s", "-s", script, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    finally:
        Path(script).unlink(missing_ok=True)
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{text[-2000:]}")
    d = json.loads(line[len("WRKJSON "):])
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return HttpResult(d["requests"], d["duration_us"] / 1e6, d["p50_us"] / 1e3, d["p90_us"] / 1e3,
                      d["p99_us"] / 1e3, d["max_us"] / 1e3, errors,
                      {int(k): v for k, v in d.get("statuses", {}).items()})
