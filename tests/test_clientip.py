"""The client's address behind trusted proxies: header parsing, the rightmost-untrusted rule, and its users."""
from __future__ import annotations

import ipaddress
import logging
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from web_support import get_csrf

from node.platform import appkeys
from node.app import create_app
from node.edge.clientip import CLIENT_IP, client_ip, parse_hop, rightmost_untrusted, trusted_networks
from node.platform.config import ConfigError, build_config
from node.platform.config import replace as config_replace

PROXY = "127.0.0.1"  # the test client's peer
ALICE, BOB = "203.0.113.7", "198.51.100.23"
PING = "/api/v1/posts"  # cheap, unauthenticated


def request(
    peer: str | None, headers: list[tuple[str, str]] | None = None, trusted: tuple[str, ...] = (),
) -> web.Request:
    """A request from `peer` (None: no address, as from a Unix socket) to a node trusting `trusted`."""
    app = web.Application()
    app[appkeys.CONFIG] = config_replace(build_config({}, env={}), server={"trusted_proxies": trusted})
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 50000) if name == "peername" and peer is not None else default
    )
    return make_mocked_request("GET", "/", headers=CIMultiDict(headers or []), app=app, transport=transport)


def xff(*values: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", v) for v in values]


# ---- parsing one hop --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("  192.0.2.1 ", "192.0.2.1"),
        ("192.0.2.1:4711", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
    ],
)
def test_parse_hop_reads_addresses_with_and_without_ports(value, expected):
    assert str(parse_hop(value)) == expected


@pytest.mark.parametrize(
    "value",
    ["", None, "unknown", "_hidden", "_SEVKISEK", "not an ip", "192.0.2.256", "192.0.2.1:http", "192.0.2.1:",
     "[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:port", "2001:db8::1:4711:x", "1.2.3.4, 5.6.7.8",
     "192.0.2.1:\u00b2"],
)
def test_parse_hop_refuses_everything_else(value):
    assert parse_hop(value) is None


def test_trusted_networks_are_parsed_once_per_list():
    trusted_networks.cache_clear()
    first = trusted_networks(("10.0.0.0/8", "2001:db8::/32"))
    assert first == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert trusted_networks(("10.0.0.0/8", "2001:db8::/32")) is first
    assert trusted_networks.cache_info().hits == 1 and trusted_networks.cache_info().misses == 1


# ---- the rightmost-untrusted rule -------------------------------------------------------------


def test_no_trusted_proxies_means_the_peer_and_no_header_is_read():
    req = request(PROXY, xff(ALICE) + [("Forwarded", f"for={BOB}")])
    assert client_ip(req) == PROXY


def test_an_untrusted_peer_is_the_client_whatever_it_claims():
    req = request("192.0.2.99", xff(ALICE), trusted=("10.0.0.0/8",))
    assert client_ip(req) == "192.0.2.99"


def test_a_trusted_peer_hands_over_to_the_rightmost_hop():
    assert client_ip(request("10.0.0.2", xff(ALICE), trusted=("10.0.0.0/8",))) == ALICE


def test_a_forged_leftmost_entry_is_not_used():
    # The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the address it saw.
    req = request("10.0.0.2", xff(f"6.6.6.6, {ALICE}"), trusted=("10.0.0.0/8",))
    assert client_ip(req) == ALICE


def test_a_chain_of_trusted_proxies_is_skipped_from_the_right():
    # client -> edge proxy 10.1.0.1 -> internal proxy 10.2.0.1 -> load balancer 10.3.0.1 (our peer)
    req = request("10.3.0.1", xff(f"6.6.6.6, {ALICE}, 10.1.0.1", "10.2.0.1"), trusted=("10.0.0.0/8",))
    assert client_ip(req) == ALICE
    # The first untrusted hop ends the walk, even if a trusted one stands left of it.
    req = request("10.3.0.1", xff(f"10.9.9.9, {ALICE}, 10.1.0.1"), trusted=("10.0.0.0/8",))
    assert client_ip(req) == ALICE


def test_every_hop_trusted_gives_the_leftmost():
    req = request("10.3.0.1", xff("10.1.0.1, 10.2.0.1"), trusted=("10.0.0.0/8",))
    assert client_ip(req) == "10.1.0.1"


