"""Joining, rejoining, leaving and positions, straight against Redis."""

from __future__ import annotations

import asyncio
import uuid
from importlib import resources
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from booking.errors import TokenInvalid
from waitingroom import admission, keys, queue
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Queues
from waitingroom.scripts import AutoPipeline, pack
from waitingroom.settings import Settings
from waitingroom.sockets import ConcertView

# A concert id too large for a token to name: its tokens are found through the index.
INDEXED = 2**48 + 1


async def test_join_gives_increasing_positions(queues: Queues) -> None:
    tickets = [await queues.join(1, user) for user in range(1, 6)]
    assert [t.position for t in tickets] == [1, 2, 3, 4, 5]
    assert all(t.created and t.record.state == "WAITING" for t in tickets)
    assert len({t.token for t in tickets}) == 5


async def test_rejoin_returns_same_token_and_place(queues: Queues) -> None:
    first = await queues.join(1, 7)
    await queues.join(1, 8)
    again = await queues.join(1, 7)
    assert (again.token, again.position, again.created) == (first.token, 1, False)
    # Another concert is another queue.
    other = await queues.join(2, 7)
    assert other.token != first.token and other.created


async def test_concurrent_joins_of_one_user_give_one_token(queues: Queues) -> None:
    tickets = await asyncio.gather(*(queues.join(1, 99) for _ in range(50)))
    assert len({t.token for t in tickets}) == 1
    assert sum(t.created for t in tickets) == 1


async def test_concurrent_joins_get_distinct_exact_places(queues: Queues) -> None:
    tickets = await asyncio.gather(*(queues.join(1, user) for user in range(1, 501)))
    # Every joiner waits, so each has a place: a missing one leaves the list short.
    assert sorted(t.position for t in tickets if t.position is not None) == list(range(1, 501))


async def test_leave_expires_token_and_moves_those_behind(queues: Queues) -> None:
    _, b, c = [await queues.join(1, u) for u in (1, 2, 3)]
    await queues.end(b.token, "left")
    status = await queues.status(b.token)
    assert (status.record.state, status.record.reason) == ("EXPIRED", "left")
    assert (await queues.status(c.token)).position == 2
    # Leaving again changes nothing; rejoining after leaving is a new place at the back.
    await queues.end(b.token, "left")
    back = await queues.join(1, 2)
    assert back.token != b.token and back.position == 3
    # The user's entry names the new token now.
    again = await queues.join(1, 2)
    assert (again.token, again.created, again.position) == (back.token, False, 3)


async def test_a_user_whose_token_record_is_gone_gets_a_new_place(queues: Queues) -> None:
    first, _ = [await queues.join(1, u) for u in (1, 2)]
    k = ConcertKeys(1)
    await queues.redis.hdel(k.tokens, first.token)
    await queues.redis.zrem(k.queue, first.token)
    await queues.redis.zrem(k.seen, first.token)
    new = await queues.join(1, 1)
    assert new.token != first.token and new.created and new.position == 2
    assert await queues.redis.hget(ConcertKeys(1).users, "1") == new.token.encode()
    assert (await queues.join(1, 1)).token == new.token


@pytest.mark.parametrize("concert_id", [1, INDEXED])
async def test_ending_only_an_admitted_token_leaves_a_waiting_one_whole(
        queues: Queues, concert_id: int) -> None:
    waiting = await queues.join(concert_id, 1)
    _, before = await queues.end(waiting.token, "completed", only="AVAILABLE")
    assert before.state == "WAITING"
    assert (await queues.status(waiting.token)).position == 1
    if concert_id == INDEXED:
        # Its index keeps the life of a live token's, not the retention of an ended one's.
        index = keys.token_index(waiting.token)
        assert await queues.redis.ttl(index) > queues.settings.token_retention
        await queues.end(waiting.token, "left")
        assert 0 < await queues.redis.ttl(index) <= queues.settings.token_retention
    else:
        await queues.end(waiting.token, "left")
        assert await queues.redis.keys("wr:tk:*") == []
    assert (await queues.status(waiting.token)).record.state == "EXPIRED"


def test_a_token_names_its_concert() -> None:
    for concert_id in (1, 2, 77, 2**32 + 5, 2**48 - 1):
        token = queue.new_token(concert_id)
        parsed = uuid.UUID(token)
        assert str(parsed) == token and parsed.version == 8 and parsed.variant == uuid.RFC_4122
        assert queue.concert_named(token) == concert_id
    # The rest is random: tokens of one concert share their first 48 bits only.
    tokens = {queue.new_token(7) for _ in range(1000)}
    assert len(tokens) == 1000 and len({t[14:] for t in tokens}) == 1000
    # Too large an id: a random version 4 token, found through the index.
    for concert_id in (2**48, 2**63 - 1, 0):
        token = queue.new_token(concert_id)
        assert uuid.UUID(token).version == 4 and queue.concert_named(token) is None
    for junk in ("", "x" * 36, "00000000-0000-8000-8000-000000000000", "0000000g-0001-8000-8000-00",
                 "+0000001-0001-8000-8000-000000000000", "0000_001-0001-8000-8000-000000000000",
                 " 0000001-0001-8000-8000-000000000000"):
        assert queue.concert_named(junk) is None


