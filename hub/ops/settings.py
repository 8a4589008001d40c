"""Settings of the ops API and dashboard (proposed as ``Settings.ops``, env ``HUB_OPS__*``).

Framework-free, so ``hub.settings`` can hold an ``OpsSettings`` without importing FastAPI.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OpsSettings"]


class OpsSettings(BaseModel):
    """Where the ops app listens, who may use the recipient API, and how it behaves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # The per-unit key file (hub.ops.keys); None means no key is valid: every recipient call 401.
    unit_keys_file: Path | None = None
    # How often the dashboard page asks for fresh counts.
    dashboard_poll_s: float = Field(default=5.0, ge=0.2, le=300)
    # Bound on waiting for the broker's ack of a receipt from HTTP or a link.
    publish_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Bound on the dead-letter count read for /metrics.
    metrics_kafka_timeout_s: float = Field(default=3.0, gt=0, le=30)
    # Largest page of GET /v1/units/{hsa_id}/deliveries.
    max_page_size: int = Field(default=500, ge=1, le=5000)
