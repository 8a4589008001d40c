"""The `hub` command line: local Kafka, topics, directory, on-call checks, sending, the store.

Thin: each command builds what it needs from `Settings` and calls one function elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deploy.kafka.launcher import KafkaCluster, KafkaLauncherError, ensure_jars, rss_mib

app = typer.Typer(no_args_is_help=True, help="Samordnad utskrivning: the discharge-planning hub.")
kafka_app = typer.Typer(no_args_is_help=True, help="A local Apache Kafka (KRaft) on 127.0.0.1.")
app.add_typer(kafka_app, name="kafka")

console = Console()

RunDir = Annotated[Path, typer.Option(help="Where the local broker keeps its data and logs.")]


@kafka_app.command("up")
def kafka_up(
    nodes: Annotated[int, typer.Option(help="1, or 3 for a fault-tolerant cluster.")] = 1,
    run_dir: RunDir = Path(".run/kafka"),
) -> None:
    """Fetch the jars (once), format storage and start the broker(s); returns when ready."""
    existing = KafkaCluster.from_state(run_dir)
    if existing is not None and any(n.is_running() for n in existing.nodes):
        console.print(f"Kafka already running at {existing.bootstrap}")
        return
    cluster = KafkaCluster(run_dir=run_dir, nodes_count=nodes)
    try:
        with console.status("Fetching Kafka jars (first time only)…"):
            ensure_jars()
        with console.status(f"Starting {nodes} Kafka node(s)…"):
            cluster.start()
    except KafkaLauncherError as exc:
        console.print(f"[red]Kafka did not start:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Kafka ready at [bold]{cluster.bootstrap}[/bold] (data in {run_dir})")


@kafka_app.command("down")
def kafka_down(run_dir: RunDir = Path(".run/kafka")) -> None:
    """Stop the local broker(s): SIGTERM, then SIGKILL after a timeout."""
    cluster = KafkaCluster.from_state(run_dir)
    if cluster is None:
        console.print("No local Kafka recorded in that run dir.")
        return
    cluster.stop()
    console.print("Kafka stopped.")


@kafka_app.command("status")
def kafka_status(run_dir: RunDir = Path(".run/kafka")) -> None:
    """Show each local node: running or not, ports and resident memory."""
    cluster = KafkaCluster.from_state(run_dir)
    if cluster is None:
        console.print("No local Kafka recorded in that run dir.")
        raise typer.Exit(1)
    for node in cluster.nodes:
        running = node.is_running()
        rss = rss_mib(node.pid) if running and node.pid else None
        state = "[green]running[/green]" if running else "[red]stopped[/red]"
        mem = f", {rss:.0f} MiB RSS" if rss else ""
        console.print(f"node {node.node_id}: {state} at {node.bootstrap} (pid {node.pid}{mem})")


def main() -> None:
    """Entry point of the `hub` console script."""
    app()


if __name__ == "__main__":
    main()
