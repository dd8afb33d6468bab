"""The HTTP load client: wrk (C, one thread per core asked) with a Lua script that joins a queue
with a distinct user id per request, and prints its figures as JSON."""

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


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors plus 4xx/5xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


async def run(url: str, concert_id: int, *, base_user: int, seconds: float, connections: int,
              threads: int = 1) -> HttpResult:
    """POST joins to url for seconds at a fixed number of open connections."""
    path = f"/api/v1/concerts/{concert_id}/queue"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(SCRIPT % {"base": base_user, "path": path})
        script = f.name
    try:
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", "5s", "-s", script, url.rstrip("/") + path,
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
                      d["p99_us"] / 1e3, d["max_us"] / 1e3, errors)
