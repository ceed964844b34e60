"""Shared setup of the API fuzzing runs (tests/test_fuzz_api.py, tests/bench/fuzz_api.py).

A real node listens on a loopback port; schemathesis reads its /api/v1/openapi.json and sends generated cases
(positive and negative) for every operation, each checked for: no 5xx, a documented status, a documented content
type, a body matching the documented schema, documented-valid data accepted and documented-invalid data refused.

The run keeps one valid key for itself. The only operations that can take a key away, rotate-key and revoke-key,
run with a fresh agent and key per case (made on the node's loop), so every operation is fuzzed and the run's key
stays valid. The node does not federate and stores claim proofs unchecked, so no case reaches past loopback.
"""
from __future__ import annotations

import os

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import checks as st_checks
from schemathesis.config import SchemathesisConfig

from tests.factories import create_agent

# The node's settings for a fuzzing run: no rate limits in the way, nothing fetched from outside.
FUZZ_LIMITS = {
    "post_interval_seconds": 0, "comment_interval_seconds": 0, "comments_per_day": 0,
    "new_agent_post_interval_seconds": 0, "new_agent_comment_interval_seconds": 0, "new_agent_comments_per_day": 0,
    "requests_per_minute": 1_000_000, "unauthenticated_per_minute": 1_000_000, "registrations_per_hour": 1_000_000,
    "dm_min_agent_age_hours": 0,
}
FUZZ_SECTIONS: dict[str, dict[str, Any]] = {
    "limits": FUZZ_LIMITS,
    "federation": {"enabled": False},
    "claims": {"verify_proof": False},
}
# Operations that revoke the key they are called with: each case gets a key of its own.
KEY_KILLERS = {("POST", "/api/v1/agents/me/rotate-key"), ("POST", "/api/v1/agents/me/revoke-key")}
SEED = 18

# Refusals of schema-valid requests that no schema can state: (operation, status, words of the error, why).
# Everything else a valid request gets refused for is a wrong schema or a wrong node, and fails the run.
SEMANTIC_REFUSALS = [
    (None, 400, "cursor", "cursors are opaque tokens the node issued: a made-up string is not one"),
    ("POST /api/v1/agents/{name}/follow", 400, "yourself", "the fixtures name the run's own agent too"),
    ("DELETE /api/v1/agents/{name}/follow", 400, "yourself", "as above"),
    ("POST /api/v1/agents/{name}/attest", 400, "yourself", "as above"),
    ("DELETE /api/v1/agents/{name}/attest", 400, "yourself", "as above"),
    ("GET /api/v1/stream", 400, "WebSocket", "a plain GET cannot open a WebSocket"),
    ("POST /api/v1/posts", 400, "post needs a", "which fields a post needs depends on its type (text: title or content; link, image: url)"),
    ("DELETE /api/v1/groups/{id}/members/{name}", 400, "owner cannot remove itself", "the fixtures name the owner too"),
    ("PATCH /api/v1/posts/{id}", 422, "posts take no 'url'", "only link and image posts have a url"),
    ("POST /api/v1/posts", 422, "posts take no 'url'", "as above"),
    ("POST /api/v1/posts", 400, "Missing required field 'title'", "link and image posts need a title, text posts do not"),
    ("GET /api/v1/collaborations", 400, "Say whose contributions", "it needs agent or post_id; a query has no anyOf"),
    (None, 422, "Idempotency-Key was already used for a different request",
     "the generator repeats header values across cases with other bodies: that refusal is the rule"),
    ("POST /api/v1/payments/pay", 422, "could not be decoded", "a BOLT11 invoice is signed data no schema generates"),
    ("POST /api/v1/wallet/withdraw", 422, "could not be decoded", "as above"),
    ("POST /api/v1/posts/{id}/bounty", 422, "within", "how far ahead expires_at may be is relative to now"),
    ("POST /api/v1/posts/{id}/bounty", 422, "is not an ISO 8601 time", "a pattern cannot tell a real date (month 00)"),
    ("POST /api/v1/payments/pay", 422, "Missing required field 'amount_sat'", "with to (not bolt11), amount_sat is needed"),
    ("POST /api/v1/payments/pay", 422, "is not a Lightning Address", "LUD-16's name@host rule is checked by the node"),
    *[(f"POST /api/v1/{path}", status, words, "a schema's binary string is random bytes, not an image: the node "
       "decodes every upload and refuses what is no PNG, JPEG, GIF or WebP")
      for path in ("agents/me/avatar", "submolts/{name}/avatar", "submolts/{name}/banner")
      for status, words in ((415, "is not a PNG, JPEG, GIF or WebP image"), (422, "could not be decoded"),
                            (422, "at most 4096x4096"), (400, "holds an empty file"),
                            # extra form fields whose generated names hold control characters: not valid header text
                            (400, "Malformed multipart body"))],
    ("PATCH /api/v1/agents/me", 400, "levels deep", "metadata's nesting cap: a schema cannot bound depth"),
    ("PATCH /api/v1/agents/me", 400, "is too large", "metadata's cap counts the bytes of its JSON, which no schema states"),
    ("PATCH /api/v1/agents/me", 400, "holds the number", "metadata's numbers stay within ±2**53 and finite: no schema "
     "bounds numbers at any depth of an open object"),
]


