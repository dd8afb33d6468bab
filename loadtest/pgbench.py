"""pgbench, the SQL ceiling: a script of plain statements run by C clients, prepared like asyncpg's."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    tps: float
    transactions: int
    latency_ms: float  # mean, per transaction
    statements: list[tuple[float, str]]  # mean latency (ms) and text of each statement (-r)


def binary() -> str:
    """pgbench of the server's own major version when the pgserver wheel ships one."""
    import pgserver

    shipped = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    for candidate in (os.environ.get("PGBENCH"), str(shipped), shutil.which("pgbench"),
                      "/usr/lib/postgresql/15/bin/pgbench"):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("pgbench not found: apt-get install postgresql-client, or set PGBENCH")


def run(dsn: str, script: Path, clients: int, seconds: float) -> Result:
    """Run script from `clients` connections for `seconds` (prepared statements)."""
    parts = urlsplit(dsn)
    env = dict(os.environ)
    args = [binary(), "-n", "-r", "-M", "prepared", "-f", str(script), "-c", str(clients),
            "-j", str(min(clients, 2)), "-T", str(max(1, round(seconds)))]
    # pgserver URLs name the socket folder in ?host=; pgbench wants it as -h.
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    host = query.get("host") or parts.hostname
    if host:
        args += ["-h", host]
    if parts.port:
        args += ["-p", str(parts.port)]
    if parts.username:
        args += ["-U", parts.username]
    if parts.password:
        env["PGPASSWORD"] = parts.password
    args.append(parts.path.lstrip("/"))
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=False,
                         timeout=seconds + 60)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if out.returncode != 0 or tps is None or done is None or latency is None or (
            failed and int(failed[1]) > 0):
        raise RuntimeError(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    statements = []
    listing = out.stdout.partition("statement latencies in milliseconds")[2]
    for line in listing.splitlines()[1:]:
        m = re.match(r"\s+([\d.]+)\s+(?:\d+\s+)?(.*)", line)
        if m:
            statements.append((float(m[1]), m[2]))
    return Result(float(tps[1]), int(done[1]), float(latency[1]), statements)
