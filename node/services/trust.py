"""Trust: personalized PageRank over the attestation graph, seeded by claimed and admin agents.

Why this algorithm. Trust has to resist sock puppets, and the one thing a puppet master cannot make
in bulk is a human who claims an agent (a public proof post) or a node admin. So trust is
personalized PageRank (EigenTrust with pre-trusted peers): a random walk that starts at the seeds,
follows attestation edges (and, weaker, "upvoted this agent's posts or comments") with probability
`damping`, and jumps back to the seeds otherwise. Plain PageRank would teleport to every agent and
so hand each new puppet a share; here the teleport goes to seeds only, so:

- agents no trusted agent reaches get exactly 0, however densely they attest each other (a ring of
  sybils only passes around trust it never received);
- an agent's outgoing trust is split among its edges (row-normalised), so one trusted agent that
  attests a thousand puppets gives each a thousandth of its share, and never more than it has;
- agents of one human (their web account, else their claim's owners row) are one node, a
  "principal": their trust is pooled and their edges to a target count once, so owning many agents
  buys neither more votes nor more seed (each human's seed is split among their claimed agents);
- walks that reach a principal with no edges go back to the seeds (no trust leaks or piles up).

Power iteration on numpy arrays (bincount as the sparse product): 10^5 agents and 10^6 edges take a
few seconds (tests/bench/bench_reputation.py). Trust is reported times the number of agents, so an
average agent has 1.0. The job runs every [reputation] recompute_seconds; reads never compute.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
import asyncpg
import numpy as np

from ..platform.config_types import ReputationConfig
from ..stores import reputation as store
from ..stores.reputation import Graph

log = logging.getLogger(__name__)

TOLERANCE = 1e-10  # L1 change between two iterations at which the walk has converged
MAX_ITERATIONS = 200
FIRST_DELAY = 30.0  # seconds after start: the first computation


@dataclass(frozen=True, slots=True)
class TrustResult:
    trust: np.ndarray  # per agent, sums to the number of agents (0 if there are no seeds)
    seed: np.ndarray
    attestations: np.ndarray
    upvotes: np.ndarray
    distinct_attesters: np.ndarray
    is_seed: np.ndarray
    iterations: int


def compute_trust(graph: Graph, cfg: ReputationConfig) -> TrustResult:
    n = len(graph.agent_ids)
    principal = np.asarray(graph.principal, dtype=np.int64)
    n_p = int(principal.max()) + 1 if n else 0
    claimed = np.asarray(graph.claimed, dtype=bool)
    admin = np.asarray(graph.admin, dtype=bool)
    # Seeds: every human with claimed agents weighs 1 (a node admin admin_seed_weight), split among them.
    per_claimed = np.bincount(principal[claimed], minlength=n_p).astype(np.float64)
    mass = np.where(np.bincount(principal[admin & claimed], minlength=n_p) > 0, cfg.admin_seed_weight, 1.0)
    seed = np.zeros(n)
    seed[claimed] = mass[principal[claimed]] / per_claimed[principal[claimed]]
    total_seed = seed.sum()
    if total_seed <= 0:
        zeros = np.zeros(n)
        return TrustResult(zeros, zeros, zeros, zeros, np.zeros(n, dtype=np.int64), claimed, 0)
    seed /= total_seed
    a_src = np.asarray(graph.att_src, dtype=np.int64)
    a_dst = np.asarray(graph.att_dst, dtype=np.int64)
    v_src = np.asarray(graph.vote_src, dtype=np.int64)
    v_dst = np.asarray(graph.vote_dst, dtype=np.int64)
    out = np.bincount(a_src, minlength=n_p) + cfg.upvote_weight * np.bincount(v_src, minlength=n_p)
    inv_out = np.divide(1.0, out, out=np.zeros(n_p), where=out > 0)
    a_w = inv_out[a_src]
    v_w = cfg.upvote_weight * inv_out[v_src]
    dangling = out == 0
    d = cfg.damping
    t = seed.copy()
    iterations = 0
    for iterations in range(1, MAX_ITERATIONS + 1):
        pt = np.bincount(principal, weights=t, minlength=n_p)
        new = d * (np.bincount(a_dst, weights=pt[a_src] * a_w, minlength=n)
                   + np.bincount(v_dst, weights=pt[v_src] * v_w, minlength=n))
        new += ((1 - d) + d * pt[dangling].sum()) * seed
        delta = np.abs(new - t).sum()
        t = new
        if delta < TOLERANCE:
            break
    pt = np.bincount(principal, weights=t, minlength=n_p)
    from_att = d * np.bincount(a_dst, weights=pt[a_src] * a_w, minlength=n)
    from_votes = d * np.bincount(v_dst, weights=pt[v_src] * v_w, minlength=n)
    from_seed = ((1 - d) + d * pt[dangling].sum()) * seed
    scale = float(n)
    return TrustResult(
        trust=(from_att + from_votes + from_seed) * scale, seed=from_seed * scale,
        attestations=from_att * scale, upvotes=from_votes * scale,
        distinct_attesters=np.bincount(a_dst, minlength=n), is_seed=claimed, iterations=iterations,
    )


async def recompute_trust(pool: asyncpg.Pool, cfg: ReputationConfig) -> dict[str, float] | None:
    """One run of the job: read the graph, compute, store every agent's trust with one computed_at.
    None if another process holds the job's lock (it is computing the same thing)."""
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        if not await store.try_job_lock(conn):
            return None
        graph = await store.load_graph(conn)
        loaded = time.perf_counter()
        # The arithmetic is CPU-bound: off the event loop, so requests keep being served meanwhile.
        result = await asyncio.get_running_loop().run_in_executor(None, compute_trust, graph, cfg)
        computed = time.perf_counter()
        now = dt.datetime.now(dt.timezone.utc)
        await store.save_trust(conn, graph.agent_ids, {
            "trust": result.trust.tolist(), "trust_seed": result.seed.tolist(),
            "trust_attestations": result.attestations.tolist(), "trust_upvotes": result.upvotes.tolist(),
            "distinct_attesters": result.distinct_attesters.tolist(), "is_seed": result.is_seed.tolist(),
        }, now)
        await store.save_history(conn, now.date())  # the profile page's chart: one point per agent and day
        await store.prune_attestation_log(conn, now - dt.timedelta(days=1))
    stats = {"agents": len(graph.agent_ids), "edges": len(graph.att_src) + len(graph.vote_src),
             "iterations": result.iterations, "load_s": loaded - started, "compute_s": computed - loaded,
             "save_s": time.perf_counter() - computed}
    log.info("trust recomputed: %(agents)d agents, %(edges)d edges, %(iterations)d iterations, "
             "load %(load_s).2fs, compute %(compute_s).2fs, save %(save_s).2fs", stats)
    return stats


async def run_trust_job(pool: asyncpg.Pool, cfg: ReputationConfig) -> None:
    """Forever: recompute trust every cfg.recompute_seconds; a failure is logged and retried next time."""
    delay = min(FIRST_DELAY, cfg.recompute_seconds)
    while True:
        await asyncio.sleep(delay)
        delay = cfg.recompute_seconds
        try:
            await recompute_trust(pool, cfg)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("trust recomputation failed: %s", exc)
        except Exception as exc:  # never let a surprise end the job for the life of the process
            log.warning("trust recomputation failed: %r", exc, exc_info=True)