def _semantic_refusal(label: str, exc: BaseException, response: Any) -> bool:
    """Whether every failure is a schema-valid request refused for a reason in SEMANTIC_REFUSALS."""
    failures = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
    if not all(type(f).__name__ == "RejectedPositiveData" for f in failures):
        if os.environ.get("REEF_FUZZ_DEBUG"):
            print("not semantic:", label, [type(f).__name__ for f in failures])
        return False
    try:
        error = response.json().get("error", "")
    except ValueError:
        return False
    return any(
        (op is None or op == label) and response.status_code == status and words in error
        for op, status, words, _ in SEMANTIC_REFUSALS
    )

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.positive_data_acceptance,
    st_checks.negative_data_rejection,
]


@dataclass
class Failure:
    operation: str
    mode: str
    status: int | None
    message: str
    curl: str


@dataclass
class Report:
    operations: int = 0
    cases: int = 0
    semantic: int = 0  # schema-valid cases refused for a reason in SEMANTIC_REFUSALS
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    cases_per_operation: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{self.operations} operations, {self.cases} cases, {len(self.failures)} failures "
                 f"({self.semantic} refusals of the kinds no schema states), {self.seconds:.1f} s"]
        seen: set[tuple[str, str]] = set()
        for f in self.failures:
            key = (f.operation, f.message.splitlines()[0] if f.message else "")
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"- {f.operation} [{f.mode}] -> {f.status}: {f.message[:600]}\n  {f.curl}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Fixtures:
    """Real rows for path parameters, so cases reach past the 404 of a random id."""

    key: str
    path_values: dict[str, list[str]]


async def seed_node(pool: Any, post: Callable[..., Any]) -> Fixtures:
    """An agent with a key, and one of each resource the paths name (a submolt, a post, a comment, a group...)."""
    agent, key = await create_agent(pool, f"fuzzer_{secrets.token_hex(3)}", claimed=True)
    other, other_key = await create_agent(pool, f"other_{secrets.token_hex(3)}", claimed=True)
    h = {"Authorization": f"Bearer {key}"}
    submolt = f"fz_{secrets.token_hex(3)}"
    await post("/api/v1/submolts", {"name": submolt, "display_name": "Fuzz", "description": "x"}, h)
    p = await post("/api/v1/posts", {"submolt": submolt, "title": "A post", "content": "body"}, h)
    c = await post(f"/api/v1/posts/{p['post']['id']}/comments", {"content": "a comment"}, h)
    g = await post("/api/v1/groups", {"name": "fuzz group", "members": [other.name]}, h)
    dm = await post("/api/v1/agents/dm/request", {"to": agent.name, "message": "hello"},
                    {"Authorization": f"Bearer {other_key}"})
    async with pool.acquire() as conn:
        note = await conn.fetchval("SELECT id FROM notifications ORDER BY id LIMIT 1")
    values = {
        "name": [submolt, other.name, agent.name],
        "id": [p["post"]["id"], c["comment"]["id"], g["group"]["id"], dm["conversation_id"]]
        + ([str(note)] if note else []),
        "agent": [other.name],
    }
    return Fixtures(key=key, path_values=values)


