"""`aiops worker`: the scheduled jobs (APScheduler), one process for the whole suite.

Each job is a plain function of the store and the config, so `--once`, the scheduler and
tests run exactly the same code. Jobs never overlap themselves (max_instances=1).
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from suite.config import GatewayConfig
from suite.ingest import ingest_spool
from suite.rollup import rollup_dirty_minutes
from suite.store import Store

log = logging.getLogger("aiops.worker")


class Job(NamedTuple):
    name: str
    run: Callable[[Store, GatewayConfig], Any]
    interval_seconds: Callable[[GatewayConfig], float]
    help: str


def ingest_job(store: Store, config: GatewayConfig) -> Any:
    return ingest_spool(store)


def rollup_job(store: Store, config: GatewayConfig) -> Any:
    return rollup_dirty_minutes(store)


# In dependency order: --once runs them in this order.
JOBS: tuple[Job, ...] = (
    Job(
        "ingest",
        ingest_job,
        lambda c: c.worker.ingest_interval_seconds,
        "spool segments -> requests, exactly once",
    ),
    Job(
        "rollup",
        rollup_job,
        lambda c: c.worker.rollup_interval_seconds,
        "requests -> metrics_1m for the minutes ingest touched",
    ),
)


def run_jobs_once(store: Store, config: GatewayConfig) -> dict[str, Any]:
    """Run every job once, in order; a failing job is logged and the others still run."""
    results: dict[str, Any] = {}
    for job in JOBS:
        try:
            results[job.name] = job.run(store, config)
        except Exception as e:
            log.exception("job %s failed", job.name)
            results[job.name] = e
    return results


def _logged(job: Job, store: Store, config: GatewayConfig) -> Callable[[], None]:
    def run() -> None:
        try:
            job.run(store, config)
        except Exception:
            log.exception("job %s failed; it runs again at its next interval", job.name)

    return run


def run_scheduler(store: Store, config: GatewayConfig) -> int:
    """Run the jobs on their intervals until SIGINT/SIGTERM."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    for job in JOBS:
        scheduler.add_job(
            _logged(job, store, config),
            "interval",
            seconds=job.interval_seconds(config),
            id=job.name,
            name=job.name,
            next_run_time=datetime.now(),
            misfire_grace_time=None,
        )

    def stop(signum: int, _frame: object) -> None:
        log.info("worker: signal %d, stopping after running jobs finish", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    names = ", ".join(f"{j.name} every {j.interval_seconds(config):g}s" for j in JOBS)
    print(f"aiops worker running: {names} (home {store.home.root})", file=sys.stderr, flush=True)
    scheduler.start()
    return 0
