"""Logging, configured once: structlog for our events, stdlib loggers routed through the same chain.

One JSON stream in production, a console renderer on a TTY. Every event passes the redaction
processor, which masks anything that looks like a personnummer or samordningsnummer (Luhn-valid
10- or 12-digit numbers) in keys and values, recursively, after exceptions are formatted and
before rendering — so a traceback cannot leak one either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from topics.identifiers import mask_identity_numbers

__all__ = ["configure_logging", "get_logger", "redact_identity_numbers"]


def _redact(value: object) -> object:
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return mask_identity_numbers(value)
    if isinstance(value, Mapping):
        return {_redact(k): _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_redact(v) for v in value)
    # Anything else (ints, UUIDs, exceptions, models) is rendered through str() or repr() later:
    # mask that text, keeping the original object when there is nothing to mask.
    text = str(value)
    masked = mask_identity_numbers(text)
    return value if masked == text else masked


def redact_identity_numbers(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """Mask personnummer-like numbers anywhere in the event (a structlog processor)."""
    return {str(_redact(k)): _redact(v) for k, v in event_dict.items()}


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    fmt: Literal["auto", "console", "json"] = "auto",
    level: str = "INFO",
    stream: Any = None,
) -> None:
    """Set up structlog and the stdlib root logger once, for the whole process."""
    out = stream if stream is not None else sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and hasattr(out, "isatty") and out.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    exceptions: Processor = (
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        if not use_console
        else structlog.processors.format_exc_info
    )
    tail: list[Processor] = [exceptions, redact_identity_numbers]

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            *tail,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder(), *tail],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # FastStream gives its loggers a coloured stdout handler of their own and stops them
    # propagating: send them through this chain instead (one stream, redacted).
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("faststream")]:
        own = logging.getLogger(name)
        own.handlers.clear()
        own.propagate = True
    # Third-party chatter: keep warnings, drop per-record and per-request INFO noise.
    noisy = ["aiokafka", "kafka", "apscheduler", "sqlalchemy.engine", "uvicorn.access"]
    noisy.append("faststream")
    for name in noisy:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A bound logger; event names are constant dotted strings, variables go in keys."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def redact_mapping(values: MutableMapping[str, object]) -> dict[str, object]:
    """Redact an arbitrary mapping the same way (dead-letter details, alert details)."""
    return {k: _redact(v) for k, v in values.items()}
