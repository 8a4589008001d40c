"""Run a real Apache Kafka broker (KRaft) from Maven Central jars, on 127.0.0.1 only.

One node, or three nodes that are each broker and controller. The jars are gathered once by Maven
into a cache outside git, keyed by the Kafka version that ``pom.xml`` beside this file names. The
recipe is ``shared/KAFKA.md``, verified here; where it was wrong, ``docs/kafka.md`` says so.

Used by the test session (``tests/conftest.py``), ``make demo`` and ``hub kafka up|down|status``.
Everything is synchronous on purpose: it runs before and after event loops, from fixtures and CLIs.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
HOST = "127.0.0.1"
DEFAULT_PORTS: tuple[tuple[int, int], ...] = ((19092, 19093), (29092, 29093), (39092, 39093))

JVM_OPTS = [
    "-Xms512m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
]


class KafkaLauncherError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version, whose only home is the pom."""
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom.read_text(encoding="utf-8"))
    if match is None:
        msg = f"{pom}: no <kafka.version> property"
        raise KafkaLauncherError(msg)
    return match.group(1).strip()


def cache_root() -> Path:
    """Where fetched jars live: ``$HUB_CACHE_DIR``, else ``$XDG_CACHE_HOME/dischargehub``."""
    explicit = os.environ.get("HUB_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "dischargehub"


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = f"`{tool}` was not found on PATH. {hint}"
        raise KafkaLauncherError(msg)
    return path


def ensure_jars(pom: Path = POM) -> Path:
    """Gather the broker's runtime jars once into the cache and return the folder.

    The folder appears only when complete (Maven writes to ``lib.partial`` first), so an
    interrupted fetch is retried on the next call rather than leaving half a classpath.
    """
    lib = cache_root() / "kafka" / kafka_version(pom) / "lib"
    if lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")):
        return lib
    mvn = _require("mvn", "Install Maven 3.8+ (Debian: apt-get install maven).")
    _require("java", "Install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless).")
    partial = lib.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        msg = f"Maven could not fetch the Kafka jars (exit {result.returncode}):\n{tail}"
        raise KafkaLauncherError(msg)
    if lib.exists():
        shutil.rmtree(lib)
    partial.rename(lib)
    return lib


def new_cluster_id() -> str:
    """A 22-character base64url UUID that does not start with '-' (it would read as a flag)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def free_port_pairs(count: int) -> list[tuple[int, int]]:
    """Pick ``count`` (broker, controller) port pairs that are free on loopback right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count * 2):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        ports = [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
    return [(ports[2 * i], ports[2 * i + 1]) for i in range(count)]


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    return free_port_pairs(1)[0][0]


def wait_port(port: int, timeout_s: float = 15.0, *, what: str = "a server") -> None:
    """Block until something listens on loopback ``port``; ``what`` names it in the error."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _port_in_use(port):
            return
        time.sleep(0.05)
    msg = f"{what} did not listen on {HOST}:{port} within {timeout_s:.0f} s"
    raise TimeoutError(msg)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


@dataclass
class Node:
    """One KRaft node (broker and controller in one JVM)."""

    node_id: int
    broker_port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.broker_port}"

    @property
    def config(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log(self) -> Path:
        return self.directory / "logs" / "stdout.log"

    def is_running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log written)"
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class KafkaCluster:
    """A local KRaft cluster of one or three nodes in ``run_dir``.

    ``start()`` formats storage (once), launches every JVM, then waits until metadata lists all
    brokers. ``stop()`` sends SIGTERM to all nodes at once, waits, then SIGKILLs what is left, so
    no JVM outlives it. ``kill(node_id)`` and ``restart(node_id)`` serve fault tests.
    """

    run_dir: Path
    nodes_count: int = 1
    ports: Sequence[tuple[int, int]] | None = None
    heap: str = "512m"
    nodes: list[Node] = field(default_factory=list)
    cluster_id: str = ""

    def __post_init__(self) -> None:
        if self.nodes_count not in (1, 3):
            msg = f"nodes_count must be 1 or 3, got {self.nodes_count}"
            raise ValueError(msg)
        ports = list(self.ports or DEFAULT_PORTS[: self.nodes_count])
        if len(ports) != self.nodes_count:
            msg = f"ports: need {self.nodes_count} (broker, controller) pairs, got {len(ports)}"
            raise ValueError(msg)
        self.run_dir = self.run_dir.resolve()
        self.nodes = [
            Node(i + 1, bp, cp, self.run_dir / f"kafka-{i + 1}") for i, (bp, cp) in enumerate(ports)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def state_file(self) -> Path:
        return self.run_dir / "cluster.json"

    # -- configuration -------------------------------------------------------------------------

    def _server_properties(self, node: Node) -> str:
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)
        replicas = self.nodes_count
        lines = [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://{HOST}:{node.broker_port},CONTROLLER://{HOST}:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{node.broker_port}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={node.directory / 'data'}",
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min(2, replicas)}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min(2, replicas)}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "num.partitions=1",
            # A killed node is fenced sooner, so acks=all writes stall for less time in fault tests.
            "broker.session.timeout.ms=6000",
            "broker.heartbeat.interval.ms=1000",
            # Small segments and few threads: a test broker on a 2-core machine.
            "log.segment.bytes=67108864",
            "num.network.threads=2",
            "num.io.threads=4",
            "log.flush.interval.messages=9223372036854775807",
        ]
        if self.nodes_count == 1:
            lines.append("offsets.topic.num.partitions=10")
        return "\n".join(lines) + "\n"

    def _java(self) -> str:
        return _require(
            "java", "Install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)."
        )

    def _format(self, lib: Path) -> None:
        tool_log = f"-Dlog4j.configuration=file:{HERE / 'tools-log4j.properties'}"
        for node in self.nodes:
            (node.directory / "data").mkdir(parents=True, exist_ok=True)
            (node.directory / "logs").mkdir(parents=True, exist_ok=True)
            node.config.write_text(self._server_properties(node), encoding="utf-8")
            cmd = [
                self._java(),
                "-Xmx256m",
                tool_log,
                "-cp",
                f"{lib}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self.cluster_id,
                "-c",
                str(node.config),
                "--ignore-formatted",
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                msg = (
                    f"formatting KRaft storage of node {node.node_id} failed "
                    f"(exit {result.returncode}):\n{(result.stdout + result.stderr)[-2000:]}"
                )
                raise KafkaLauncherError(msg)

    def _launch(self, node: Node, lib: Path) -> None:
        if _port_in_use(node.broker_port) or _port_in_use(node.controller_port):
            msg = (
                f"port {node.broker_port} or {node.controller_port} on {HOST} is already taken "
                f"(another broker? try `hub kafka status` / `hub kafka down`)"
            )
            raise KafkaLauncherError(msg)
        opts = [o.replace("512m", self.heap) for o in JVM_OPTS]
        cmd = [
            self._java(),
            *opts,
            f"-Dkafka.logs.dir={node.directory / 'logs'}",
            f"-Dlog4j.configuration=file:{HERE / 'log4j.properties'}",
            "-cp",
            f"{lib}/*",
            "kafka.Kafka",
            str(node.config),
        ]
        with node.log.open("ab") as out:
            # A session of its own: the broker outlives `hub kafka up` and ignores the
            # terminal's Ctrl-C, which would otherwise kill it before a controlled shutdown.
            node.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        node.pid = node.process.pid

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> None:
        """Format (first time only), launch every node, and wait until all brokers are ready."""
        lib = ensure_jars()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.cluster_id:
            self.cluster_id = new_cluster_id()
        self._format(lib)
        # All JVMs first, then wait: no node finishes starting before a controller majority.
        try:
            for node in self.nodes:
                self._launch(node, lib)
            self._save_state()
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def restart(self, node_id: int, *, wait: bool = True, timeout_s: float = 90.0) -> None:
        """Start one stopped node again with its old data (after `kill` or `terminate`)."""
        node = self.node(node_id)
        if node.is_running():
            return
        self._launch(node, ensure_jars())
        self._save_state()
        if wait:
            self.wait_ready(timeout_s)

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: a crash, as far as Kafka can tell."""
        node = self.node(node_id)
        self._signal(node, signal.SIGKILL)
        self._reap(node, 10.0)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every node at once (controlled shutdown), then SIGKILL what is left."""
        running = [n for n in self.nodes if n.is_running()]
        for node in running:
            self._signal(node, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for node in running:
            self._reap(node, max(0.1, deadline - time.monotonic()))
        for node in running:
            if node.is_running():
                self._signal(node, signal.SIGKILL)
                self._reap(node, 10.0)
        with contextlib.suppress(FileNotFoundError):  # never started, or already stopped
            self.state_file.unlink()

    @staticmethod
    def _signal(node: Node, sig: signal.Signals) -> None:
        if node.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):  # already gone: nothing to signal
            os.kill(node.pid, sig)

    @staticmethod
    def _reap(node: Node, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            if not node.is_running():
                return
            if node.process is None:
                time.sleep(0.1)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until every broker port is open and metadata lists every running broker."""
        deadline = time.monotonic() + timeout_s
        running = [n for n in self.nodes if n.is_running() or n.process is not None]
        last_error = "no answer yet"
        while True:
            for node in running:
                if not node.is_running():
                    msg = (
                        f"Kafka node {node.node_id} exited during start-up; "
                        f"the end of {node.log}:\n{node.log_tail()}"
                    )
                    raise KafkaLauncherError(msg)
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- node {n.node_id}\n{n.log_tail(15)}" for n in running)
                msg = f"Kafka not ready after {timeout_s:.0f}s ({last_error}):\n{tails}"
                raise KafkaLauncherError(msg)
            try:
                count = _run_coroutine(_broker_count(",".join(n.bootstrap for n in running)))
            except Exception as exc:  # noqa: BLE001 - any failure here means "not ready yet"
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if count >= len(running):
                    return
                last_error = f"{count} of {len(running)} brokers registered"
            time.sleep(0.3)

    # -- state for the CLI (up in one process, down in another) --------------------------------

    def _save_state(self) -> None:
        state = {
            "cluster_id": self.cluster_id,
            "nodes": [
                {
                    "id": n.node_id,
                    "broker": n.broker_port,
                    "controller": n.controller_port,
                    "pid": n.pid,
                }
                for n in self.nodes
            ],
        }
        self.state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")

    @classmethod
    def from_state(cls, run_dir: Path) -> KafkaCluster | None:
        """The cluster a previous `hub kafka up` left in ``run_dir``, or None."""
        path = run_dir / "cluster.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text(encoding="utf-8"))
        ports = [(n["broker"], n["controller"]) for n in state["nodes"]]
        cluster = cls(run_dir=run_dir, nodes_count=len(ports), ports=ports)
        cluster.cluster_id = state["cluster_id"]
        for node, saved in zip(cluster.nodes, state["nodes"], strict=True):
            node.pid = saved["pid"]
        return cluster


def _run_coroutine(coro: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine to completion from sync code, even when called inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _broker_count(bootstrap: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415 - keep `hub --help` fast

    for address in bootstrap.split(","):  # 1) every listed broker port is open
        host, port = address.rsplit(":", 1)
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
        writer.close()
        await writer.wait_closed()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"])
    finally:
        await admin.close()


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux /proc), for status and reports."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None