def test_several_networks_and_single_addresses():
    trusted = ("127.0.0.1", "172.16.0.0/12", "2001:db8:1::/48")
    req = request(PROXY, xff(f"{ALICE}, 2001:db8:1::5, 172.20.0.3"), trusted=trusted)
    assert client_ip(req) == ALICE
    req = request(PROXY, xff(f"{ALICE}, 127.0.0.2"), trusted=trusted)  # 127.0.0.2 is not 127.0.0.1
    assert client_ip(req) == "127.0.0.2"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("garbage", "10.0.0.2"),  # nothing valid: the peer
        (f"{ALICE}, garbage", "10.0.0.2"),  # a hop without an address: the nearest valid hop to its right
        (f"{ALICE}, unknown, 10.1.0.1", "10.1.0.1"),
        (f"{ALICE},, 10.1.0.1", "10.1.0.1"),
        (f"garbage, {ALICE}", ALICE),  # garbage left of the client is never reached
        (f"{ALICE}:51234", ALICE),
        ("   ", "10.0.0.2"),
        ("," * 50, "10.0.0.2"),
        ("\u00e9\u00e9\u00e9, \x7f", "10.0.0.2"),
    ],
)
def test_malformed_values_fall_back_to_the_nearest_valid_hop(header, expected):
    assert client_ip(request("10.0.0.2", xff(header), trusted=("10.0.0.0/8",))) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"for={ALICE}", ALICE),
        (f'for="{ALICE}:4711";proto=https;by=10.0.0.2', ALICE),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('For="[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        (f"for=6.6.6.6, for={ALICE}, for=10.1.0.1", ALICE),  # forged leftmost, trusted hop skipped
        (f"for=6.6.6.6, for={ALICE}", ALICE),
        (f"for={ALICE}, for=_hidden", "10.0.0.2"),  # obfuscated: ignored, and nothing beyond it believed
        (f"for={ALICE}, for=unknown, for=10.1.0.1", "10.1.0.1"),
        (f"for={ALICE}, proto=https", "10.0.0.2"),  # an element without for= names no one
        ("for=[2001:db8::1]", "10.0.0.2"),  # unquoted IPv6 is invalid syntax
        (f"nonsense;;, for={ALICE}", ALICE),
        ("%%%", "10.0.0.2"),
    ],
)
def test_forwarded_header(header, expected):
    assert client_ip(request("10.0.0.2", [("Forwarded", header)], trusted=("10.0.0.0/8",))) == expected


def test_several_forwarded_lines_are_one_list():
    req = request("10.0.0.2", [("Forwarded", f"for=6.6.6.6, for={ALICE}"), ("Forwarded", "for=10.1.0.1")],
                  trusted=("10.0.0.0/8",))
    assert client_ip(req) == ALICE


def test_x_forwarded_for_wins_over_forwarded():
    # Proxies commonly append X-Forwarded-For and pass a client's Forwarded through unchanged.
    req = request("10.0.0.2", xff(ALICE) + [("Forwarded", "for=6.6.6.6")], trusted=("10.0.0.0/8",))
    assert client_ip(req) == ALICE
    req = request("10.0.0.2", xff("  ") + [("Forwarded", f"for={ALICE}")], trusted=("10.0.0.0/8",))
    assert client_ip(req) == ALICE  # an empty X-Forwarded-For is no header


def test_ipv6_peers_and_hops():
    trusted = ("2001:db8:ffff::/48",)
    assert client_ip(request("2001:db8:ffff::2", xff("2001:db8::7"), trusted=trusted)) == "2001:db8::7"
    assert client_ip(request("2001:db8:ffff::2", xff(f"[2001:db8::7]:80, {ALICE}"), trusted=trusted)) == ALICE
    # An untrusted IPv6 peer; an IPv4 network never contains an IPv6 address.
    assert client_ip(request("2001:db8::9", xff(ALICE), trusted=("0.0.0.0/0",))) == "2001:db8::9"
    assert client_ip(request("2001:DB8::9", trusted=trusted)) == "2001:db8::9"


def test_ipv4_mapped_peer_is_matched_and_named_as_ipv4():
    assert client_ip(request("::ffff:10.0.0.2", xff(ALICE), trusted=("10.0.0.0/8",))) == ALICE
    assert client_ip(request("::ffff:192.0.2.5", xff(ALICE))) == "192.0.2.5"


def test_a_peer_without_an_address_is_unknown_and_not_trusted():
    assert client_ip(request(None, xff(ALICE), trusted=("0.0.0.0/0", "::/0"))) == "unknown"
    assert client_ip(request("", xff(ALICE), trusted=("0.0.0.0/0", "::/0"))) == "unknown"


def test_the_answer_is_cached_on_the_request():
    req = request("10.0.0.2", xff(ALICE), trusted=("10.0.0.0/8",))
    assert client_ip(req) == ALICE and req[CLIENT_IP] == ALICE
    req[CLIENT_IP] = "cached"
    assert client_ip(req) == "cached"


def test_rightmost_untrusted_directly():
    nets = trusted_networks(("10.0.0.0/8",))
    peer = ipaddress.ip_address("10.0.0.1")
    assert str(rightmost_untrusted(peer, [ALICE, "10.0.0.3"], nets)) == ALICE
    assert rightmost_untrusted(peer, [], nets) == peer
    assert str(rightmost_untrusted(ipaddress.ip_address(BOB), [ALICE], nets)) == BOB


# ---- config -------------------------------------------------------------------------------------


