"""Typed, frozen configuration loaded once from TOML and REEF_<SECTION>__<KEY> variables."""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import tomllib
import typing
import urllib.parse
from pathlib import Path
from typing import Any, Mapping

from .config_types import ClaimsConfig, Config, ConfigError, FederationConfig, PaymentsConfig, SpamConfig

ENV_PREFIX = "REEF_"
_SECTIONS = tuple(f.name for f in dataclasses.fields(Config))

_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("log", "level"): ("debug", "info", "warning", "error"),
    ("log", "format"): ("auto", "json", "text"),
    ("federation", "mode"): ("open", "allowlist"),
    ("payments", "backend"): ("none", "lnbits", "cln", "lnd"),
    ("payments", "network"): ("bitcoin", "testnet", "signet", "regtest"),
}


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {name: hints[name] for name in _SECTIONS}


def _field_types(section_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(section_cls)


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _type_name(tp: Any) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", float: "a number"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(section: str, key: str, tp: Any, value: Any, source: str) -> Any:
    """Check a TOML value against the field type; strings from the environment are parsed."""
    where = f"[{section}] {key}" + (f" (from {source})" if source else "")
    if (section, key) == ("server", "workers") and isinstance(value, str):
        if value.strip().lower() == "auto":
            return 0  # one per core (ServerConfig.worker_count)
        if not (source.startswith(ENV_PREFIX) and value.strip().isdigit()):
            raise ConfigError(f"Invalid value for {where}: {value!r}.", 'Write it as workers = 2, or workers = "auto" (one per core).')
    if isinstance(value, str) and source.startswith(ENV_PREFIX):
        raw = value.strip()
        try:
            if tp is bool:
                low = raw.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            if tp is int:
                return int(raw)
            if tp is float:
                return float(raw)
            if typing.get_origin(tp) in (list, tuple):
                return tuple(p.strip() for p in raw.split(",") if p.strip())
        except ValueError:
            raise ConfigError(
                f"Invalid value for {where}: {value!r} is not {_type_name(tp)}.",
                f"Set {source} to {_type_name(tp)}.",
            ) from None
        return raw
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"Invalid value for {where}: expected a list of strings, got {value!r}.",
                f'Write it as {key} = ["a", "b"].',
            )
        return tuple(value)
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        example = {str: '"text"', int: "8080", bool: "true", float: "1.5"}.get(tp, "...")
        raise ConfigError(
            f"Invalid value for {where}: expected {_type_name(tp)}, got {value!r}.",
            f"Write it as {key} = {example}.",
        )
    return value


