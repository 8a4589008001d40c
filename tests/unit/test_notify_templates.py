"""Notification templates: wording per level, target and language; nothing but the allowed facts."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.directory import Unit, load_directory
from hub.notify.templates import (
    LANGUAGES,
    AgeParts,
    Language,
    age_parts,
    format_age,
    format_local_time,
    render,
    webhook_payload,
)
from hub.settings import NORRBOTTEN
from tests.support.notify import (
    DEFAULT_TARGETS,
    PATIENT_NAMES,
    make_escalation,
    realistic_digest,
    synthetic_personnummer,
)
from topics.identifiers import contains_identity_number
from topics.messages import Escalation, EscalationTarget

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 12, 26, 12, 0, tzinfo=UTC)  # Annandag jul, a holiday
DIRECTORY = load_directory(NORRBOTTEN / "directory.yaml")

SUBJECT_PREFIXES = {
    ("sv", 1): "Påminnelse: okvitterade meddelanden hos ",
    ("sv", 2): "Jour/beredskap: okvitterade meddelanden hos ",
    ("sv", 3): "Enhetschef: okvitterade meddelanden hos ",
    ("en", 1): "Reminder: unreceipted messages at ",
    ("en", 2): "On call: unreceipted messages at ",
    ("en", 3): "Unit manager: unreceipted messages at ",
}
AUDIENCE = {
    ("sv", EscalationTarget.UNIT_MAILBOX): "Till enheten – ",
    ("sv", EscalationTarget.ON_CALL): "Till jour/beredskap – ",
    ("sv", EscalationTarget.MANAGER): "Till enhetschef – ",
    ("en", EscalationTarget.UNIT_MAILBOX): "To the unit – ",
    ("en", EscalationTarget.ON_CALL): "To on-call staff – ",
    ("en", EscalationTarget.MANAGER): "To the unit manager – ",
}


def visible_text(markup: str) -> str:
    """What a reader of the HTML part sees: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", " ", markup))


def numbers_in(text: str, *, link: str) -> set[int]:
    """Every decimal number in ``text`` outside the sign-in link."""
    return {int(n) for n in re.findall(r"[0-9]+", text.replace(link, " "))}


def allowed_numbers(escalation: Escalation, now: datetime) -> set[int]:
    """The numbers a notification may show: count, level (of 3), age and due-time parts."""
    minutes = int((now - escalation.oldest_arrived_at).total_seconds()) // 60
    days, rest = divmod(max(minutes, 0), 24 * 60)
    hours, mins = divmod(rest, 60)
    due = escalation.oldest_due_at.astimezone(STOCKHOLM)
    in_name = {int(n) for n in re.findall(r"[0-9]+", escalation.unit_name)}
    return {
        escalation.count,
        escalation.level,
        3,
        days,
        hours,
        mins,
        due.year,
        due.month,
        due.day,
        due.hour,
        due.minute,
    } | in_name


def rendered_parts(escalation: Escalation, language: Language, now: datetime) -> dict[str, str]:
    """Every text that leaves the hub for this digest, by part."""
    message = render(escalation, language, now)
    payload = webhook_payload(escalation, language, now)
    return {
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "html_visible": visible_text(message.html),
        "webhook": json.dumps(payload, ensure_ascii=False),
        "sms": str(payload["text"]),
    }


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("target", list(EscalationTarget))
def test_every_level_target_and_language_renders(
    language: Language, level: int, target: EscalationTarget
) -> None:
    """Each combination has its level's subject, its target's salutation, the facts and the link."""
    escalation = make_escalation(level=level, target=target, count=7)
    message = render(escalation, language, NOW)
    unit = "Biståndsenheten Luleå"
    assert (
        message.subject
        == f"{SUBJECT_PREFIXES[language, level]}{unit} (7{' st' if language == 'sv' else ''})"
    )
    assert message.text.startswith(f"{AUDIENCE[language, target]}{unit}\n")
    facts = {
        "sv": [
            "7 okvitterade meddelanden",
            "1 dygn 3 tim",
            "fredag 2026-12-25 kl. 12:00",
            "nivå 2 av 3".replace("2", str(level)),
        ],
        "en": [
            "7 unreceipted messages",
            "1 day 3 h",
            "Friday 2026-12-25 at 12:00",
            f"level {level} of 3",
        ],
    }[language]
    for part in (message.text, visible_text(message.html)):
        for fact in facts:
            assert fact.lower() in part.lower(), (fact, part)
        assert escalation.link in part
    assert f'href="{escalation.link}"' in message.html
    assert "{{" not in message.text + message.html + message.subject


