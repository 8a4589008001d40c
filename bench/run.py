"""Run every benchmark, one after the other, each in its own process: `make bench`.

    python -m bench.run            # the figures: each script's defaults
    python -m bench.run --smoke    # tiny counts, to keep the scripts working (never to judge)
    python -m bench.run --only latency,scan

Each script starts its own broker (and PostgreSQL, SMTP sink, hub processes where it needs
them) and stops everything it started; each run is bounded by a wall-clock timeout here on top
of the script's own `--max-wall`. The exit code is non-zero if any benchmark failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

#: name -> (full-run arguments, smoke arguments, timeout of a full run in seconds)
BENCHES: dict[str, tuple[list[str], list[str], float]] = {
    "passthrough": ([], ["--messages", "500", "--rounds", "1", "--timeout", "120"], 3600),
    "publish": ([], ["--records", "500", "--rounds", "1"], 600),
    "latency": ([], ["--rates", "7,50", "--duration", "3", "--drain", "30"], 1800),
    "escalation": ([], ["--rounds", "1", "--per-unit", "1"], 900),
    "scan": ([], ["--small", "200", "--large", "1000", "--history", "2000", "--rounds", "1"], 3900),
    "replay": ([], ["--messages", "100", "--rounds", "1"], 2400),
    "footprint": ([], ["--duration", "5", "--settle", "1"], 1500),
}
SMOKE_TIMEOUT_S = 600


def run_bounded(argv: list[str], timeout_s: float) -> str:
    """Run one benchmark in its own process group; on timeout interrupt it, then kill the group.

    SIGINT first, so the script's `finally` blocks stop the broker and the processes it started.
    """
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return "timed out"
    return "ok" if code == 0 else f"failed (exit {code})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated names")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    outcomes: list[tuple[str, str, float]] = []
    for name in names:
        full, smoke, timeout_s = BENCHES[name]
        argv = [sys.executable, "-m", f"bench.bench_{name}", *(smoke if args.smoke else full)]
        print(f"\n## {name}: {' '.join(argv[1:])}", flush=True)
        started = time.monotonic()
        outcome = run_bounded(argv, SMOKE_TIMEOUT_S if args.smoke else timeout_s)
        outcomes.append((name, outcome, time.monotonic() - started))
    print("\n| benchmark | outcome | seconds |\n|---|---|---|")
    for name, outcome, seconds in outcomes:
        print(f"| {name} | {outcome} | {seconds:.0f} |")
    if any(outcome != "ok" for _, outcome, _ in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
