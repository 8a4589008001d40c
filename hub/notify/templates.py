"""What a notification says: the rendered e-mail (subject, text, HTML) and the SMS/webhook body.

A notification leaves the secure network, so the templates are given a context built here from
an explicit list of digest fields, never the digest itself: the unit name, the number of
unreceipted deliveries, the age of the oldest, when the oldest was due (in Europe/Stockholm
local time), the level and target, and the sign-in link. A template cannot reach anything else,
even by mistake, and the tests scan every rendering for personnummer and for numbers that are
none of these.

Swedish is the default language, English is available (``Settings.language``). The wording
lives in the Jinja2 templates under ``templates/`` (one set per language; ``_wording.<lang>.j2``
holds the phrases that depend on level, target and count). HTML templates autoescape; the text
templates do not, so the unit name is also reduced to a single line here (it goes into the
``Subject:`` header, where a line break would be a header injection).

Weekday names are spelled out here rather than taken from the C locale: the process locale is
shared, rarely Swedish on servers, and changing it is not thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from hub.calendar import STOCKHOLM, require_aware
from topics.identifiers import mask_identity_numbers
from topics.messages import Escalation

__all__ = [
    "LANGUAGES",
    "MAX_LEVEL",
    "AgeParts",
    "Language",
    "RenderedMessage",
    "age_parts",
    "format_age",
    "format_local_time",
    "render",
    "webhook_payload",
]

Language = Literal["sv", "en"]

#: Languages with a full set of templates.
LANGUAGES: Final[tuple[Language, ...]] = ("sv", "en")

#: The highest escalation level (the templates say "level 2 of 3").
MAX_LEVEL: Final = 3

_TEMPLATES: Final = Path(__file__).resolve().parent / "templates"

_WEEKDAYS: Final[dict[Language, tuple[str, ...]]] = {
    "sv": ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}

_environment = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    # Only ``*.html.j2`` is HTML; the text, subject and SMS templates must not be escaped.
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    auto_reload=False,
)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """An e-mail ready to send: a one-line subject, a plain-text part and an HTML part."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class AgeParts:
    """A duration in whole days, hours and minutes (rounded down), as a notification shows it."""

    days: int
    hours: int
    minutes: int

    @property
    def total_minutes(self) -> int:
        """The whole duration in minutes."""
        return (self.days * 24 + self.hours) * 60 + self.minutes


def age_parts(age: timedelta) -> AgeParts:
    """Split ``age`` into days, hours and minutes; a negative age (clock skew) counts as zero."""
    total_minutes = max(0, int(age.total_seconds()) // 60)
    days, rest = divmod(total_minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return AgeParts(days, hours, minutes)


def format_age(age: timedelta, language: Language) -> str:
    """A short age: ``1 dygn 3 tim``, ``2 tim 5 min``, ``12 min`` (``1 day 3 h`` in English).

    Two units at most: the largest non-zero one and the next (dropped when zero).
    """
    parts = age_parts(age)
    if language == "sv":
        day_word = "dygn"
        hour_word, minute_word = "tim", "min"
    else:
        day_word = "day" if parts.days == 1 else "days"
        hour_word, minute_word = "h", "min"
    if parts.days:
        words = [f"{parts.days} {day_word}"]
        if parts.hours:
            words.append(f"{parts.hours} {hour_word}")
    elif parts.hours:
        words = [f"{parts.hours} {hour_word}"]
        if parts.minutes:
            words.append(f"{parts.minutes} {minute_word}")
    else:
        words = [f"{parts.minutes} {minute_word}"]
    return " ".join(words)


def format_local_time(instant: datetime, language: Language) -> str:
    """``instant`` as Europe/Stockholm wall time: ``lördag 2026-12-26 kl. 11:00``."""
    local = require_aware(instant, "instant").astimezone(STOCKHOLM)
    weekday = _WEEKDAYS[language][local.weekday()]
    clock = local.strftime("%H:%M")
    connector = "kl." if language == "sv" else "at"
    return f"{weekday} {local.date().isoformat()} {connector} {clock}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _context(escalation: Escalation, language: Language, now: datetime) -> dict[str, object]:
    # The only digest fields a template may see. Adding one here is a decision about what
    # leaves the secure network: the PII scan in tests/unit/test_notify_templates.py must agree.
    # The contract already masks personnummer in unit_name and link; masking again here keeps a
    # digest built without validation (``model_construct``) from leaking one.
    age = require_aware(now, "now") - escalation.oldest_arrived_at
    return {
        "unit_name": _one_line(mask_identity_numbers(escalation.unit_name)),
        "count": escalation.count,
        "age": format_age(age, language),
        "due": format_local_time(escalation.oldest_due_at, language),
        "level": escalation.level,
        "max_level": MAX_LEVEL,
        "target": escalation.target.value,
        "link": mask_identity_numbers(escalation.link),
    }


def _check_language(language: str) -> Language:
    if language == "sv":
        return "sv"
    if language == "en":
        return "en"
    msg = f"language: must be one of {', '.join(LANGUAGES)}"
    raise ValueError(msg)


def render(escalation: Escalation, language: Language, now: datetime) -> RenderedMessage:
    """The e-mail for ``escalation`` in ``language``, with the age of the oldest at ``now``."""
    lang = _check_language(language)
    context = _context(escalation, lang, now)
    subject = _environment.get_template(f"subject.{lang}.txt.j2").render(context)
    return RenderedMessage(
        subject=_one_line(subject),
        text=_environment.get_template(f"email.{lang}.txt.j2").render(context),
        html=_environment.get_template(f"email.{lang}.html.j2").render(context),
    )


def webhook_payload(escalation: Escalation, language: Language, now: datetime) -> dict[str, object]:
    """The JSON body for a webhook (an SMS gateway): the same facts, and a one-line SMS text.

    Keys: ``unit`` (the unit name), ``level``, ``count``, ``oldest_age_minutes``, ``link`` and
    ``text`` (the SMS wording in ``language``).
    """
    lang = _check_language(language)
    context = _context(escalation, lang, now)
    text = _environment.get_template(f"sms.{lang}.txt.j2").render(context)
    age = age_parts(require_aware(now, "now") - escalation.oldest_arrived_at)
    return {
        "unit": context["unit_name"],
        "level": escalation.level,
        "count": escalation.count,
        "oldest_age_minutes": age.total_minutes,
        "link": context["link"],
        "text": _one_line(text),
    }