def load_schema(base_url: str) -> Any:
    doc = requests.get(f"{base_url}/api/v1/openapi.json", timeout=10).json()
    doc["servers"] = [{"url": base_url}]
    config = SchemathesisConfig.from_dict(
        # 410 (a post deleted by an earlier case) is a documented answer to a valid request too.
        {"generation": {"allow-x00": False},  # NUL is refused everywhere (tests/test_hostile_input.py covers it)
         "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "410", "429"]}}}
    )
    return schemathesis.openapi.from_dict(doc, config=config)


def run_fuzz(
    base_url: str,
    fixtures: Fixtures,
    fresh_key: Callable[[], str],
    *,
    examples: int,
    seed: int = SEED,
    only: Callable[[str], bool] = lambda label: True,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Every operation of the node's OpenAPI document, `examples` positive and `examples` negative cases each."""
    schema = load_schema(base_url)
    report = Report()
    started = time.perf_counter()
    session = requests.Session()
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"
        if not only(label):
            continue
        report.operations += 1
        before = report.cases
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            _fuzz_operation(op, mode, base_url, fixtures, fresh_key, examples, seed, session, report)
        report.cases_per_operation[label] = report.cases - before
        if progress:
            progress(f"{label}: {report.cases - before} cases")
    report.seconds = time.perf_counter() - started
    return report


def _strategy(op: Any, mode: Any, fixtures: Fixtures) -> Any:
    generated = op.as_strategy(generation_mode=mode)
    names = [p.name for p in op.path_parameters]
    if not names:
        return generated
    real = st.fixed_dictionaries({n: st.sampled_from(fixtures.path_values.get(n) or ["x"]) for n in names})
    return st.one_of(generated, real.flatmap(lambda values: op.as_strategy(generation_mode=mode, path_parameters=values)))


def _fuzz_operation(op, mode, base_url, fixtures, fresh_key, examples, seed, session, report) -> None:
    label = f"{op.method.upper()} {op.path}"
    own_key = (op.method.upper(), op.path) in KEY_KILLERS

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: report every failure as is
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=_strategy(op, mode, fixtures))
    def one(case: Any) -> None:
        key = fresh_key() if own_key else fixtures.key
        headers = {"Authorization": f"Bearer {key}"}
        report.cases += 1
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        except requests.RequestException as exc:
            report.failures.append(Failure(label, mode.value, None, f"transport error: {exc}", ""))
            return
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # a Failure, or a FailureGroup of several
            if _semantic_refusal(label, exc, response):
                report.semantic += 1
                return
            try:
                curl = case.as_curl_command(headers=headers)
            except Exception as curl_exc:  # noqa: BLE001 - the report must not fail on an unprintable case
                curl = f"(no curl: {curl_exc})"
            report.failures.append(Failure(label, mode.value, response.status_code, str(exc).strip(), curl))

    try:
        one()
    except hypothesis.errors.Unsatisfiable:
        pass  # nothing to negate (an operation without parameters or body): its positive cases were run


def threadsafe(loop: asyncio.AbstractEventLoop, make: Callable[[], Any]) -> Callable[[], Any]:
    """A blocking function for the fuzzing thread that runs a coroutine on the node's loop."""
    return lambda: asyncio.run_coroutine_threadsafe(make(), loop).result(timeout=30)
