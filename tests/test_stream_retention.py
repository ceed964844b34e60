"""Retention of the stream's event log: old events are pruned in batches, and a replay that lost some says so."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from node.platform.appkeys import POOL
from node.platform.config import ConfigError, build_config
from node.realtime import app as realtime_app
from node.stores import stream as stream_store
from tests.factories import create_agent
from tests.test_stream import connect, frame, open_conversation, send

HOUR = dt.timedelta(hours=1)


async def _age(conn, agent_id, ids, hours: float = 2.0) -> None:
    """Make these events `hours` old."""
    await conn.execute(
        "UPDATE stream_events SET created_at = now() - make_interval(secs => $3) WHERE agent_id = $1 AND id = ANY($2::bigint[])",
        agent_id, list(ids), hours * 3600,
    )


async def _ids(conn, agent_id) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM stream_events WHERE agent_id = $1 ORDER BY id", agent_id)]


async def _notify(conn, agent_id, n: int) -> list[int]:
    """n numbered events for the agent, as the services write them."""
    out = []
    for i in range(n):
        out += [event_id for _, event_id in await stream_store.insert_events(conn, [agent_id], "notification", {"kind": "test", "n": i})]
    return out


class _CountingConn:
    """A connection that remembers the status of each statement prune_events runs."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.statuses: list[str] = []

    async def execute(self, *args):
        status = await self.conn.execute(*args)
        self.statuses.append(status)
        return status


# --- config ---


def test_retention_defaults_to_a_week_and_must_not_be_negative():
    assert build_config({}, env={}).limits.stream_retention_hours == 168
    assert build_config({"limits": {"stream_retention_hours": 0}}, env={}).limits.stream_retention_hours == 0
    for data, env in [({"limits": {"stream_retention_hours": -1}}, {}), ({}, {"REEF_LIMITS__STREAM_RETENTION_HOURS": "-5"})]:
        with pytest.raises(ConfigError) as info:
            build_config(data, env=env)
        assert "[limits] stream_retention_hours" in str(info.value)
        assert info.value.hint


# --- pruning ---


async def test_prune_deletes_only_old_events_in_batches_and_keeps_the_sequence(client):
    pool = client.server.app[POOL]
    a, _ = await create_agent(pool)
    b, _ = await create_agent(pool)
    old_count = 2 * stream_store.PRUNE_BATCH + 7
    async with pool.acquire() as conn:
        # Many old events for a (more than two batches), numbered as insert_events would have.
        await conn.execute(
            """INSERT INTO stream_events (agent_id, id, type, payload, created_at)
               SELECT $1, g, 'notification', '{"kind": "test"}', now() - interval '3 hours' FROM generate_series(1, $2) g""",
            a.id, old_count,
        )
        await conn.execute("INSERT INTO stream_sequences (agent_id, last_id, acked_id) VALUES ($1, $2, 5)", a.id, old_count)
        a_new = await _notify(conn, a.id, 3)
        # b: one just outside the retention, one just inside, one new.
        b_ids = await _notify(conn, b.id, 3)
        await _age(conn, b.id, [b_ids[0]], hours=1.02)
        await _age(conn, b.id, [b_ids[1]], hours=0.98)
        sequences = {r["agent_id"]: (r["last_id"], r["acked_id"]) for r in await conn.fetch("SELECT * FROM stream_sequences")}
        counting = _CountingConn(conn)

        removed = await stream_store.prune_events(counting, HOUR)

        assert removed == old_count + 1
        # One statement per batch, each at most PRUNE_BATCH rows; the short one ends it.
        assert counting.statuses == [f"DELETE {stream_store.PRUNE_BATCH}"] * 2 + ["DELETE 8"]
        assert await _ids(conn, a.id) == a_new == [old_count + 1, old_count + 2, old_count + 3]
        assert await _ids(conn, b.id) == b_ids[1:]
        # The sequences are untouched, so ids keep increasing after their events are gone.
        assert {r["agent_id"]: (r["last_id"], r["acked_id"]) for r in await conn.fetch("SELECT * FROM stream_sequences")} == sequences
        assert await stream_store.prune_events(conn, HOUR) == 0
        await _age(conn, a.id, a_new)
        assert await stream_store.prune_events(conn, HOUR) == 3
        assert await _ids(conn, a.id) == []
        assert await _notify(conn, a.id, 1) == [old_count + 4]