def test_swedish_level_one_text_for_a_single_message() -> None:
    """The whole Swedish reminder for one message, singular wording included."""
    escalation = make_escalation(
        level=1,
        target=EscalationTarget.UNIT_MAILBOX,
        count=1,
        oldest_arrived_at=datetime(2026, 12, 24, 8, 30, tzinfo=UTC),
        oldest_due_at=datetime(2026, 12, 24, 10, 0, tzinfo=UTC),
    )
    message = render(escalation, "sv", NOW)
    assert message.subject == "Påminnelse: okvitterade meddelanden hos Biståndsenheten Luleå (1 st)"
    assert message.text == (
        "Till enheten – Biståndsenheten Luleå\n"
        "\n"
        "Biståndsenheten Luleå har 1 okvitterat meddelande som har passerat sin kvittenstid.\n"
        "Meddelandet har väntat 2 dygn 3 tim; det skulle ha kvitterats senast "
        "torsdag 2026-12-24 kl. 11:00 (svensk tid).\n"
        "\n"
        "Eskaleringsnivå 1 av 3: påminnelse till enheten.\n"
        "Läs och kvittera meddelandet. Om det inte kvitteras går påminnelsen vidare till "
        "jour/beredskap.\n"
        "\n"
        "Logga in för att se och kvittera meddelandena:\n"
        "https://hub.example.org/units/SE2120000000-SYN2580BIS/inbox\n"
        "\n"
        "Det här meddelandet skickas automatiskt av Samordnad utskrivning och innehåller inga "
        "patientuppgifter.\n"
    )


@pytest.mark.parametrize(
    ("language", "expected_text"),
    [
        (
            "sv",
            "Jour/beredskap (nivå 2): Biståndsenheten Luleå har 3 okvitterade meddelanden, "
            "äldsta väntat 1 dygn 3 tim. Logga in: "
            "https://hub.example.org/units/SE2120000000-SYN2580BIS/inbox",
        ),
        (
            "en",
            "On call (level 2): Biståndsenheten Luleå has 3 unreceipted messages, the oldest "
            "waited 1 day 3 h. Sign in: https://hub.example.org/units/SE2120000000-SYN2580BIS/inbox",
        ),
    ],
)
def test_webhook_payload_is_the_short_form(language: Language, expected_text: str) -> None:
    """The webhook body has exactly unit, level, count, age in minutes, link and the SMS text."""
    assert webhook_payload(make_escalation(), language, NOW) == {
        "unit": "Biståndsenheten Luleå",
        "level": 2,
        "count": 3,
        "oldest_age_minutes": 27 * 60 + 20,
        "link": "https://hub.example.org/units/SE2120000000-SYN2580BIS/inbox",
        "text": expected_text,
    }


@pytest.mark.parametrize(
    ("age", "swedish", "english", "parts"),
    [
        (timedelta(0), "0 min", "0 min", AgeParts(0, 0, 0)),
        (timedelta(seconds=59), "0 min", "0 min", AgeParts(0, 0, 0)),
        (timedelta(minutes=12), "12 min", "12 min", AgeParts(0, 0, 12)),
        (timedelta(minutes=60), "1 tim", "1 h", AgeParts(0, 1, 0)),
        (timedelta(hours=2, minutes=5), "2 tim 5 min", "2 h 5 min", AgeParts(0, 2, 5)),
        (timedelta(days=1), "1 dygn", "1 day", AgeParts(1, 0, 0)),
        (timedelta(days=1, hours=3), "1 dygn 3 tim", "1 day 3 h", AgeParts(1, 3, 0)),
        (timedelta(days=1, hours=3, minutes=59), "1 dygn 3 tim", "1 day 3 h", AgeParts(1, 3, 59)),
        (timedelta(days=12, minutes=1), "12 dygn", "12 days", AgeParts(12, 0, 1)),
        (timedelta(minutes=-5), "0 min", "0 min", AgeParts(0, 0, 0)),
    ],
)
def test_age_of_the_oldest(age: timedelta, swedish: str, english: str, parts: AgeParts) -> None:
    """Ages show the two largest units, rounded down; a negative age (clock skew) is zero."""
    assert (format_age(age, "sv"), format_age(age, "en"), age_parts(age)) == (
        swedish,
        english,
        parts,
    )


@pytest.mark.parametrize(
    ("instant", "swedish", "english"),
    [
        # Christmas Eve, winter time (UTC+1).
        (
            "2026-12-24T09:00:00+00:00",
            "torsdag 2026-12-24 kl. 10:00",
            "Thursday 2026-12-24 at 10:00",
        ),
        # 2027-03-28: clocks go from 02:00 to 03:00 local (01:00 UTC).
        ("2027-03-28T00:30:00+00:00", "söndag 2027-03-28 kl. 01:30", "Sunday 2027-03-28 at 01:30"),
        ("2027-03-28T01:30:00+00:00", "söndag 2027-03-28 kl. 03:30", "Sunday 2027-03-28 at 03:30"),
        # 2027-10-31: 03:00 local goes back to 02:00, so 02:30 happens twice.
        ("2027-10-31T00:30:00+00:00", "söndag 2027-10-31 kl. 02:30", "Sunday 2027-10-31 at 02:30"),
        ("2027-10-31T01:30:00+00:00", "söndag 2027-10-31 kl. 02:30", "Sunday 2027-10-31 at 02:30"),
        # Midsummer Eve 2027, summer time (UTC+2), late evening crosses the local date.
        (
            "2027-06-25T22:15:00+00:00",
            "lördag 2027-06-26 kl. 00:15",
            "Saturday 2027-06-26 at 00:15",
        ),
    ],
)
def test_due_time_is_stockholm_wall_time(instant: str, swedish: str, english: str) -> None:
    """Due times are shown as Europe/Stockholm local time, across both DST switches."""
    at = datetime.fromisoformat(instant)
    assert (format_local_time(at, "sv"), format_local_time(at, "en")) == (swedish, english)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("level", [1, 2, 3])
