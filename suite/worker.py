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

from suite.catalog import catalog_job  # [catalog]
from suite.changes import run_changes_job, run_suspects_job  # [changes]
from suite.chaos import chaos_job  # [ops]
from suite.config import GatewayConfig
from suite.forecast import forecast_job  # [capacity]
from suite.ingest import ingest_spool
from suite.key_spend import key_spend_job  # [keys]
from suite.problems import problems_job  # [catalog]
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


def detect_job(store: Store, config: GatewayConfig) -> Any:
    from suite.detect_job import run_detect
    from suite.detectors import load_plugins

    load_plugins(config.detect.plugins)
    return run_detect(
        store,
        config,
        detector=config.detect.detector,
        settle_seconds=config.worker.detect_settle_seconds,
    )


def slo_job(store: Store, config: GatewayConfig) -> Any:
    from suite.slo import run_slo

    return run_slo(store, config)


def notify_job(store: Store, config: GatewayConfig) -> Any:
    from suite.notify import run_notify

    return run_notify(store, config)


def retention_job(store: Store, config: GatewayConfig) -> Any:
    from suite.retention import run_retention

    return run_retention(store, config)


# In dependency order: --once runs them in this order.
JOBS: tuple[Job, ...] = (
    Job(
        "ingest",
        ingest_job,
        lambda c: c.worker.ingest_interval_seconds,
        "spool segments -> requests, exactly once",
    ),
    # [keys] jobs (right after ingest: budgets count the cost just loaded)
    Job(
        "key-spend",
        key_spend_job,
        lambda c: c.worker.rollup_interval_seconds,
        "requests -> spend per gateway key today/this month (run/key_spend.json) for budgets",
    ),
    Job(
        "rollup",
        rollup_job,
        lambda c: c.worker.rollup_interval_seconds,
        "requests -> metrics_1m for the minutes ingest touched",
    ),
    Job(
        "detect",
        detect_job,
        lambda c: c.worker.detect_interval_seconds,
        "metrics_1m -> anomalies per service and signal -> incidents (dedup, group, resolve)",
    ),
    # [changes] jobs (after detect: suspects for new incidents; automatic changes)
    Job(
        "changes",
        run_changes_job,
        lambda c: c.changes.interval_seconds,
        "requests -> changes seen in traffic (upstream version, new LLM model, new route)",
    ),
    Job(
        "suspects",
        run_suspects_job,
        lambda c: c.changes.interval_seconds,
        "incidents x changes -> ranked suspect changes per incident (incident_suspects)",
    ),
    # [catalog] jobs
    Job(
        "catalog",
        catalog_job,
        lambda c: c.catalog.interval_seconds,
        "routes, [[services]], traffic -> services and service_dependencies (declared, observed)",
    ),
    Job(
        "problems",
        problems_job,
        lambda c: c.problems.interval_seconds,
        "incidents recurring per fingerprint -> problems with linked incidents",
    ),
    # [capacity] jobs
    Job(
        "forecast",
        forecast_job,
        lambda c: c.worker.forecast_interval_seconds,
        "metrics_1m -> 14-day capacity forecasts and time to [[capacity]] limits",
    ),
    # [ops] jobs (chaos drills past their end: change closed, drill file tidied)
    Job(
        "chaos",
        chaos_job,
        lambda c: 15.0,
        "chaos drills past their end -> their changes closed (verified), drill file tidied",
    ),
    # After detection: SLO pages open incidents, notify tells people, retention tidies.
    Job(
        "slo",
        slo_job,
        lambda c: c.worker.slo_interval_seconds,
        "metrics_1m -> SLO burn rates, error budgets, pages/tickets as incidents",
    ),
    Job(
        "notify",
        notify_job,
        lambda c: c.worker.notify_interval_seconds,
        "incidents -> webhook and email notices (repeats, retries, silences)",
    ),
    Job(
        "retention",
        retention_job,
        lambda c: c.worker.retention_interval_seconds,
        "drop raw requests past retention_days once rolled up, rollups past rollup_retention_days",
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