async def test_pruning_processes_skip_rows_another_one_holds(client):
    """Two processes pruning at once: the second takes the rows the first has not locked, without waiting."""
    pool = client.server.app[POOL]
    a, _ = await create_agent(pool)
    async with pool.acquire() as conn:
        ids = await _notify(conn, a.id, 6)
        await _age(conn, a.id, ids)
    async with pool.acquire() as holder, pool.acquire() as pruner:
        async with holder.transaction():
            locked = await holder.fetch(
                "SELECT id FROM stream_events WHERE agent_id = $1 AND id <= 2 FOR UPDATE", a.id
            )
            assert len(locked) == 2
            assert await asyncio.wait_for(stream_store.prune_events(pruner, HOUR), 5) == 4
        assert await _ids(pruner, a.id) == ids[:2]
        assert await stream_store.prune_events(pruner, HOUR) == 2


async def _app_with_pruning(aiohttp_client, make_config, monkeypatch, hours: int):
    """A node whose prune task runs at once and every 10 ms; returns (client, list of prune_events results)."""
    from node.app import create_app

    monkeypatch.setattr(realtime_app, "PRUNE_FIRST_DELAY", 0.0)
    monkeypatch.setattr(realtime_app, "PRUNE_EVERY", 0.01)
    results: list[int] = []
    real = stream_store.prune_events

    async def counted(conn, max_age, *args):
        assert max_age == dt.timedelta(hours=hours)
        n = await real(conn, max_age, *args)
        results.append(n)
        return n

    monkeypatch.setattr(stream_store, "prune_events", counted)
    client = await aiohttp_client(create_app(make_config(limits={"stream_retention_hours": hours})))
    return client, results


