"""bovine-herd as a real ActivityPub peer for Reef's interop test. Runs under the bovine virtualenv
(.venv-bovine, made by scripts/test.sh), never under Reef's: bovine pins its own aiohttp, pyld and friends.

    python bovine_peer.py serve  --dir D --port P [--name moo]   # set up (once) and serve over plain http
    python bovine_peer.py client --dir D --port P ACTION [ARG]   # drive the actor through bovine's client API

`serve` creates the sqlite store D/herd.sqlite3, registers the actor with domain http://127.0.0.1:P (so its
ids are http), adds a did:key for bovine's client API (Moo-Auth-1; the secret goes to D/actor.json), and
serves BovineHerd on a Quart app with hypercorn until SIGTERM. bovine fetches JSON-LD contexts over the
network and caches them in ./bovine_jsonld_cache.sqlite; its cache is seeded from Reef's bundled contexts
first, so nothing is fetched (offline CI) and nothing waits on a network timeout.

`client` actions (JSON on stdout): actor (the actor document as its owner sees it), follow URL, accept
(accept every Follow in the inbox not accepted yet), note TEXT (a public Note to followers), inbox (the
inbox items, resolved through the actor's proxyUrl), followers, following.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTEXTS = REPO / "federation" / "contexts"

# What bovine would fetch: the security vocabulary (bundled with Reef) and two contexts of terms bovine
# uses for its own keys (did:key, Multikey). Offline, bovine caches an empty context for a context it
# cannot load; seeding the same for those two only skips its attempt.
SEEDED_CONTEXTS = {
    "https://w3id.org/security/v1": CONTEXTS / "security-v1.json",
    "https://www.w3.org/ns/did/v1": None,
    "https://w3id.org/security/multikey/v1": None,
}


def seed_jsonld_cache(workdir: Path) -> None:
    db = sqlite3.connect(workdir / "bovine_jsonld_cache.sqlite")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS jsonld (url TEXT PRIMARY KEY, context TEXT)")
        for url, path in SEEDED_CONTEXTS.items():
            context = json.loads(path.read_text())["@context"] if path else []
            db.execute("INSERT OR REPLACE INTO jsonld VALUES (?, ?)", (url, json.dumps(context)))
        db.commit()
    finally:
        db.close()


def domain_of(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def set_up(workdir: Path, port: int, name: str) -> dict:
    """Register the actor once (the store survives restarts) and return what the client needs."""
    info_file = workdir / "actor.json"
    if info_file.exists():
        return json.loads(info_file.read_text())
    from tortoise import Tortoise

    from bovine.crypto import generate_ed25519_private_key, private_key_to_did_key
    from bovine_store import bovine_admin_store

    db_url = f"sqlite://{workdir / 'herd.sqlite3'}"
    async with bovine_admin_store(db_url=db_url, domain=domain_of(port)) as store:
        await Tortoise.generate_schemas()
        bovine_name = await store.register(name)
        secret = generate_ed25519_private_key()
        await store.add_identity_string_to_actor(bovine_name, "reef-test", private_key_to_did_key(secret))
        actor = await store.actor_for_name(bovine_name)
        actor_id = actor.actor_object.id
    info = {"bovine_name": bovine_name, "secret": secret, "actor_id": actor_id, "handle": f"{name}@127.0.0.1:{port}"}
    info_file.write_text(json.dumps(info))
    return info


async def serve(workdir: Path, port: int, name: str) -> None:
    info = await set_up(workdir, port, name)
    import hypercorn.asyncio
    from hypercorn.config import Config
    from quart import Quart

    from bovine_herd import BovineHerd

    app = Quart(__name__)
    BovineHerd(app, db_url=f"sqlite://{workdir / 'herd.sqlite3'}")
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = "-"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"serving": domain_of(port), **{k: info[k] for k in ("actor_id", "handle")}}), flush=True)
    await hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait)


async def client(workdir: Path, port: int, action: str, arg: str | None) -> object:
    from bovine import BovineClient

    info = json.loads((workdir / "actor.json").read_text())
    async with BovineClient(domain=domain_of(port), secret=info["secret"]) as actor:
        activity_factory, object_factory = actor.factories
        if action == "actor":
            return actor.information
        if action == "follow":
            follow = activity_factory.follow(arg).build()
            resp = await actor.send_to_outbox(follow)
            return {"status": resp.status, "location": resp.headers.get("location")}
        if action == "note":
            note = object_factory.note(content=arg).as_public().build()
            resp = await actor.send_to_outbox(activity_factory.create(note).build())
            return {"status": resp.status, "location": resp.headers.get("location")}
        if action == "inbox":
            return [item async for item in actor.inbox()]
        if action == "accept":
            done_file = workdir / "accepted.json"
            done = set(json.loads(done_file.read_text())) if done_file.exists() else set()
            accepted = []
            async for item in actor.inbox():
                if not isinstance(item, dict) or item.get("type") != "Follow" or item.get("id") in done:
                    continue
                target = item.get("object")
                if (target.get("id") if isinstance(target, dict) else target) != actor.actor_id:
                    continue  # the proxy may embed the object it resolved
                resp = await actor.send_to_outbox(activity_factory.accept(item).build())
                if resp.status < 300:
                    done.add(item["id"])
                    accepted.append(item["id"])
            done_file.write_text(json.dumps(sorted(done)))
            return accepted
        if action in ("followers", "following"):
            collection = actor.information[action]
            return [item async for item in actor.collection_helper(collection)]
        raise SystemExit(f"unknown action {action!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("serve", "client"))
    parser.add_argument("action", nargs="?")
    parser.add_argument("arg", nargs="?")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--name", default="moo")
    args = parser.parse_args()
    workdir = args.dir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    seed_jsonld_cache(workdir)
    os.chdir(workdir)  # bovine opens its JSON-LD cache in the working directory when it is imported
    if args.command == "serve":
        asyncio.run(serve(workdir, args.port, args.name))
    else:
        result = asyncio.run(client(workdir, args.port, args.action, args.arg))
        json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
