"""The one settings object: every knob, read from PICTOGRAPH_* environment variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pictograph.secret_key import weakness


def _rate_limit(value: str) -> str:
    try:
        items = parse_many(value)
    except ValueError:
        raise ValueError('must read like "10/minute" or "5 per 15 minutes; 100/day"') from None
    if any(item.amount < 1 for item in items):
        raise ValueError("must allow at least 1 request")
    return value


# One or more limits in the `limits` notation, joined by ";".
RateLimit = Annotated[str, AfterValidator(_rate_limit)]


def _proxies(value: str) -> str:
    entries = [entry.strip() for entry in value.split(",")] if value.strip() else []
    for entry in entries:
        try:
            # strict: "10.0.0.1/8" is a typo for 10.0.0.0/8 or for 10.0.0.1, not a guess.
            ipaddress.ip_network(entry, strict=True)
        except ValueError as error:
            raise ValueError(
                "must be IP addresses or networks separated by commas, like "
                f'"10.0.0.1, 172.16.0.0/12": {error}'
            ) from None
    return ", ".join(entries)


# Addresses and networks (CIDR) separated by commas.
ProxyList = Annotated[str, AfterValidator(_proxies)]


def _origins(value: str) -> str:
    entries = [entry.strip().rstrip("/") for entry in value.split(",")] if value.strip() else []
    for entry in entries:
        # An origin is a scheme, a host and maybe a port, exactly as a browser sends it in
        # Origin: a path or a wildcard would never match, and "*" would let every site in.
        scheme, _, rest = entry.partition("://")
        if scheme not in {"http", "https"} or not rest or "/" in rest or "*" in rest:
            raise ValueError(
                "must be origins separated by commas, like "
                f'"https://app.example.com, http://localhost:5173": {entry!r} is not one'
            )
    return ", ".join(entries)


# Web origins (scheme://host[:port]) separated by commas.
OriginList = Annotated[str, AfterValidator(_origins)]

# A level of Python's logging, in any case ("info" is INFO): anything else would stop
# start-up later, with a traceback from logging instead of a message naming the setting.
LogLevel = Annotated[Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"],
                     BeforeValidator(lambda value: value.upper() if isinstance(value, str)
                                     else value)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PICTOGRAPH_", extra="ignore")

    data_dir: Path = Path(".pictograph")
    # None means the embedded default: SQLite in data_dir, fakeredis, local disk.
    database_url: str | None = None
    redis_url: str | None = None
    # redis_url names any node of a Redis Cluster, which the client discovers from it.
    redis_cluster: bool = False
    s3_endpoint_url: str | None = None
    s3_bucket: str = "pictograph"
    s3_region: str = "us-east-1"
    # Unset, `pictograph serve` derives it from its own --host and --port (see
    # serving.served_base_url); behind a proxy it must be set to the proxy's address.
    public_base_url: str = "http://127.0.0.1:8000"
    # Required on PostgreSQL (see _strong_secret_key); validated even when unset.
    secret_key: Annotated[SecretStr | None, Field(validate_default=True)] = None

    celebrity_threshold: Annotated[int, Field(ge=1)] = 10_000
    media_url_ttl: Annotated[int, Field(ge=1, le=86_400)] = 300
    # How long the pre-signed S3 GET behind a /media redirect lives.
    media_redirect_ttl: Annotated[int, Field(ge=1, le=60)] = 10
    # "redirect" sends S3 clients to a short pre-signed GET; "stream" proxies the bytes.
    s3_media_delivery: Literal["redirect", "stream"] = "redirect"
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 20 * 1024 * 1024
    upload_ticket_ttl: Annotated[int, Field(ge=30, le=86_400)] = 900
    max_image_pixels: Annotated[int, Field(ge=1_000_000)] = 40_000_000
    # CPU seconds one photo may take to process, in a child process the kernel stops there
    # (the photo then fails). The costliest real photo we know, a 40 Mpx WebP, takes about 3.
    media_cpu_seconds: Annotated[int, Field(ge=1, le=600)] = 8
    token_ttl: Annotated[int, Field(ge=60)] = 30 * 24 * 3600
    # Argon2id cost. The defaults are argon2-cffi's RFC 9106 low-memory profile;
    # tests lower them because they hash hundreds of passwords.
    argon2_time_cost: Annotated[int, Field(ge=1)] = 3
    argon2_memory_kib: Annotated[int, Field(ge=8)] = 65_536
    argon2_parallelism: Annotated[int, Field(ge=1)] = 4

    # Connections per process; past it a command waits up to redis_pool_timeout seconds.
    redis_max_connections: Annotated[int, Field(ge=4)] = 256
    redis_pool_timeout: Annotated[float, Field(gt=0)] = 5.0
    # Whether a revocation's fences wait for a replica's acknowledgement (WAIT) before the
    # change commits (cache/replicas.py). "auto": on every master whose INFO replication
    # shows a replica online (the embedded fakeredis and a lone Redis never wait);
    # "require": on every master, so a master without a replica fails revocations with
    # "temporarily unavailable"; "off": never.
    redis_wait_replicas: Literal["auto", "require", "off"] = "auto"

    # Query limits, checked on every operation (HTTP and WebSocket) before it runs.
    # Depth counts fields on the longest path, the leaf included. Cost counts the fields
    # that will resolve, a connection's children once per item of its page (`first`).
    # The README's feed page (20 posts with author and media) is depth 5, cost 341; a
    # followers page of 100 costs 1,202; followers of followers, 100 each, 30,302.
    max_query_depth: Annotated[int, Field(ge=2)] = 10
    max_query_aliases: Annotated[int, Field(ge=0)] = 15
    max_query_tokens: Annotated[int, Field(ge=100)] = 1000
    max_query_cost: Annotated[int, Field(ge=1)] = 5000
    # Directives anywhere in a document. Only @include and @skip apply to a query here, at
    # most once each per place; past the limit a document is refused before validation.
    max_query_directives: Annotated[int, Field(ge=0)] = 10
    # Parsed and validated documents kept per process, so repeats skip both.
    query_cache_size: Annotated[int, Field(ge=0)] = 256
    # Largest /graphql request body; a larger one gets 413 before it is read.
    max_request_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    # Production may turn these off; without introspection, error messages stop
    # suggesting field names ("Did you mean ...").
    introspection: bool = True
    graphiql: bool = True
    # Rendered responses of signed-in queries, served in one Redis round trip while
    # nothing they show has changed (http/response_cache.py). They live at most this
    # long, and never past a tenth of media_url_ttl, so a photo URL handed out from the
    # cache still has most of its life.
    response_cache: bool = True
    response_cache_ttl: Annotated[int, Field(ge=1, le=3600)] = 60
    # Automatic persisted queries: documents registered by hash, kept this long unused.
    persisted_query_ttl: Annotated[int, Field(ge=60)] = 30 * 24 * 3600

    run_workers: bool = True
    token_sweep_interval: Annotated[float, Field(gt=0)] = 3600.0
    storage_sweep_interval: Annotated[float, Field(gt=0)] = 60.0
    # Seconds a stream message taken by a worker may go without a sign of life before
    # another worker takes it over (XAUTOCLAIM): how long a killed worker's job waits.
    # A working consumer renews its claim every third of it, however long the job runs.
    worker_claim_idle: Annotated[float, Field(gt=0)] = 5.0
    # On SIGTERM, the longest requests in flight are waited for, then (as long again)
    # the jobs workers hold; whatever waits for neither stops at once.
    shutdown_grace: Annotated[int, Field(ge=1, le=3600)] = 10
    log_level: LogLevel = "INFO"
    # uvicorn's line per request (at INFO). Off unless asked for: formatting and writing
    # it cost the warm feed read about a quarter of its throughput (README, Operators),
    # and the proxy or load balancer in front of several processes logs requests anyway.
    access_log: bool = False
    # Prometheus metrics on a listener of their own, never the API port; unset: none.
    # Loopback by default: only what runs beside the process (or is let in) scrapes it.
    metrics_port: Annotated[int | None, Field(ge=1, le=65_535)] = None
    metrics_host: str = "127.0.0.1"

    # The proxies whose X-Forwarded-For names the client (the per-address limits count
    # that address); from anyone else the header is ignored. None by default: a client
    # that could pick its own address would dodge every per-address limit.
    trusted_proxies: ProxyList = ""
    # Web origins other than the API's own whose pages may call it (CORS), and PUT photos
    # into the bucket (`pictograph migrate` writes its CORS rules). None by default: a page
    # on another site gets no answer it can read.
    cors_origins: OriginList = ""
    # The reference web client at / (pictograph/web/); a server that only answers an app
    # of its own can turn it off.
    web_app: bool = True

    # Rate limits, counted in Redis so every process shares them. logIn counts every
    # attempt before the password is looked at, so aliases, parallel requests and
    # several processes all draw on the same count: tightly per (username, address),
    # where the right password starts the count again; loosely per username from
    # addresses that have not logged in to that account within
    # log_in_known_address_ttl, so guesses from everywhere stay slow but cannot lock
    # the owner out of their usual address; loosely per address (a mobile carrier's NAT
    # puts many people behind one).
    rate_limit_log_in_per_ip: RateLimit = "30/minute"
    rate_limit_log_in_per_username_and_ip: RateLimit = "5 per 15 minutes; 20/day"
    rate_limit_log_in_per_username: RateLimit = "20 per 15 minutes; 100/day"
    log_in_known_address_ttl: Annotated[int, Field(ge=60)] = 30 * 24 * 3600
    rate_limit_sign_up_per_ip: RateLimit = "20/hour"
    rate_limit_mutations_per_user: RateLimit = "60/minute"
    rate_limit_uploads_per_user: RateLimit = "60/hour"
    rate_limit_media_per_viewer: RateLimit = "600/minute"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0]
        if scheme not in {"postgres", "postgresql", "asyncpg", "sqlite"}:
            raise ValueError("must start with postgres:// or sqlite://")
        return value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret_key(cls, value: SecretStr | None,
                           info: ValidationInfo) -> SecretStr | None:
        # On PostgreSQL the processes may run on many machines and must share one key;
        # a missing one would be generated per data dir, a weak one lets anybody forge
        # media URLs. SQLite lives on one machine, where the generated key serves all.
        database_url = info.data.get("database_url")
        if database_url is None or database_url.startswith("sqlite"):
            return value
        problem = weakness(value.get_secret_value() if value is not None else None)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_needs_a_node(cls, value: bool, info: ValidationInfo) -> bool:
        url = info.data.get("redis_url")
        if value and url is None:
            raise ValueError("needs PICTOGRAPH_REDIS_URL, a node of the cluster")
        if value and url is not None and url.startswith("unix://"):
            raise ValueError("a cluster is reached over TCP: redis:// or rediss://")
        if value and url is not None and urlsplit(url).path.strip("/") not in ("", "0"):
            raise ValueError("a cluster has database 0 only: drop the /N from the URL")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @property
    def trusted_proxy_list(self) -> list[str]:
        return self.trusted_proxies.split(", ") if self.trusted_proxies else []

    @property
    def cors_origin_list(self) -> list[str]:
        return self.cors_origins.split(", ") if self.cors_origins else []

    @property
    def response_ttl(self) -> int:
        """How long a rendered response lives (0: not cached)."""
        if not self.response_cache:
            return 0
        return min(self.response_cache_ttl, self.media_url_ttl // 10)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def embedded_storage(self) -> bool:
        return self.s3_endpoint_url is None

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite://{(self.data_dir / 'pictograph.sqlite3').resolve()}"

    def resolved_secret_key(self) -> bytes:
        """The configured key, or one generated once and kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret_key"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting at once must not each write their own key.
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


class SettingsError(Exception):
    """A setting is malformed; the message names each one."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            name = "PICTOGRAPH_" + "_".join(str(part) for part in problem["loc"]).upper()
            lines.append(f"{name}: {problem['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
