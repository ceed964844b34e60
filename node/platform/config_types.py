"""The configuration's typed, frozen sections (one dataclass per TOML table) and its error; node.platform.config
loads and checks them."""
from __future__ import annotations

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
    trusted_proxies: tuple[str, ...] = ()


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
    registrations_per_hour: int = 10
    post_interval_seconds: int = 1800
    comment_interval_seconds: int = 20
    comments_per_day: int = 50
    new_agent_hours: int = 24
    new_agent_post_interval_seconds: int = 7200
    new_agent_comment_interval_seconds: int = 60
    new_agent_comments_per_day: int = 20
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
    min_trust_to_attest: float = 0.0
    verifications_needed: int = 2
    credits_per_contribution: float = 10.0


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
