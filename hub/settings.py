"""The hub's one settings object, built once at start-up and passed down.

Sources, highest first: keyword arguments, ``HUB_*`` environment variables (nested with ``__``,
e.g. ``HUB_SMTP__HOST``), the TOML file named by ``HUB_CONFIG_FILE`` (if any), then defaults. A bad
value stops start-up with a message naming the variable. Nothing below the factories reads
``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.ops.settings import OpsSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
NORRBOTTEN = REPO_ROOT / "deploy" / "norrbotten"


class KafkaSettings(BaseModel):
    """How the hub reaches Kafka."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:19092"
    client_id: str = "dischargehub"
    # Prefix for every topic name: lets tests and parallel environments share one broker.
    topic_prefix: str = ""
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    # Replication for provisioned topics; 3 in production, 1 for the local single node.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)


class SmtpSettings(BaseModel):
    """Outgoing e-mail (aiosmtplib)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=1, le=65535)
    security: Literal["plain", "starttls", "tls"] = "plain"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "samordnad-utskrivning@example.se"
    timeout_s: float = Field(default=10.0, gt=0)


class GatewaySettings(BaseModel):
    """Settings of the HTTP ingest gateway (``Settings.gateway``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The key file (YAML or JSON); None means no key is valid and every request gets 401.
    api_keys_file: Path | None = None
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Per-process memory of accepted message ids (see producers.gateway on what this guarantees).
    idempotency_cache_size: int = Field(default=10_000, ge=1)
    health_timeout_s: float = Field(default=2.0, gt=0, le=60)


class Settings(BaseSettings):
    """Everything configurable about one hub process."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    smtp: SmtpSettings = SmtpSettings()
    gateway: GatewaySettings = GatewaySettings()
    ops: OpsSettings = OpsSettings()
    database_url: str = "sqlite+aiosqlite:///./.run/hub.sqlite3"
    time_zone: str = "Europe/Stockholm"
    language: Literal["sv", "en"] = "sv"
    directory_file: Path = NORRBOTTEN / "directory.yaml"
    oncall_file: Path = NORRBOTTEN / "oncall.yaml"
    public_base_url: str = "http://127.0.0.1:8080"
    # Signs one-click receipt and acknowledgement links; set a long random value in production.
    link_secret: SecretStr = SecretStr("change-me-local-only")
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown time zone {value!r}"
            raise ValueError(msg) from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        # The one place outside the factories that reads the environment: which file to load.
        toml_file = os.environ.get("HUB_CONFIG_FILE")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)

    def topic(self, name: str) -> str:
        """The full topic name for a contract name, with this environment's prefix."""
        return f"{self.kafka.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """The consumer group id for a hub consumer, with this environment's prefix."""
        return f"{self.kafka.topic_prefix}{name}"