def test_no_patient_data_in_any_notification_for_any_unit(language: Language, level: int) -> None:
    """For every unit of the Norrbotten directory, digests built from deliveries about real-looking
    patients carry no personnummer, no name, no care detail, and only the allowed numbers."""
    assert len(DIRECTORY.units) > 50
    for unit in DIRECTORY.units:
        digest = realistic_digest(
            unit, level=level, target=DEFAULT_TARGETS[level], scanned_at=NOW, deliveries=4
        )
        escalation = digest.escalation
        parts = rendered_parts(escalation, language, NOW)
        allowed = allowed_numbers(escalation, NOW)
        for part_name, text in parts.items():
            where = (unit.hsa_id, part_name)
            assert not contains_identity_number(text), where
            for number in digest.patient_numbers:
                for form in (
                    number,
                    number.replace("-", ""),
                    number[2:],
                    number[2:].replace("-", ""),
                ):
                    assert form not in text, where
            for name in PATIENT_NAMES:
                for word in name.split():
                    assert word not in text, where
            for care_word in ("diabetes", "KOL", "förflyttning", "Syntetiskt"):
                assert care_word not in text, where
        for part_name in ("subject", "text", "html_visible", "sms"):
            seen = numbers_in(parts[part_name], link=escalation.link)
            assert seen <= allowed, (unit.hsa_id, part_name, seen - allowed)
            assert escalation.count in seen, (unit.hsa_id, part_name)


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=500),
    age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)),
    due_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4)),
    level=st.integers(min_value=1, max_value=3),
    target=st.sampled_from(list(EscalationTarget)),
    language=st.sampled_from(LANGUAGES),
    unit=st.sampled_from(DIRECTORY.units),
)
def test_only_allowed_numbers_appear(
    *,
    count: int,
    age: timedelta,
    due_after: timedelta,
    level: int,
    target: EscalationTarget,
    language: Language,
    unit: Unit,
) -> None:
    """Whatever the counts and ages, a notification's numbers are count, level, age and due time."""
    arrived = NOW - age
    escalation = make_escalation(
        unit=unit.hsa_id,
        unit_name=unit.name,
        count=count,
        level=level,
        target=target,
        oldest_arrived_at=arrived,
        oldest_due_at=arrived + due_after,
    )
    parts = rendered_parts(escalation, language, NOW)
    allowed = allowed_numbers(escalation, NOW)
    for part_name in ("subject", "text", "html_visible", "sms"):
        assert numbers_in(parts[part_name], link=escalation.link) <= allowed, part_name
        assert not contains_identity_number(parts[part_name]), part_name


def test_html_escapes_the_unit_name() -> None:
    """A unit name with markup is escaped in the HTML part and left as plain text elsewhere."""
    escalation = make_escalation(unit_name='<script>alert("x")</script> & Co')
    message = render(escalation, "sv", NOW)
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in message.html
    assert '<script>alert("x")</script> & Co har 3 okvitterade' in message.text


def test_subject_is_one_line_whatever_the_unit_name() -> None:
    """Line breaks in a unit name cannot inject e-mail headers: the subject is one line."""
    escalation = make_escalation(unit_name="Hemtjänst\r\nBcc: everyone@example.org")
    message = render(escalation, "en", NOW)
    assert message.subject == (
        "On call: unreceipted messages at Hemtjänst Bcc: everyone@example.org (3)"
    )


def test_identity_numbers_are_masked_even_in_an_unvalidated_digest() -> None:
    """A digest built without validation still renders no personnummer (defence in depth)."""
    patient = synthetic_personnummer(7)
    valid = make_escalation()
    raw = Escalation.model_construct(
        **{
            **dict(valid),
            "unit_name": f"Hemtjänst {patient}",
            "link": f"https://hub.example.org/p/{patient.replace('-', '')}",
        }
    )
    for text in rendered_parts(raw, "sv", NOW).values():
        assert not contains_identity_number(text)
        assert "[personnummer]" in text


def test_unknown_language_is_refused() -> None:
    """Only the languages with templates can be asked for, and the error names the argument."""
    with pytest.raises(ValueError, match=r"^language: must be one of sv, en$"):
        render(make_escalation(), "fi", NOW)  # type: ignore[arg-type]
