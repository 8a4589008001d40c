"""Shared pieces of the benchmarks: a broker of their own, the environment, a result table."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from deploy.kafka.launcher import KafkaCluster, free_port_pairs


@contextmanager
def local_kafka() -> Iterator[KafkaCluster]:
    """A fresh single-node broker on loopback for one benchmark run, stopped afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    cluster = KafkaCluster(run_dir=run_dir, nodes_count=1, ports=free_port_pairs(1))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def environment() -> dict[str, str]:
    """What the figures were measured on."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "machine": platform.machine(),
        "commit": commit or "unknown",
        **{lib: version(lib) for lib in ("faststream", "aiokafka", "pydantic", "sqlalchemy")},
    }


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A plain Markdown table, so the output can be pasted into docs/benchmarks.md."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
