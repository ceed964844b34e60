"""JSON-LD: tolerant accessors for plain JSON, and pyld with bundled contexts that never touches the network."""
from __future__ import annotations

import socket

import pytest
from pyld import jsonld as pyld

from federation import jsonld

AS = "https://www.w3.org/ns/activitystreams#"
SEC = "https://w3id.org/security#"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails the test loudly."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def actor_doc(context):
    return {
        "@context": context,
        "id": "https://peer.example/users/alice",
        "type": "Person",
        "preferredUsername": "alice",
        "inbox": "https://peer.example/users/alice/inbox",
        "publicKey": {"id": "https://peer.example/users/alice#main-key", "owner": "https://peer.example/users/alice",
                      "publicKeyPem": "PEM"},
        "postingRestrictedToMods": False,
    }


def test_expand_with_the_bundled_contexts_never_fetches(no_network):
    for context in (
        ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        jsonld.CONTEXT,
        jsonld.LEMMY_CONTEXT,
        ["https://www.w3.org/ns/activitystreams", "https://pleroma.example/schemas/litepub-0.1.jsonld"],
    ):
        expanded = jsonld.expand(actor_doc(context))
        node = expanded[0]
        assert node["@type"] == [AS + "Person"]
        assert node[AS + "preferredUsername"] == [{"@value": "alice"}]
        assert node["http://www.w3.org/ns/ldp#inbox"] == [{"@id": "https://peer.example/users/alice/inbox"}]
        key = node[SEC + "publicKey"][0]
        assert key["@id"] == "https://peer.example/users/alice#main-key"
        assert key[SEC + "publicKeyPem"] == [{"@value": "PEM"}]
    compacted = jsonld.compact(jsonld.expand(actor_doc(jsonld.CONTEXT)))
    assert compacted["publicKey"]["publicKeyPem"] == "PEM"
    assert no_network == []


def test_an_unknown_context_is_refused_not_fetched(no_network):
    with pytest.raises(jsonld.ContextNotBundled):
        jsonld.document_loader("https://evil.example/context.jsonld")
    with pytest.raises(Exception) as info:
        jsonld.expand(actor_doc(["https://www.w3.org/ns/activitystreams", "https://evil.example/context.jsonld"]))
    assert "evil.example" in repr(info.value) or "evil.example" in str(info.value.__cause__ or info.value)
    # once installed (the app factory does it), even a bare pyld call uses the bundled loader
    jsonld.install_document_loader()
    with pytest.raises(Exception):
        pyld.expand(actor_doc(["https://elsewhere.example/ctx"]))
    assert pyld.expand(actor_doc("https://www.w3.org/ns/activitystreams"))[0]["@type"] == [AS + "Person"]
    assert no_network == []


def test_tolerant_accessors():
    assert jsonld.first_id("https://a/1") == "https://a/1"
    assert jsonld.first_id({"id": "https://a/2", "type": "Person"}) == "https://a/2"
    assert jsonld.first_id([{"type": "Link", "href": "https://a/3"}, "https://a/4"]) == "https://a/3"
    assert jsonld.first_id([None, 3, {}]) is None
    assert jsonld.first_id(None) is None
    assert jsonld.as_list(None) == [] and jsonld.as_list("x") == ["x"] and jsonld.as_list([1]) == [1]
    assert jsonld.ids(["https://a", {"id": "https://b"}, "https://a"]) == ["https://a", "https://b"]
    assert jsonld.get_str({"name": ["one"]}, "name") == "one"
    assert jsonld.get_str({"name": {"@value": "v"}}, "name") == "v"
    assert jsonld.get_str({"name": 5}, "name", "d") == "d"
    assert jsonld.get_str("not a dict", "name") is None
    assert jsonld.get_type({"type": ["Person", "Service"]}) == "Person"
    assert jsonld.has_type({"type": ["Object", "Note"]}, "Note", "ChatMessage")
    assert not jsonld.has_type({"type": "Page"}, "Note")