async def test_a_forged_token_naming_a_concert_is_invalid(queues: Queues) -> None:
    real = await queues.join(3, 1)
    # Its concert's part kept, the random part made up: no such record, whatever it names.
    forged = real.token[:15] + ("0" if real.token[15] != "0" else "1") + real.token[16:]
    for token in (forged, queue.new_token(3), queue.new_token(4)):
        with pytest.raises(TokenInvalid):
            await queues.status(token)
        with pytest.raises(TokenInvalid):
            await queues.end(token, "left")
    assert (await queues.status(real.token)).position == 1


async def test_unknown_token_is_invalid(queues: Queues) -> None:
    with pytest.raises(TokenInvalid):
        await queues.status("8e0b7a2c-6a5d-4c1e-9d0f-3f1b2a4c5d6e")


async def test_local_positions_match_redis_with_departures(queues: Queues, pg: asyncpg.Pool) -> None:
    """The local arithmetic (ticket - cursor - departed) equals ZCOUNT for every waiter."""
    await queues.configure(1, admit_rate=1000.0)
    tickets = [await queues.join(1, u) for u in range(1, 41)]
    for t in tickets[3:30:4]:
        await queues.end(t.token, "left")
    await admission.tick(queues, None)  # initialises the budget
    await queues.redis.hset("wr:{c:1}:state", "last_ms", 0)  # a long gap: about 1 s's worth
    await queues.configure(1, admit_rate=5.0)
    await admission.tick(queues, None)
    view = ConcertView()
    (snap,) = await queues.snapshots([(1, None)])
    view.advance(snap.cursor, snap.depseq, snap.departed)
    checked = 0
    for t in tickets:
        now = await queues.status(t.token)
        if now.record.state == "WAITING":
            assert view.position(now.record.ticket) == now.position
            checked += 1
    assert checked > 20


async def test_join_after_redis_forgot_its_scripts(queues: Queues) -> None:
    await queues.join(1, 1)
    await queues.redis.script_flush()
    again = await queues.join(1, 2)
    assert again.created and again.position == 2


async def test_rejoin_leaves_no_stray_token_index(queues: Queues) -> None:
    await queues.join(1, 1)
    await queues.join(INDEXED, 1)
    for _ in range(5):
        assert not (await queues.join(1, 1)).created
        assert not (await queues.join(INDEXED, 1)).created
    # The token that names its concert has no index entry; the other has one.
    assert len(await queues.redis.keys("wr:tk:*")) == 1


async def test_a_token_s_concert_is_remembered_but_its_record_still_decides(
        queues: Queues, settings: Settings) -> None:
    ticket = await queues.join(INDEXED, 1)
    # Without its index entry this process still knows the concert: one Redis read, not two.
    await queues.redis.delete(keys.token_index(ticket.token))
    assert (await queues.lookup(ticket.token))[0] == INDEXED
    with pytest.raises(TokenInvalid):  # another process does not
        await Queues(queues.redis, settings).lookup(ticket.token)
    # Its record gone, the token is invalid here too, whatever is remembered.
    await queues.redis.hdel(ConcertKeys(INDEXED).tokens, ticket.token)
    with pytest.raises(TokenInvalid):
        await queues.lookup(ticket.token)
    with pytest.raises(TokenInvalid):
        await queues.status(ticket.token)


async def test_remembered_tokens_are_bounded(queues: Queues, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "KNOWN_TOKENS", 3)
    tickets = [await queues.join(INDEXED, user) for user in range(1, 6)]
    assert list(queues._concert_of) == [t.token for t in tickets[2:]]
    # The oldest were forgotten, and are read from the index again.
    assert [(await queues.lookup(t.token))[0] for t in tickets] == [INDEXED] * 5
    assert len(queues._concert_of) == 3


async def test_batched_joins_across_concerts_each_list_their_concert_and_index(
        queues: Queues) -> None:
    # Joins made together share pipelines and send each concert's SADD once per batch: every
    # concert must still be listed for the admitter, and every token indexed to its concert.
    concerts = (1, 2, INDEXED)
    tickets = await asyncio.gather(*(queues.join(c, u) for u in range(1, 201) for c in concerts))
    listed = {int(c) for c in await queues.redis.smembers(keys.CONCERTS)}
    assert listed == set(concerts)
    elsewhere = Queues(queues.redis, queues.settings)  # another process: it remembers nothing
    for t in tickets:
        raw = await queues.redis.get(keys.token_index(t.token))
        if t.concert_id == INDEXED:
            assert raw is not None and int(raw) == t.concert_id
        else:
            assert raw is None and queue.concert_named(t.token) == t.concert_id
        assert (await elsewhere.lookup(t.token))[0] == t.concert_id
    for c in concerts:
        places = sorted(t.position or 0 for t in tickets if t.concert_id == c)
        assert places == list(range(1, 201))