def test_config_accepts_addresses_and_networks_from_toml_and_env():
    cfg = build_config({"server": {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]}}, env={})
    assert cfg.server.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8")
    cfg = build_config({}, env={"REEF_SERVER__TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    assert cfg.server.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert build_config({}, env={}).server.trusted_proxies == ()


@pytest.mark.parametrize("entry", ["nginx", "10.0.0.0/33", "10.0.0.1/8", "", "*", "192.168.1", "fe80::/129"])
def test_config_refuses_a_bad_entry_naming_it(entry):
    with pytest.raises(ConfigError) as info:
        build_config({"server": {"trusted_proxies": ["127.0.0.1", entry]}}, env={})
    assert f"{entry!r} in [server] trusted_proxies" in info.value.message
    assert '["127.0.0.1", "10.0.0.0/8"]' in info.value.hint


def test_config_refuses_a_bad_entry_from_the_environment_and_a_non_list():
    with pytest.raises(ConfigError, match="'10.0.0.300' in \\[server\\] trusted_proxies"):
        build_config({}, env={"REEF_SERVER__TRUSTED_PROXIES": "127.0.0.1,10.0.0.300"})
    with pytest.raises(ConfigError, match="list of strings"):
        build_config({"server": {"trusted_proxies": "127.0.0.1"}}, env={})


# ---- over HTTP ----------------------------------------------------------------------------------


async def _statuses(client, forwarded_for: list[str]) -> list[int]:
    return [(await client.get(PING, headers={"X-Forwarded-For": f})).status for f in forwarded_for]


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(
        server={"trusted_proxies": (PROXY,)}, limits={"unauthenticated_per_minute": 2},
    )))
    assert await _statuses(client, [ALICE, ALICE, ALICE]) == [200, 200, 429]
    resp = await client.get(PING, headers={"X-Forwarded-For": BOB})
    assert resp.status == 200 and resp.headers["X-RateLimit-Remaining"] == "1"
    # Forging a leftmost entry does not buy a fresh budget: the proxy's appended entry counts.
    assert await _statuses(client, [f"1.1.1.{i}, {ALICE}" for i in range(3)]) == [429, 429, 429]
    # Without the header the proxy itself is the client, with a budget of its own.
    assert (await client.get(PING)).status == 200


async def test_without_trust_the_header_is_ignored_and_everyone_shares_the_peer(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits={"unauthenticated_per_minute": 2})))
    assert await _statuses(client, [ALICE, BOB, "192.0.2.1"]) == [200, 200, 429]


async def test_a_trusted_network_not_holding_the_peer_ignores_the_header(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(
        server={"trusted_proxies": ("10.0.0.0/8", "::1")}, limits={"unauthenticated_per_minute": 2},
    )))
    assert await _statuses(client, [ALICE, BOB, "192.0.2.1"]) == [200, 200, 429]


async def _register(client, name: str, forwarded_for: str) -> int:
    resp = await client.post("/api/v1/agents/register", json={"name": name, "description": "tests"},
                             headers={"X-Forwarded-For": forwarded_for})
    return resp.status


async def test_registrations_per_address_follow_the_client_behind_a_trusted_proxy(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(
        server={"trusted_proxies": (PROXY,)}, limits={"registrations_per_hour": 1},
    )))
    assert await _register(client, "alice_1", ALICE) == 201
    assert await _register(client, "alice_2", ALICE) == 429
    assert await _register(client, "alice_3", f"6.6.6.6, {ALICE}") == 429
    assert await _register(client, "bob_1", BOB) == 201


async def test_registrations_per_address_without_trust_count_the_peer(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(limits={"registrations_per_hour": 1})))
    assert await _register(client, "alice_1", ALICE) == 201
    assert await _register(client, "bob_1", BOB) == 429


async def test_the_access_log_names_the_client(aiohttp_client, make_config, caplog):
    caplog.set_level(logging.INFO, logger="reef.access")
    trusting = await aiohttp_client(create_app(make_config(server={"trusted_proxies": (PROXY,)})))
    await trusting.get(PING, headers={"X-Forwarded-For": f"6.6.6.6, {ALICE}"})
    plain = await aiohttp_client(create_app(make_config()))
    await plain.get(PING, headers={"X-Forwarded-For": ALICE})
    remotes = [r.remote for r in caplog.records if r.name == "reef.access" and getattr(r, "path", "") == PING]
    assert remotes == [ALICE, PROXY]


async def test_web_login_and_claim_limits_count_the_client(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config(server={"trusted_proxies": (PROXY,)})))
    limiter = client.server.app[appkeys.RATE_LIMITER]
    token = await get_csrf(client, "/login")
    resp = await client.post("/login", headers={"X-Forwarded-For": ALICE},
                             data={"csrf_token": token, "email": "nobody@example.org", "password": "guess guess"})
    assert resp.status == 401
    await client.post("/claim/no-such-token", headers={"X-Forwarded-For": BOB},
                      data={"csrf_token": token, "verification_code": "reef-X4B2"})
    # Each attempt took a token from its client's bucket (20 per window): one more leaves 18.
    assert (await limiter.hit(f"web:login:ip:{ALICE}", 20, 600.0)).remaining == 18
    assert (await limiter.hit(f"web:claim:ip:{BOB}", 20, 3600.0)).remaining == 18
    assert (await limiter.hit(f"web:login:ip:{PROXY}", 20, 600.0)).remaining == 19
