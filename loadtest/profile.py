"""py-spy against a server process: a short recording, summed into its hottest functions."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import shutil
import sys
from pathlib import Path


@dataclasses.dataclass(slots=True)
class Profile:
    samples: int
    self_top: list[tuple[str, float]]  # function, share of samples where it is the leaf
    incl_top: list[tuple[str, float]]  # function, share of samples where it is on the stack
    raw_path: Path | None
    error: str | None = None


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def _name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    fn, _, rest = frame.partition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{fn} ({short})"


async def record(pid: int, seconds: float, out: Path, top: int = 12) -> Profile:
    exe = _py_spy()
    if exe is None:
        return Profile(0, [], [], None, "py-spy is not installed (pip install -e '.[load]')")
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "200",
        "--format", "raw", "--nonblocking", "--output", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    if proc.returncode or not out.exists():
        return Profile(0, [], [], None, text.decode(errors="replace")[-500:])
    leaf: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";")]
        total += n
        leaf[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return Profile(0, [], [], out, "no samples")
    return Profile(total, [(f, n / total) for f, n in leaf.most_common(top)],
                   [(f, n / total) for f, n in incl.most_common(top + 8)], out)