async def test_the_node_prunes_periodically_and_logs_what_went(aiohttp_client, make_config, monkeypatch, caplog):
    client, results = await _app_with_pruning(aiohttp_client, make_config, monkeypatch, 1)
    pool = client.server.app[POOL]
    a, _ = await create_agent(pool)
    async with pool.acquire() as conn:
        ids = await _notify(conn, a.id, 4)
        with caplog.at_level(logging.INFO, logger="node.realtime.app"):
            await _age(conn, a.id, ids[:3])
            for _ in range(500):
                # the task logs after prune_events returned and its connection went back: wait for both
                if 3 in results and any("removed" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
        assert 3 in results
        assert await _ids(conn, a.id) == ids[3:]
    logged = [r.getMessage() for r in caplog.records if r.name == "node.realtime.app"]
    assert any("removed 3 events" in m for m in logged), logged
    # Runs with nothing to remove say nothing.
    assert sum("removed" in m for m in logged) == 1, logged


async def test_prune_failures_are_logged_and_the_task_keeps_running(aiohttp_client, make_config, monkeypatch, caplog):
    from node.app import create_app

    monkeypatch.setattr(realtime_app, "PRUNE_FIRST_DELAY", 0.0)
    monkeypatch.setattr(realtime_app, "PRUNE_EVERY", 0.01)
    calls: list[int] = []

    async def failing(conn, max_age, *args):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database away")
        raise ValueError("something unexpected")

    monkeypatch.setattr(stream_store, "prune_events", failing)
    with caplog.at_level(logging.WARNING, logger="node.realtime.app"):
        await aiohttp_client(create_app(make_config(limits={"stream_retention_hours": 1})))
        for _ in range(500):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
    assert len(calls) >= 3  # still running after both kinds of failure
    warnings = [r.getMessage() for r in caplog.records if r.name == "node.realtime.app" and r.levelno == logging.WARNING]
    assert any("database away" in m for m in warnings) and any("something unexpected" in m for m in warnings), warnings


async def test_retention_0_keeps_everything(aiohttp_client, make_config, monkeypatch):
    client, results = await _app_with_pruning(aiohttp_client, make_config, monkeypatch, 0)
    pool = client.server.app[POOL]
    a, _ = await create_agent(pool)
    async with pool.acquire() as conn:
        ids = await _notify(conn, a.id, 3)
        await conn.execute("UPDATE stream_events SET created_at = now() - interval '3650 days'")
        await asyncio.sleep(0.1)  # ten periods of the test's prune interval
        assert results == []
        assert await _ids(conn, a.id) == ids


# --- replay after pruning ---


async def test_reconnect_past_pruned_events_is_told_truncated_and_gets_the_rest_in_order(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    conv_id = await open_conversation(client, ka, kb, b.name)
    ws_b, _, ready = await connect(client, kb)
    base = ready["last_id"]  # b's dm request notification
    assert "truncated" not in ready
    for i in range(1, 7):
        await send(client, ka, conv_id, f"m{i}")
    got = [await frame(ws_b, "dm") for _ in range(6)]
    await ws_b.close()
    ids = [f["id"] for f in got]
    assert ids == list(range(base + 1, base + 7))
    async with pool.acquire() as conn:
        await _age(conn, b.id, range(1, ids[2] + 1))  # everything up to m3
        assert await stream_store.prune_events(conn, HOUR) == ids[2]

    # since before the oldest kept event: told so, and given what remains, in order.
    ws_b, replayed, ready = await connect(client, kb, since=base)
    assert [(f["id"], f["content"]) for f in replayed] == [(ids[i], f"m{i + 1}") for i in range(3, 6)]
    assert ready["truncated"] is True and ready["oldest_id"] == ids[3] and ready["last_id"] == ids[5]
    await ws_b.close()
    ws_b, replayed, ready = await connect(client, kb, since=0)
    assert [f["id"] for f in replayed] == ids[3:]
    assert (ready["truncated"], ready["oldest_id"]) == (True, ids[3])
    await ws_b.close()

    # since right before the oldest kept event, or later: nothing was lost, no flag.
    for since, expect in [(ids[2], ids[3:]), (ids[3], ids[4:]), (ids[5], []), (None, [])]:
        ws_b, replayed, ready = await connect(client, kb, since=since)
        assert [f["id"] for f in replayed] == expect, since
        assert "truncated" not in ready and "oldest_id" not in ready, since
        assert ready["last_id"] == ids[5]
        await ws_b.close()


async def test_reconnect_after_everything_was_pruned(client):
    pool = client.server.app[POOL]
    a, ka = await create_agent(pool)
    b, kb = await create_agent(pool)
    conv_id = await open_conversation(client, ka, kb, b.name)
    for i in range(3):
        await send(client, ka, conv_id, f"m{i}")
    async with pool.acquire() as conn:
        last = await conn.fetchval("SELECT last_id FROM stream_sequences WHERE agent_id = $1", b.id)
        await _age(conn, b.id, range(1, last + 1))
        assert await stream_store.prune_events(conn, HOUR) == last
    ws_b, replayed, ready = await connect(client, kb, since=1)
    assert replayed == []
    assert ready == {"type": "ready", "agent": b.name, "last_id": last, "truncated": True, "oldest_id": last + 1}
    # The next event continues the numbering, live.
    await send(client, ka, conv_id, "after the pruning")
    dm = await frame(ws_b, "dm")
    assert dm["id"] == last + 1 and dm["content"] == "after the pruning"
    await ws_b.close()
    ws_b, replayed, ready = await connect(client, kb, since=last)
    assert [f["id"] for f in replayed] == [last + 1] and "truncated" not in ready
    await ws_b.close()


async def test_a_hole_inside_the_replay_is_reported_too(client):
    """created_at is the transaction's start, so it is not strictly increasing with the id: at the retention
    boundary a later id may go before an earlier one. The replay reports the first gap it sees."""
    pool = client.server.app[POOL]
    b, kb = await create_agent(pool)
    async with pool.acquire() as conn:
        ids = await _notify(conn, b.id, 6)
        assert ids == [1, 2, 3, 4, 5, 6]
        await _age(conn, b.id, [5])
        assert await stream_store.prune_events(conn, HOUR) == 1
    ws_b, replayed, ready = await connect(client, kb, since=3)
    assert [f["id"] for f in replayed] == [4, 6]
    assert (ready["truncated"], ready["oldest_id"], ready["last_id"]) == (True, 6, 6)
    await ws_b.close()
    ws_b, replayed, ready = await connect(client, kb, since=5)
    assert [f["id"] for f in replayed] == [6] and "truncated" not in ready
    await ws_b.close()
