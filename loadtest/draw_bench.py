"""The opening's draw at scale: how long it holds Redis, beside a ceiling from the same run.

    python -m loadtest.draw_bench [--tokens 100000]

Fills one concert's pre-queue with that many tokens (through the real join script) on a private
throwaway redis-server, opens it, and times: the admitter's HMAC and sort in Python, and the
draw script (lua/draw.lua), which Redis runs as one command, so nothing else runs meanwhile.
The ceiling is a bare Lua script that does the least any placement must (a ticket number, a
queue entry and a record per token, in the drawn order, written 500 per command as the draw
does) on the same server in the same run;
the ratio says what our checks cost on top. Also the size of the published draw, plain and
gzipped.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import time

from redis.asyncio import Redis

from waitingroom.app import redis_client
from waitingroom.draw import new_seed, ordered
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Queues
from waitingroom.servers import throwaway_redis
from waitingroom.settings import Settings

CEILING = """
local CHUNK = 500
local first = redis.call('INCRBY', KEYS[1], #ARGV) - #ARGV + 1
for from = 1, #ARGV, CHUNK do
  local z, h = {}, {}
  for j = from, math.min(#ARGV, from + CHUNK - 1) do
    z[#z + 1] = first + j - 1
    z[#z + 1] = ARGV[j]
    h[#h + 1] = ARGV[j]
    h[#h + 1] = first + j - 1
  end
  redis.call('ZADD', KEYS[2], unpack(z))
  redis.call('HSET', KEYS[3], unpack(h))
end
return #ARGV
"""


async def bench(redis: Redis, url: str, tokens: int) -> dict[str, float]:
    settings = Settings(database_url="postgresql://unused", redis_url="redis://unused")
    queues = Queues(redis, settings)
    cid = 1
    await queues.schedule(cid, await queues.clock_ms() + 3_600_000)
    for start in range(0, tokens, 2000):
        await asyncio.gather(*(queues.join(cid, u)
                               for u in range(start + 1, min(tokens, start + 2000) + 1)))
    members = await queues.pre_queue(cid)
    assert len(members) == tokens
    opens = await queues.clock_ms()
    await queues.schedule(cid, opens)
    seed, _ = new_seed()

    started = time.perf_counter()
    drawn = ordered(seed, members)
    python_s = time.perf_counter() - started
    started = time.perf_counter()
    # A client without retries: a retried draw would find nothing left to draw.
    plain = Redis.from_url(url, socket_timeout=300)
    status = await Queues(plain, settings).draw(cid, opens, drawn)
    await plain.aclose()
    assert status == 1, status
    assert await redis.zcount(ConcertKeys(cid).queue, 1, "+inf") == tokens
    draw_s = time.perf_counter() - started

    k = ConcertKeys(2)
    ceiling = redis.register_script(CEILING)
    started = time.perf_counter()
    await ceiling(keys=[k.seq, k.queue, k.tokens], args=[t for t, _ in drawn])
    ceiling_s = time.perf_counter() - started

    published = json.dumps({"concert_id": cid, "hmacs": [h for _, h in drawn]}).encode()
    return {"tokens": tokens, "hmac_and_sort_ms": python_s * 1000, "draw_script_ms": draw_s * 1000,
            "ceiling_ms": ceiling_s * 1000, "ratio_to_ceiling": draw_s / ceiling_s,
            "published_mb": len(published) / 1e6,
            "published_gzip_mb": len(gzip.compress(published, 6)) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=100_000)
    args = parser.parse_args()
    with throwaway_redis() as url:
        async def run() -> dict[str, float]:
            redis = redis_client(url, 50)
            assert isinstance(redis, Redis)
            try:
                return await bench(redis, url, args.tokens)
            finally:
                await redis.aclose()

        result = asyncio.run(run())
    for name, value in result.items():
        print(f"{name:>20}: {value:,.2f}")


if __name__ == "__main__":
    main()
