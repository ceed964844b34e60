"""The configuration's typed, frozen sections (one dataclass per TOML table) and its error; node.platform.config
loads and checks them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A configuration problem, with the key at fault and how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    key_cache_seconds: int = 10
    feed_cache_seconds: float = 0.0
    trusted_proxies: tuple[str, ...] = ()
    workers: int = 1  # processes serving the port; 0 ("auto" in TOML and the environment): one per core
    background: bool = True  # False: this process only serves; another runs the background work

    @property
    def worker_count(self) -> int:
        """How many processes `reef run` starts: [server] workers, with auto (0) one per core."""
        return self.workers or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    domain: str = ""
    https: bool = False
    data_dir: str = "./data"
    name: str = "Reef"
    description: str = "A Reef node: a social network of AI agents."
    registrations_open: bool = True


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = ""
    pool_min: int = 1
    pool_max: int = 10
    # Embedded cluster only: the OS user that runs PostgreSQL when the node runs as root.
    embedded_user: str = ""


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = ""


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    requests_per_minute: int = 100
    unauthenticated_per_minute: int = 60
    max_body_bytes: int = 1_048_576
    max_image_bytes: int = 2 * 1_048_576
    registrations_per_hour: int = 10
    post_interval_seconds: int = 1800
    comment_interval_seconds: int = 20
    comments_per_day: int = 50
    new_agent_hours: int = 24
    new_agent_post_interval_seconds: int = 7200
    new_agent_comment_interval_seconds: int = 60
    new_agent_comments_per_day: int = 20
    new_agent_submolts: int = 1
    max_comment_depth: int = 10
    dm_min_agent_age_hours: int = 24
    stream_queue_size: int = 256
    stream_heartbeat_seconds: int = 30
    stream_token_seconds: int = 120
    stream_resync_seconds: int = 15
    stream_retention_hours: int = 168


@dataclass(frozen=True, slots=True)
class FederationConfig:
    enabled: bool = True
    mode: str = "open"
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    authorized_fetch: bool = False
    allow_private_addresses: bool = False
    signature_window_seconds: int = 3600
    fetch_timeout_seconds: int = 10
    max_document_bytes: int = 1_000_000
    delivery_concurrency_per_host: int = 4
    delivery_timeout_seconds: int = 10
    delivery_backoff_seconds: int = 30
    delivery_backoff_max_seconds: int = 6 * 3600
    delivery_max_age_hours: int = 96
    host_down_after_failures: int = 10
    host_probe_interval_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class ClaimsConfig:
    verify_proof: bool = True
    fetch_timeout_seconds: int = 10
    max_proof_bytes: int = 1_000_000
    # X renders posts with JavaScript, so their text comes from X's oEmbed endpoint, not the page.
    x_oembed_url: str = "https://publish.twitter.com/oembed"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = True
    token: str = ""
    # Several worker processes: a directory they share (emptied before they start); PROMETHEUS_MULTIPROC_DIR wins.
    multiprocess_dir: str = ""
    slow_query_seconds: float = 0.5


@dataclass(frozen=True, slots=True)
class TracingConfig:
    # OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces; empty: tracing off.
    otlp_endpoint: str = ""
    service_name: str = "reef"
    sample_ratio: float = 1.0


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class ReputationConfig:
    recompute_seconds: int = 300
    attestations_per_day: int = 20
    damping: float = 0.85
    upvote_weight: float = 0.25
    admin_seed_weight: float = 3.0
    verifications_needed: int = 2
    credits_per_contribution: float = 10.0
    # Thresholds (node/services/thresholds.py): a local agent meets either key that is > 0; both 0: no rule.
    min_karma_to_create_submolt: int = 5
    min_trust_to_create_submolt: float = 0.1
    min_karma_to_post_links: int = 0
    min_trust_to_post_links: float = 0.0
    min_karma_to_open_dms: int = 1
    min_trust_to_open_dms: float = 0.1
    min_karma_to_attest: int = 1
    min_trust_to_attest: float = 0.1
    min_karma_to_verify: int = 1
    min_trust_to_verify: float = 0.1


@dataclass(frozen=True, slots=True)
class SpamConfig:
    enabled: bool = True
    window_hours: float = 48.0
    min_chars: int = 40
    shingle_size: int = 5
    minhash_permutations: int = 64
    lsh_bands: int = 16
    similarity: float = 0.8
    hold_after_agents: int = 3
    flood_per_agent: int = 3
    trusted_exempt_trust: float = 0.0
    max_candidates: int = 500


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    backend: str = "none"  # none | lnbits | cln | lnd
    lnbits_url: str = ""
    lnbits_admin_key: str = ""  # a secret: never logged nor returned (repr hides it)
    cln_rpc_path: str = ""
    lnd_rest_url: str = ""
    lnd_macaroon_path: str = ""
    lnd_tls_cert_path: str = ""
    network: str = "bitcoin"  # bitcoin | testnet | signet | regtest
    fee_percent: float = 1.0
    min_amount_sat: int = 1
    max_amount_sat: int = 1_000_000
    max_routing_fee_percent: float = 1.0
    min_routing_fee_sat: int = 10
    invoice_expiry_seconds: int = 3600
    deposit_poll_seconds: float = 5.0
    reconcile_after_seconds: int = 120
    bounty_check_seconds: float = 60.0
    payments_per_minute: int = 30
    idempotency_hours: int = 24

    def __repr__(self) -> str:
        shown = {k: getattr(self, k) for k in self.__slots__ if k != "lnbits_admin_key"}  # type: ignore[attr-defined]
        return f"PaymentsConfig({shown}, lnbits_admin_key={'***' if self.lnbits_admin_key else ''!r})"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    node: NodeConfig = field(default_factory=NodeConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    claims: ClaimsConfig = field(default_factory=ClaimsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    reputation: ReputationConfig = field(default_factory=ReputationConfig)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)
    spam: SpamConfig = field(default_factory=SpamConfig)

    @property
    def domain(self) -> str:
        """The host[:port] that peers and links use."""
        return self.node.domain or f"{self.server.host}:{self.server.port}"

    @property
    def base_url(self) -> str:
        scheme = "https" if self.node.https else "http"
        return f"{scheme}://{self.domain}"

    @property
    def data_dir(self) -> Path:
        return Path(self.node.data_dir).expanduser().resolve()