def _validate(cfg: Config) -> None:
    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise ConfigError(
                f"Invalid value for [{section}] {key}: {value!r}.",
                f"Use one of: {', '.join(choices)}.",
            )
    if not 0 < cfg.server.port < 65536:
        raise ConfigError(
            f"Invalid value for [server] port: {cfg.server.port}.", "Use a port from 1 to 65535."
        )
    if cfg.server.workers < 0:
        raise ConfigError(
            f"Invalid value for [server] workers: {cfg.server.workers}.",
            'Use a number of processes >= 1, or "auto" (one per core).',
        )
    if cfg.server.key_cache_seconds < 0:
        raise ConfigError(
            f"Invalid value for [server] key_cache_seconds: {cfg.server.key_cache_seconds}.",
            "Use 0 (no cache) or a number of seconds, e.g. 10.",
        )
    if cfg.server.feed_cache_seconds < 0:
        raise ConfigError(
            f"Invalid value for [server] feed_cache_seconds: {cfg.server.feed_cache_seconds}.",
            "Use 0 (no cache) or a few seconds, e.g. 1.",
        )
    for entry in cfg.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ConfigError(
                f"Invalid entry {entry!r} in [server] trusted_proxies: {exc}.",
                'List your proxies as IP addresses or CIDR networks, e.g. trusted_proxies = ["127.0.0.1", "10.0.0.0/8"].',
            ) from None
    for key in ("requests_per_minute", "unauthenticated_per_minute", "max_body_bytes", "max_image_bytes",
                "max_comment_depth"):
        if getattr(cfg.limits, key) <= 0:
            raise ConfigError(f"Invalid value for [limits] {key}: it must be positive.", f"Set {key} to a number above 0.")
    if cfg.limits.new_agent_submolts < 0:
        raise ConfigError(
            f"Invalid value for [limits] new_agent_submolts: {cfg.limits.new_agent_submolts}.",
            "Use 0 (no limit) or how many submolts an agent may create in its first new_agent_hours, e.g. 1.",
        )
    if cfg.limits.stream_retention_hours < 0:
        raise ConfigError(
            f"Invalid value for [limits] stream_retention_hours: {cfg.limits.stream_retention_hours}.",
            "Use 0 (keep stream events forever) or a number of hours, e.g. 168 (7 days).",
        )
    for key in ("signature_window_seconds", "fetch_timeout_seconds", "max_document_bytes",
                "delivery_concurrency_per_host", "delivery_timeout_seconds", "delivery_backoff_seconds",
                "delivery_backoff_max_seconds", "delivery_max_age_hours", "host_down_after_failures",
                "host_probe_interval_seconds"):
        if getattr(cfg.federation, key) <= 0:
            raise ConfigError(
                f"Invalid value for [federation] {key}: {getattr(cfg.federation, key)}; it must be positive.",
                f"Set {key} to a number above 0 (default {getattr(FederationConfig(), key)}).",
            )
    if cfg.federation.delivery_backoff_max_seconds < cfg.federation.delivery_backoff_seconds:
        raise ConfigError(
            f"Invalid value for [federation] delivery_backoff_max_seconds: {cfg.federation.delivery_backoff_max_seconds}"
            f" is less than delivery_backoff_seconds ({cfg.federation.delivery_backoff_seconds}).",
            "Set delivery_backoff_max_seconds to at least delivery_backoff_seconds (defaults 21600 and 30).",
        )
    for key in ("fetch_timeout_seconds", "max_proof_bytes"):
        if getattr(cfg.claims, key) <= 0:
            raise ConfigError(
                f"Invalid value for [claims] {key}: {getattr(cfg.claims, key)}; it must be positive.",
                f"Set {key} to a number above 0 (default {getattr(ClaimsConfig(), key)}).",
            )
    try:
        oembed = urllib.parse.urlsplit(cfg.claims.x_oembed_url)
        oembed_ok = oembed.scheme in ("http", "https") and bool(oembed.hostname) and not (oembed.query or oembed.fragment)
    except ValueError:
        oembed_ok = False
    if not oembed_ok:
        raise ConfigError(
            f"Invalid value for [claims] x_oembed_url: {cfg.claims.x_oembed_url!r}.",
            'Give an http(s) URL without a query, e.g. x_oembed_url = "https://publish.twitter.com/oembed".',
        )
    for key in ("allow", "block"):
        for host in getattr(cfg.federation, key):
            if not host or "/" in host or "@" in host or any(c.isspace() for c in host):
                raise ConfigError(
                    f"Invalid host {host!r} in [federation] {key}.",
                    'List hosts as host or host:port, e.g. block = ["spam.example", "127.0.0.1:8081"].',
                )
    rep = cfg.reputation
    if not 0 < rep.damping < 1 or rep.recompute_seconds < 0 or rep.attestations_per_day < 1 or min(
            rep.upvote_weight, rep.admin_seed_weight) < 0 or rep.verifications_needed < 1 \
            or rep.credits_per_contribution <= 0:
        raise ConfigError(
            f"Invalid [reputation] section: {rep}.",
            "Use 0 < damping < 1, recompute_seconds >= 0 (0: no job), attestations_per_day >= 1, "
            "upvote_weight, admin_seed_weight >= 0, verifications_needed >= 1 and credits_per_contribution > 0.",
        )
    for key in rep.__slots__:  # type: ignore[attr-defined]
        if key.startswith("min_") and getattr(rep, key) < 0:
            raise ConfigError(
                f"Invalid [reputation] {key} = {getattr(rep, key)}.",
                f"Use {key} >= 0 (0: this measure does not count for the rule; both keys of a rule 0: no rule).",
            )
    _validate_payments(cfg.payments)
    _validate_spam(cfg.spam)
    if cfg.database.pool_min < 1 or cfg.database.pool_max < cfg.database.pool_min:
        raise ConfigError(
            "Invalid [database] pool_min/pool_max.", "Use 1 <= pool_min <= pool_max."
        )
    for key in ("url",):
        url = cfg.database.url
        if url and not url.startswith(("postgres://", "postgresql://")):
            raise ConfigError(
                f"Invalid value for [database] {key}: {url!r} is not a PostgreSQL URL.",
                "Use postgresql://user@host:5432/dbname, or leave it empty for the embedded database.",
            )
    if cfg.metrics.slow_query_seconds <= 0:
        raise ConfigError(
            f"Invalid value for [metrics] slow_query_seconds: {cfg.metrics.slow_query_seconds}.",
            "Use a positive number of seconds, e.g. 0.5.",
        )
    _validate_tracing(cfg)
    if cfg.redis.url and not cfg.redis.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"Invalid value for [redis] url: {cfg.redis.url!r}.",
            "Use redis://host:6379/0, or leave it empty to run without Redis.",
        )
    if "/" in cfg.node.domain or "://" in cfg.node.domain:
        raise ConfigError(
            f"Invalid value for [node] domain: {cfg.node.domain!r}.",
            'Give only host[:port], e.g. domain = "reef.example.org"; the scheme comes from [node] https.',
        )