async def test_the_scripts_name_the_keys_the_module_names(queues: Queues) -> None:
    # The concert scripts get the key prefix alone and name the keys from it (lua/_lib.lua):
    # a name that drifts from keys.py would read or write a key nobody else does.
    prelude = (resources.files("waitingroom") / "lua" / "_lib.lua").read_text()
    named = await queues.redis.eval(
        prelude + "\nreturn {K_SEQ, K_Q, K_ACT, K_TOK, K_USERS, K_SEEN, K_DEP, K_DEPLOG,"
                  " K_STATE, K_CFG, K_GONE, K_HIST}",
        1, ConcertKeys(7).prefix)
    assert [name.decode() for name in named] == list(ConcertKeys(7).queue_keys)
    assert queue.concert_keys(7) == (ConcertKeys(7).prefix,)


async def test_a_batch_connection_that_redis_closed_is_opened_again(queues: Queues) -> None:
    # Batches keep their connections between them; one that Redis closed meanwhile (as in a
    # restart) is connected again by the next batch's retry, unseen by its callers.
    assert (await queues.join(1, 1)).position == 1
    killed = await queues.redis.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert (await queues.join(1, 2)).position == 2
    assert (await queues.join(1, 1)).position == 1


async def test_a_batch_whose_replies_never_come_fails_in_the_socket_timeout(queues: Queues) -> None:
    # A server that takes the batch and never answers: its callers hear of it within the
    # client's socket timeout (and its retries), they do not wait forever.
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mute = Redis(host="127.0.0.1", port=port, socket_timeout=0.2,
                 retry=Retry(NoBackoff(), 1), retry_on_error=[RedisTimeoutError])
    try:
        batch = AutoPipeline(mute)
        call = batch.run(queues.scripts.status, queue.concert_keys(1), ["nope"])
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(call, 10)
    finally:
        await mute.aclose()
        done.set()
        server.close()
        await server.wait_closed()


async def test_a_failing_shared_command_fails_its_callers_only(queues: Queues) -> None:
    # A `once` command that fails (here: SADD on a key holding a string) fails every call
    # that asked for it; a call in the same batch that did not ask for it is answered.
    await queues.redis.set("wr-test:not-a-set", "x")
    k = list(queue.concert_keys(1))
    asking = queues.batch.run(queues.scripts.status, k, ["nope"],
                              once=("SADD", "wr-test:not-a-set", 1))
    other = queues.batch.run(queues.scripts.status, k, ["nope"])
    results = await asyncio.gather(asking, other, return_exceptions=True)
    assert isinstance(results[0], Exception) and "WRONGTYPE" in str(results[0])
    assert results[1] == [None]  # the status script's answer: no such token


def test_commands_are_packed_as_redis_reads_them() -> None:
    assert pack(("SET", "k", 12, "EX", 1.5, b"\x00b", "é")) == (
        b"*7\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\nEX\r\n$3\r\n1.5\r\n$2\r\n\x00b\r\n"
        b"$2\r\n\xc3\xa9\r\n")
    refused: tuple[Any, ...] = (True, None)
    for bad in refused:
        with pytest.raises(DataError):
            pack(("SET", "k", bad))


async def test_a_batch_of_unlike_calls_answers_each_its_own(queues: Queues) -> None:
    # Calls of one batch to two concerts, with keys as a tuple or a list, text or bytes
    # arguments and a command alongside: each packed start is the right one for its call.
    ticket = await queues.join(1, 5)
    k1, k2 = queue.concert_keys(1), queue.concert_keys(2)
    mine, elsewhere, alongside, as_bytes = await asyncio.gather(
        queues.batch.run(queues.scripts.status, k1, [ticket.token]),
        queues.batch.run(queues.scripts.status, list(k2), [ticket.token]),
        queues.batch.run(queues.scripts.status, k1, ["nope"],
                         also=(("SET", "wr-test:packed", 1.5, "EX", 60),)),
        queues.batch.run(queues.scripts.status, list(k1), [ticket.token.encode()]))
    assert mine[0] and mine[0] == as_bytes[0] and int(mine[0][1]) == 1
    assert elsewhere == [None] and alongside == [None, b"OK"]
    assert await queues.redis.get("wr-test:packed") == b"1.5"


async def test_plain_commands_ride_in_a_batch_and_fail_alone(queues: Queues) -> None:
    ticket = await queues.join(1, 6)
    tokens = ConcertKeys(1).tokens
    record, status, missing, wrong = await asyncio.gather(
        queues.batch.command("HGET", tokens, ticket.token),
        queues.batch.run(queues.scripts.status, queue.concert_keys(1), [ticket.token]),
        queues.batch.command("HGET", tokens, "nope"),
        queues.batch.command("INCR", tokens),  # a hash: Redis answers an error
        return_exceptions=True)
    assert record == await queues.redis.hget(tokens, ticket.token) and record is not None
    assert not isinstance(status, BaseException) and int(status[0][1]) == 1
    assert missing is None
    assert isinstance(wrong, ResponseError), wrong
    _, looked_up = await queues.lookup(ticket.token)
    assert looked_up.state == "WAITING"
