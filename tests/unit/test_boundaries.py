"""House rules that keep the architecture visible, checked over the source tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "consumers", "producers", "topics")
TOPIC_LITERAL = re.compile(r"""['"][a-z][a-z-]*\.v[0-9]+['"]""")
CLOCK_READ = re.compile(r"datetime\.(now|utcnow)\(|time\.time\(\)")
# The SMTP sink is test/demo tooling standing in for a mail server: it stamps arrival times.
CLOCK_ALLOWED = {ROOT / "hub" / "clock.py", ROOT / "hub" / "notify" / "smtp_sink.py"}


def _sources() -> list[Path]:
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]


def test_only_topics_module_spells_a_topic_name() -> None:
    """No module outside topics/topics.py writes a versioned topic name literally."""
    stray = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _sources()
        if p != ROOT / "topics" / "topics.py"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if TOPIC_LITERAL.search(line)
    ]
    assert stray == []


def test_only_the_clock_reads_the_time() -> None:
    """Domain and platform code take `now` as an argument; hub/clock.py is the one reader."""
    readers = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _sources()
        if p not in CLOCK_ALLOWED
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if CLOCK_READ.search(line)
    ]
    assert readers == []


def test_domain_modules_import_no_framework() -> None:
    """The pure domain modules of hub/ import neither FastStream, SQLAlchemy, FastAPI nor SMTP."""
    domain = [
        "calendar",
        "liability",
        "routing",
        "escalation",
        "oncall",
        "directory",
        "tracking",
        "deliveries",
    ]
    frameworks = re.compile(
        r"^\s*(from|import)\s+(faststream|sqlalchemy|fastapi|aiosmtplib|aiokafka)\b", re.M
    )
    offenders = [
        name
        for name in domain
        if frameworks.search((ROOT / "hub" / f"{name}.py").read_text(encoding="utf-8"))
    ]
    assert offenders == []