def _validate_payments(pay: PaymentsConfig) -> None:
    if not 0 <= pay.fee_percent < 100 or not 0 <= pay.max_routing_fee_percent <= 100:
        raise ConfigError(
            f"Invalid [payments] fee_percent {pay.fee_percent} or max_routing_fee_percent {pay.max_routing_fee_percent}.",
            "Use 0 <= fee_percent < 100 (default 1.0) and 0 <= max_routing_fee_percent <= 100 (default 1.0).",
        )
    if pay.min_amount_sat < 1 or pay.max_amount_sat < pay.min_amount_sat:
        raise ConfigError(
            f"Invalid [payments] min_amount_sat {pay.min_amount_sat} / max_amount_sat {pay.max_amount_sat}.",
            "Use 1 <= min_amount_sat <= max_amount_sat (defaults 1 and 1000000).",
        )
    for key in ("min_routing_fee_sat", "reconcile_after_seconds"):
        if getattr(pay, key) < 0:
            raise ConfigError(f"Invalid value for [payments] {key}: it must be 0 or more.", f"Set {key} to 0 or more.")
    for key in ("invoice_expiry_seconds", "deposit_poll_seconds", "bounty_check_seconds", "idempotency_hours"):
        if getattr(pay, key) <= 0:
            raise ConfigError(
                f"Invalid value for [payments] {key}: it must be positive.",
                f"Set {key} to a number above 0 (default {getattr(PaymentsConfig(), key)}).",
            )
    if pay.backend == "cln" and not pay.cln_rpc_path:
        raise ConfigError('[payments] backend = "cln" needs cln_rpc_path.',
                          "Give the path of lightningd's socket, e.g. cln_rpc_path = \"/home/ln/.lightning/bitcoin/lightning-rpc\".")
    if pay.backend == "lnd" and not (pay.lnd_rest_url and pay.lnd_macaroon_path):
        raise ConfigError('[payments] backend = "lnd" needs lnd_rest_url and lnd_macaroon_path.',
                          'e.g. lnd_rest_url = "https://127.0.0.1:8080" and the path of admin.macaroon; '
                          "lnd_tls_cert_path for its self-signed tls.cert.")
    if pay.backend == "lnbits":
        url = urllib.parse.urlsplit(pay.lnbits_url) if pay.lnbits_url else None
        if url is None or url.scheme not in ("http", "https") or not url.hostname or not pay.lnbits_admin_key:
            raise ConfigError(
                '[payments] backend = "lnbits" needs lnbits_url (http(s)://host:port) and lnbits_admin_key.',
                "Copy the Admin key of the LNbits wallet that holds the node's funds; "
                "REEF_PAYMENTS__LNBITS_ADMIN_KEY keeps it out of the file.",
            )


