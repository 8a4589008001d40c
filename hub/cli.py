"""The `hub` command line: local Kafka, topics, directory, on-call checks, sending, the store.

Thin: each command builds what it needs from `Settings` and calls one function elsewhere.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, TaskID

from deploy.kafka.launcher import KafkaCluster, KafkaLauncherError, ensure_jars, rss_mib
from hub.app import ALL_PARTS, Hub, Part
from hub.calendar import STOCKHOLM, CalendarPolicy
from hub.clock import SystemClock
from hub.directory import load_directory
from hub.errors import ConfigurationError
from hub.logs import configure_logging
from hub.oncall import check_all, load_oncall_config
from hub.provision import ensure_topics
from hub.rebuild import RebuildReport, rebuild
from hub.settings import Settings
from hub.store.engine import create_engine
from hub.store.migrate import upgrade
from hub.store.repository import Store
from producers.apikeys import ApiKeyStore
from producers.gateway import build_gateway
from producers.sdk import HubClient
from producers.send import SendSummary, default_converters, send_files

app = typer.Typer(no_args_is_help=True, help="Samordnad utskrivning: the discharge-planning hub.")
kafka_app = typer.Typer(no_args_is_help=True, help="A local Apache Kafka (KRaft) on 127.0.0.1.")
app.add_typer(kafka_app, name="kafka")
topics_app = typer.Typer(no_args_is_help=True, help="The hub's Kafka topics (topics/topics.py).")
app.add_typer(topics_app, name="topics")
directory_app = typer.Typer(no_args_is_help=True, help="The unit directory (enhetskatalog).")
app.add_typer(directory_app, name="directory")
oncall_app = typer.Typer(no_args_is_help=True, help="On-call rosters (jour / beredskap).")
app.add_typer(oncall_app, name="oncall")
store_app = typer.Typer(no_args_is_help=True, help="The SQL store.")
app.add_typer(store_app, name="store")

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


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        console.print(f"[red]Invalid configuration:[/red]\n{exc}")
        raise typer.Exit(2) from exc


@topics_app.command("ensure")
def topics_ensure() -> None:
    """Create missing topics; list, without changing them, topics whose settings differ."""
    settings = _settings()
    report = asyncio.run(ensure_topics(settings))
    for name in report.created:
        console.print(f"[green]created[/green]   {name}")
    for name in report.unchanged:
        console.print(f"ok        {name}")
    for diff in report.differences:
        console.print(
            f"[yellow]differs[/yellow]   {diff.topic}: {diff.setting} is {diff.actual}, "
            f"contract says {diff.expected} (not changed)"
        )
    if not report.ok:
        raise typer.Exit(1)


@directory_app.command("check")
def directory_check(
    path: Annotated[Path | None, typer.Argument(help="Directory YAML (default: settings).")] = None,
) -> None:
    """Validate a directory file and show what it holds."""
    target = path or _settings().directory_file
    try:
        directory = load_directory(target)
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    kinds = Counter(u.kind.value for u in directory.units if u.active)
    console.print(
        f"{target}: {len(directory.units)} units, content hash {directory.content_hash[:12]}"
    )
    for kind, n in sorted(kinds.items()):
        console.print(f"  {kind}: {n}")


@directory_app.command("reload")
def directory_reload(
    path: Annotated[Path | None, typer.Argument(help="Directory YAML (default: settings).")] = None,
) -> None:
    """Validate the file; running hubs load it within seconds of its change (they watch it)."""
    directory_check(path)
    console.print(
        "Valid. Running hubs reload a changed file within 5 s and log directory.reloaded."
    )


@oncall_app.command("check")
def oncall_check(
    days: Annotated[int, typer.Option(help="How far ahead to look.")] = 365,
    path: Annotated[Path | None, typer.Option(help="Roster YAML (default: settings).")] = None,
) -> None:
    """List every gap in every roster for the next DAYS days, with holidays named."""
    config = load_oncall_config(path or _settings().oncall_file)
    now = SystemClock().now()
    gaps = check_all(config.rosters, now, days)
    if not gaps:
        console.print(f"[green]No gaps[/green] in {len(config.rosters)} rosters for {days} days.")
        return
    for group, group_gaps in sorted(gaps.items()):
        for gap in group_gaps:
            start = gap.start_utc.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")
            end = gap.end_utc.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")
            named = f" ({', '.join(gap.holidays)})" if gap.holidays else ""
            console.print(f"[yellow]{group}[/yellow]: nobody on call {start} – {end}{named}")
    console.print(f"Fallback: {config.regional_fallback.name} <{config.regional_fallback.email}>")
    raise typer.Exit(1)


@store_app.command("migrate")
def store_migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    settings = _settings()
    asyncio.run(upgrade(settings.database_url))
    console.print("Schema up to date.")


@store_app.command("rebuild")
def store_rebuild() -> None:
    """Rebuild the store from the topics (idempotent; safe over a partly filled store)."""
    settings = _settings()

    async def run() -> RebuildReport:
        await upgrade(settings.database_url)
        engine = create_engine(settings.database_url)
        try:
            with Progress() as progress:
                tasks: dict[str, TaskID] = {}

                def update(topic: str, done: int, total: int) -> None:
                    if topic not in tasks:
                        tasks[topic] = progress.add_task(topic, total=total)
                    progress.update(tasks[topic], completed=done)

                return await rebuild(
                    settings,
                    Store(engine),
                    load_directory(settings.directory_file),
                    CalendarPolicy(),
                    SystemClock().now(),
                    update,
                )
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    for topic, read in report.read.items():
        console.print(
            f"{topic}: read {read}, applied {report.applied.get(topic, 0)}, "
            f"refused {report.refused.get(topic, 0)}"
        )


@app.command("run")
def run(
    only: Annotated[
        list[Part] | None, typer.Option(help="Run only these parts (repeatable).")
    ] = None,
) -> None:
    """Run the hub (router, tracker, notifier, escalation scanner) until Ctrl-C / SIGTERM."""
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)

    async def main_loop() -> None:
        hub = await Hub.open(settings, SystemClock(), parts=set(only or ALL_PARTS))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await hub.run(stop)

    asyncio.run(main_loop())


@app.command("send")
def send(
    files: Annotated[list[Path], typer.Argument(help="JSON envelopes, HL7 v2 or FHIR files.")],
) -> None:
    """Publish message files (format detected) and summarise what was accepted or rejected."""
    settings = _settings()

    async def run() -> SendSummary:
        async with HubClient(settings) as client:
            with Progress() as progress:
                task = progress.add_task("Skickar", total=len(files))
                return await send_files(
                    files,
                    client,
                    progress=lambda _outcome: progress.advance(task),
                    converters=default_converters(),
                )

    summary = asyncio.run(run())
    console.print(
        f"[green]{len(summary.accepted)} accepted[/green], {len(summary.rejected)} rejected"
    )
    for rejected in summary.rejected:
        console.print(f"  [red]rejected[/red] {rejected.path}: {rejected.reason}")
    if summary.rejected:
        raise typer.Exit(1)


@app.command("gateway")
def gateway(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8081,
) -> None:
    """Run the HTTP ingest gateway (POST /v1/messages) with uvicorn."""
    import uvicorn  # noqa: PLC0415 - only for this command

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    keys = (
        ApiKeyStore.from_file(settings.gateway.api_keys_file)
        if settings.gateway.api_keys_file
        else ApiKeyStore([])
    )
    api = build_gateway(settings, HubClient(settings), keys, config=settings.gateway)
    uvicorn.run(api, host="127.0.0.1", port=port, log_config=None)


@app.command("demo")
def demo() -> None:
    """The end-to-end demo (what `make demo` runs)."""
    from hub.demo import main as demo_main  # noqa: PLC0415 - heavy, only for this command

    demo_main()


def main() -> None:
    """Entry point of the `hub` console script."""
    app()


if __name__ == "__main__":
    main()
