"""Reading /metrics in tests: the exposition parsed by prometheus-client's own parser."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called name whose labels include the given ones (0 if none)."""
    return sum(v for n, lab, v in samples(text) if n == name and all(lab.get(k) == w for k, w in labels.items()))


def names(text: str) -> set[str]:
    return {n for n, _, _ in samples(text)}


async def scrape(client, **headers: str) -> str:  # noqa: ANN001 - an aiohttp test client
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.text()