def _validate_tracing(cfg: Config) -> None:
    tr = cfg.tracing
    if tr.otlp_endpoint:
        try:
            parts = urllib.parse.urlsplit(tr.otlp_endpoint)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(
                f"Invalid value for [tracing] otlp_endpoint: {tr.otlp_endpoint!r}.",
                'Give the collector\'s OTLP/HTTP traces URL, e.g. otlp_endpoint = "http://127.0.0.1:4318/v1/traces", '
                "or leave it empty to turn tracing off.",
            )
    if not 0 <= tr.sample_ratio <= 1 or not tr.service_name:
        raise ConfigError(
            f"Invalid [tracing] section: sample_ratio {tr.sample_ratio}, service_name {tr.service_name!r}.",
            "Use 0 <= sample_ratio <= 1 (1: every trace) and a non-empty service_name.",
        )


def build_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None, source: str = "") -> Config:
    """Build a Config from parsed TOML data and environment overrides."""
    sections = _section_types()
    values: dict[str, dict[str, Any]] = {name: {} for name in sections}
    for section, content in data.items():
        if section not in sections:
            raise ConfigError(
                f"Unknown section [{section}] in {source or 'the config'}.{_suggest(section, sections)}",
                f"Known sections: {', '.join(sections)}. Remove or rename [{section}].",
            )
        if not isinstance(content, dict):
            raise ConfigError(
                f"'{section}' in {source or 'the config'} must be a table.",
                f"Write it as a [{section}] section header followed by key = value lines.",
            )
        types_ = _field_types(sections[section])
        for key, value in content.items():
            if key not in types_:
                raise ConfigError(
                    f"Unknown key '{key}' in [{section}] of {source or 'the config'}.{_suggest(key, types_)}",
                    f"Known keys in [{section}]: {', '.join(types_)}. See config.example.toml.",
                )
            values[section][key] = _coerce(section, key, types_[key], value, "")
    for name, raw in (env if env is not None else os.environ).items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section not in sections:
            raise ConfigError(
                f"Unknown section '{section}' in environment variable {name}.{_suggest(section, sections)}",
                f"Use REEF_<SECTION>__<KEY> with a section from: {', '.join(sections)}.",
            )
        types_ = _field_types(sections[section])
        if key not in types_:
            raise ConfigError(
                f"Unknown key '{key}' in environment variable {name}.{_suggest(key, types_)}",
                f"Known keys in [{section}]: {', '.join(types_)}.",
            )
        values[section][key] = _coerce(section, key, types_[key], raw, name)
    cfg = Config(**{name: sections[name](**vals) for name, vals in values.items()})
    _validate(cfg)
    return cfg


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the config: the given file, else ./reef.toml if present, else defaults; then env overrides."""
    data: dict[str, Any] = {}
    source = ""
    if path is None and Path("reef.toml").is_file():
        path = "reef.toml"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(
                f"Config file not found: {path}.",
                "Check the path given to --config, or copy config.example.toml to reef.toml.",
            ) from None
        except (PermissionError, IsADirectoryError) as exc:
            raise ConfigError(
                f"Cannot read config file {path}: {exc.strerror}.",
                "Make the file readable by the user running reef.",
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"Config file {path} is not valid TOML: {exc}.",
                "Fix the syntax at the line named; strings need quotes, e.g. host = \"127.0.0.1\".",
            ) from None
    return build_config(data, env, source)


def _validate_spam(spam: SpamConfig) -> None:
    if spam.window_hours <= 0 or spam.min_chars < spam.shingle_size or not 1 <= spam.shingle_size <= 20 \
            or not 1 <= spam.lsh_bands <= spam.minhash_permutations <= 1024 \
            or spam.minhash_permutations % spam.lsh_bands or not 0 < spam.similarity <= 1 \
            or spam.hold_after_agents < 1 or spam.flood_per_agent < 1 or spam.trusted_exempt_trust < 0 \
            or spam.max_candidates < 1:
        raise ConfigError(
            f"Invalid [spam] section: {spam}.",
            "Use window_hours > 0, 1 <= shingle_size <= 20, min_chars >= shingle_size, lsh_bands dividing "
            "minhash_permutations (at most 1024), 0 < similarity <= 1, hold_after_agents, flood_per_agent and "
            "max_candidates >= 1, trusted_exempt_trust >= 0.",
        )


def replace(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of cfg with some keys changed, e.g. replace(cfg, server={"port": 0})."""
    changed = {
        name: dataclasses.replace(getattr(cfg, name), **vals) for name, vals in sections.items()
    }
    return dataclasses.replace(cfg, **changed)

