"""Notifications: incidents to Slack-compatible webhooks and email, with repeats, retries,
silences and maintenance windows, every notice recorded in `notifications`.

It never writes a secret to the store or the log: channels are recorded by name only, and
SMTP passwords (and webhook URLs, when given as "${VAR}") come from the environment.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx

from suite.clock import naive_utc
from suite.config import ENV_REFERENCE_RE, EmailChannel, GatewayConfig, WebhookChannel
from suite.errors import AiopsError, ConfigError
from suite.incidents import Event, save_events
from suite.store import Store

log = logging.getLogger("aiops.notify")

Channel = WebhookChannel | EmailChannel
# Tries within one run, with the pause before each retry doubling from RETRY_BASE_SECONDS.
ATTEMPTS_PER_RUN = 3
RETRY_BASE_SECONDS = 0.5
# Across runs a failed notice waits a doubling delay, then is given up after a day: a
# notice about yesterday's incident helps nobody.
NEXT_RUN_DELAY_BASE = timedelta(seconds=30)
NEXT_RUN_DELAY_MAX = timedelta(minutes=30)
GIVE_UP_AFTER = timedelta(days=1)
# Resolved incidents older than this are not looked at again (bounds every run's query).
RESOLVED_LOOKBACK = timedelta(days=2)


class SilenceNotFound(AiopsError):
    """No silence with that id."""


class DeliveryError(Exception):
    """One delivery failed; the message is safe to store (no URL, no credentials)."""


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    service: str
    signal: str
    severity: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    source: str | None = None
    assignee: str | None = None


@dataclass
class NoticeRow:
    """A row of `notifications` (the fields this module reads and writes)."""

    id: int | None
    incident_id: int
    channel: str
    kind: str  # opened | repeat | resolved
    severity: str
    status: str  # sent | failed | suppressed
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    suppressed_by: str | None = None

    @property
    def pending(self) -> bool:
        """A failed notice that will be tried again."""
        return self.status == "failed" and self.next_attempt_at is not None

    @property
    def at(self) -> datetime:
        return self.sent_at or self.created_at


@dataclass
class NotifyResult:
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    attempts: int = 0
    seconds: float = 0.0
    notices: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # id, channel, kind, status

    def __str__(self) -> str:
        return (
            f"{self.sent} sent, {self.failed} failed, {self.suppressed} suppressed "
            f"({self.attempts} attempts) in {self.seconds:.2f} s"
        )


# -- durations, silences and maintenance windows -------------------------------------------
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '2h', '1d', '1h30m' -> timedelta; ConfigError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ConfigError(f"--duration: {text!r} is not a duration (examples: 30m, 2h, 1d, 1h30m)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"--duration: {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def _next_id(con: Any, table: str) -> int:
    # Ids are assigned under the write lock, like the incidents tables do.
    (n,) = con.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()
    return int(n)


def add_silence(
    store: Store,
    *,
    service: str,
    duration: timedelta,
    reason: str,
    signal: str = "*",
    created_by: str | None = None,
    now: datetime | None = None,
) -> int:
    """Silence notifications for a service (or '*') and signal (or '*', or a glob such as
    'slo_burn:*') until now + duration; returns the silence id."""
    if not service or not signal:
        raise ConfigError("--service and --signal must not be empty (use '*' for any)")
    if not reason.strip():
        raise ConfigError("--reason: say why (it is shown to whoever wonders why nothing came)")
    at = naive_utc(now)
    with store.write() as con:
        sid = _next_id(con, "silences")
        con.execute(
            "INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
            [sid, service, signal, at, at + duration, created_by or _whoami(), reason.strip()],
        )
    log.info("silence %d added: service=%s signal=%s until %s", sid, service, signal, at + duration)
    return sid


def _whoami() -> str:
    from suite.audit import current_actor

    return current_actor()


def list_silences(
    store: Store, *, include_expired: bool = False, now: datetime | None = None
) -> list[dict[str, Any]]:
    at = naive_utc(now)
    where = "" if include_expired else "WHERE expires_at > $now"
    df = store.query(
        "SELECT id, service, signal, created_at, expires_at, created_by, reason, "
        f"expires_at > $now AS active FROM silences {where} ORDER BY id",
        {"now": at},
    )
    return df.to_dicts()


def expire_silence(store: Store, silence_id: int, *, now: datetime | None = None) -> None:
    """End a silence now (its row is kept, for the record)."""
    at = naive_utc(now)
    with store.write() as con:
        row = con.execute("SELECT expires_at FROM silences WHERE id = ?", [silence_id]).fetchone()
        if row is None:
            raise SilenceNotFound(f"no silence with id {silence_id} (see `aiops silences list`)")
        if row[0] > at:
            con.execute("UPDATE silences SET expires_at = ? WHERE id = ?", [at, silence_id])


def add_maintenance_window(
    store: Store,
    *,
    service: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    source: str = "manual",
    change_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """During [starts_at, ends_at) the service's incidents are kept but not notified."""
    start, end = naive_utc(starts_at), naive_utc(ends_at)
    if end <= start:
        raise ConfigError(f"maintenance window for {service}: ends_at must be after starts_at")
    with store.write() as con:
        mid = _next_id(con, "maintenance_windows")
        con.execute(
            "INSERT INTO maintenance_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [mid, service, start, end, reason, source, change_id, naive_utc(now)],
        )
    return mid


def list_maintenance_windows(
    store: Store, *, active_at: datetime | None = None
) -> list[dict[str, Any]]:
    """All windows, or only those covering `active_at`."""
    if active_at is None:
        return store.query("SELECT * FROM maintenance_windows ORDER BY starts_at, id").to_dicts()
    return store.query(
        "SELECT * FROM maintenance_windows WHERE starts_at <= $at AND ends_at > $at "
        "ORDER BY starts_at, id",
        {"at": naive_utc(active_at)},
    ).to_dicts()


def suppression_reason(
    incident: Incident,
    silences: Iterable[dict[str, Any]],
    windows: Iterable[dict[str, Any]],
) -> str | None:
    """'silence:<id>' or 'maintenance:<id>' when the incident must not be notified now
    (both lists already restricted to those active now)."""
    for s in silences:
        if fnmatch.fnmatchcase(incident.service, s["service"]) and fnmatch.fnmatchcase(
            incident.signal, s["signal"]
        ):
            return f"silence:{s['id']}"
    for w in windows:
        if w["service"] in (incident.service, "*"):
            return f"maintenance:{w['id']}"
    return None


# -- channels and messages -----------------------------------------------------------------
def channel_matches(channel: Channel, incident: Incident) -> bool:
    if channel.severities and incident.severity not in channel.severities:
        return False
    return not channel.services or incident.service in channel.services


def resolve_env_reference(value: str, what: str) -> str:
    """'${VAR}' -> the variable's value; anything else unchanged."""
    m = ENV_REFERENCE_RE.match(value)
    if not m:
        return value
    resolved = os.environ.get(m.group(1))
    if not resolved:
        raise DeliveryError(f"{what}: environment variable {m.group(1)} is not set")
    return resolved


def notice_text(incident: Incident, kind: str, previous_severity: str | None = None) -> str:
    """One line a person reads first (Slack notification preview, email subject)."""
    sev = incident.severity.upper()
    if kind == "resolved":
        return f"[RESOLVED] {incident.title} ({incident.service})"
    if kind == "repeat" and previous_severity and previous_severity != incident.severity:
        return f"[{sev}] severity {previous_severity} -> {incident.severity}: {incident.title} ({incident.service})"
    if kind == "repeat":
        return f"[{sev}] still {incident.status}: {incident.title} ({incident.service})"
    return f"[{sev}] {incident.title} ({incident.service})"


def _details(incident: Incident, now: datetime) -> list[tuple[str, str]]:
    rows = [
        ("Incident", f"#{incident.id}"),
        ("Service", incident.service),
        ("Signal", incident.signal),
        ("Severity", incident.severity),
        ("Status", incident.status),
        ("Opened", incident.opened_at.strftime("%Y-%m-%d %H:%M UTC")),
    ]
    if incident.resolved_at is not None:
        minutes = (incident.resolved_at - incident.opened_at).total_seconds() / 60
        rows.append(
            ("Resolved", f"{incident.resolved_at:%Y-%m-%d %H:%M} UTC after {minutes:.0f} min")
        )
    else:
        rows.append(("Open for", f"{(now - incident.opened_at).total_seconds() / 60:.0f} min"))
    if incident.assignee:
        rows.append(("Assignee", incident.assignee))
    return rows


def webhook_payload(
    incident: Incident, kind: str, now: datetime, previous_severity: str | None = None
) -> dict[str, Any]:
    """Slack incoming-webhook JSON: `text` for clients that only read that, `blocks` for
    the rest. Mattermost and Rocket.Chat accept the same shape."""
    text = notice_text(incident, kind, previous_severity)
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in _details(incident, now)]
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            {"type": "section", "fields": fields[:10]},
        ],
        # Machine-readable copy for receivers that are not chat tools.
        "aiops": {
            "kind": kind,
            "incident_id": incident.id,
            "service": incident.service,
            "signal": incident.signal,
            "severity": incident.severity,
            "status": incident.status,
        },
    }


def email_message(
    channel: EmailChannel,
    incident: Incident,
    kind: str,
    now: datetime,
    previous_severity: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[aiops] {notice_text(incident, kind, previous_severity)}"
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    # Threading: every notice of one incident lands in one conversation.
    msg["X-Aiops-Incident"] = str(incident.id)
    msg["X-Aiops-Kind"] = kind
    body = [notice_text(incident, kind, previous_severity), ""]
    body += [f"{k + ':':<10} {v}" for k, v in _details(incident, now)]
    msg.set_content("\n".join(body) + "\n")
    return msg


def _safe_error(e: BaseException, secrets: Iterable[str]) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    for s in secrets:
        if s:
            text = text.replace(s, "<redacted>")
    return text[:500]


def send_webhook(channel: WebhookChannel, payload: dict[str, Any], client: httpx.Client) -> None:
    url = resolve_env_reference(channel.url, f"webhook {channel.name}")
    try:
        response = client.post(url, json=payload, timeout=channel.timeout_seconds)
    except httpx.HTTPError as e:
        raise DeliveryError(_safe_error(e, [url, channel.url])) from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code} from webhook {channel.name}")


def send_email(channel: EmailChannel, msg: EmailMessage) -> None:
    username = (
        resolve_env_reference(channel.username, f"email {channel.name}.username")
        if channel.username
        else None
    )
    password = (
        resolve_env_reference(channel.password, f"email {channel.name}.password")
        if channel.password
        else None
    )
    try:
        with smtplib.SMTP(
            channel.smtp_host, channel.smtp_port, timeout=channel.timeout_seconds
        ) as smtp:
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if username:
                smtp.login(username, password or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(_safe_error(e, [password or ""])) from None


def deliver_with_backoff(
    send: Callable[[], None],
    *,
    attempts: int = ATTEMPTS_PER_RUN,
    base_delay: float = RETRY_BASE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str | None]:
    """Call `send` until it succeeds, at most `attempts` times, pausing base_delay, then
    twice that, ... between tries. Returns (tries made, last error or None)."""
    error: str | None = None
    for i in range(attempts):
        if i:
            sleep(base_delay * 2 ** (i - 1))
        try:
            send()
            return i + 1, None
        except DeliveryError as e:
            error = str(e)
    return attempts, error


# -- the job -------------------------------------------------------------------------------
def _load_state(
    store: Store, now: datetime
) -> tuple[list[Incident], list[NoticeRow], list[dict[str, Any]], list[dict[str, Any]]]:
    with store.read() as con:
        incidents = con.execute(
            """
            SELECT id, title, service, signal, severity, status, opened_at, resolved_at,
                   source, assignee
            FROM incidents i
            WHERE status IN ('open', 'acknowledged')
               OR (status = 'resolved' AND resolved_at >= ? AND EXISTS (
                   SELECT 1 FROM notifications n WHERE n.incident_id = i.id
                   AND n.status = 'sent' AND n.kind <> 'resolved'))
            ORDER BY id
            """,
            [now - RESOLVED_LOOKBACK],
        ).fetchall()
        ids = [r[0] for r in incidents] or [-1]
        notices = con.execute(
            """
            SELECT id, incident_id, channel, kind, severity, status, attempts, last_error,
                   created_at, sent_at, next_attempt_at, suppressed_by
            FROM notifications WHERE incident_id IN (SELECT unnest(?::BIGINT[]))
            ORDER BY created_at, id
            """,
            [ids],
        ).fetchall()
        silences = con.sql(
            "SELECT id, service, signal FROM silences WHERE expires_at > $now ORDER BY id",
            params={"now": now},
        ).pl()
        windows = con.sql(
            "SELECT id, service FROM maintenance_windows "
            "WHERE starts_at <= $now AND ends_at > $now ORDER BY id",
            params={"now": now},
        ).pl()
    return (
        [Incident(*r) for r in incidents],
        [NoticeRow(*r) for r in notices],
        silences.to_dicts(),
        windows.to_dicts(),
    )


@dataclass
class _Plan:
    incident: Incident
    channel: Channel
    row: NoticeRow  # new (id None) or an existing pending one to update
    previous_severity: str | None
    suppressed_by: str | None


def plan_notice(
    incident: Incident,
    channel_name: str,
    history: list[NoticeRow],
    *,
    now: datetime,
    repeat_interval: timedelta,
    suppressed_by: str | None,
) -> tuple[NoticeRow, str | None] | None:
    """What to do for one incident on one channel: a notice row to send (or record as
    suppressed) and the previous severity, or None for nothing to do. Pure."""
    # A finished resolved notice ends an episode: a reopened incident starts afresh.
    cut = max(
        (i for i, r in enumerate(history) if r.kind == "resolved" and not r.pending), default=-1
    )
    episode = history[cut + 1 :]
    told = [r for r in episode if r.kind != "resolved" and r.status == "sent"]
    if incident.status == "resolved":
        # Only people who were told it was open hear it is over; once.
        if not told:
            return None
        pending = [r for r in episode if r.kind == "resolved"]
        row = pending[-1] if pending else _new_row(incident, channel_name, "resolved", now)
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            return None
        return row, None
    open_rows = [r for r in episode if r.kind != "resolved"]
    last = open_rows[-1] if open_rows else None
    kind = "repeat" if told else "opened"
    previous = told[-1].severity if told else None
    if last is None:
        return _new_row(incident, channel_name, kind, now), previous
    if last.pending:
        if last.next_attempt_at is not None and last.next_attempt_at > now:
            return None
        return last, previous
    severity_changed = last.severity != incident.severity
    interval_over = now - last.at >= repeat_interval
    if last.status == "suppressed":
        # Silence or window over: say it now. Still suppressed: note it once an interval.
        if suppressed_by is None or severity_changed or interval_over:
            return _new_row(incident, channel_name, kind, now), previous
        return None
    if severity_changed:
        return _new_row(incident, channel_name, "repeat" if told else "opened", now), previous
    # Acknowledged incidents have an owner: no reminders.
    if incident.status == "open" and interval_over:
        return _new_row(incident, channel_name, kind, now), previous
    return None


def _new_row(incident: Incident, channel: str, kind: str, now: datetime) -> NoticeRow:
    return NoticeRow(
        id=None,
        incident_id=incident.id,
        channel=channel,
        kind=kind,
        severity=incident.severity,
        status="failed",
        attempts=0,
        last_error=None,
        created_at=now,
    )


def run_notify(
    store: Store,
    config: GatewayConfig,
    now: datetime | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    http_client: httpx.Client | None = None,
) -> NotifyResult:
    """The worker job: send what is due for every incident on every matching channel."""
    t0 = time.perf_counter()
    at = naive_utc(now)
    result = NotifyResult()
    channels: list[Channel] = [*config.notify.webhooks, *config.notify.email]
    if not channels:
        return result
    repeat = timedelta(minutes=config.notify.repeat_interval_minutes)
    incidents, notices, silences, windows = _load_state(store, at)
    history: dict[tuple[int, str], list[NoticeRow]] = {}
    for n in notices:
        history.setdefault((n.incident_id, n.channel), []).append(n)
    plans: list[_Plan] = []
    for incident in incidents:
        suppressed = suppression_reason(incident, silences, windows)
        for channel in channels:
            if not channel_matches(channel, incident):
                continue
            planned = plan_notice(
                incident,
                channel.name,
                history.get((incident.id, channel.name), []),
                now=at,
                repeat_interval=repeat,
                suppressed_by=suppressed,
            )
            if planned is not None:
                row, previous = planned
                row.severity = incident.severity
                plans.append(_Plan(incident, channel, row, previous, suppressed))
    if not plans:
        result.seconds = time.perf_counter() - t0
        return result
    client = http_client or httpx.Client()
    try:
        for plan in plans:
            _execute(plan, at, client, sleep, result)
    finally:
        if http_client is None:
            client.close()
    _record(store, [p.row for p in plans], at)
    result.seconds = time.perf_counter() - t0
    if result.sent or result.failed:
        log.info("notify: %s", result)
    return result


def _execute(
    plan: _Plan,
    now: datetime,
    client: httpx.Client,
    sleep: Callable[[float], None],
    result: NotifyResult,
) -> None:
    row, incident, channel = plan.row, plan.incident, plan.channel
    if plan.suppressed_by is not None:
        row.status, row.suppressed_by, row.next_attempt_at = "suppressed", plan.suppressed_by, None
        result.suppressed += 1
        result.notices.append((incident.id, channel.name, row.kind, row.status))
        return
    send: Callable[[], None]
    if isinstance(channel, WebhookChannel):
        payload = webhook_payload(incident, row.kind, now, plan.previous_severity)

        def send() -> None:
            send_webhook(channel, payload, client)
    else:
        msg = email_message(channel, incident, row.kind, now, plan.previous_severity)

        def send() -> None:
            send_email(channel, msg)

    tries, error = deliver_with_backoff(send, sleep=sleep)
    row.attempts += tries
    result.attempts += tries
    row.last_error = error
    if error is None:
        row.status, row.sent_at, row.next_attempt_at = "sent", now, None
        result.sent += 1
    else:
        row.status = "failed"
        runs_failed = max(1, row.attempts // ATTEMPTS_PER_RUN)
        delay = min(NEXT_RUN_DELAY_BASE * 2 ** (runs_failed - 1), NEXT_RUN_DELAY_MAX)
        given_up = now - row.created_at >= GIVE_UP_AFTER
        row.next_attempt_at = None if given_up else now + delay
        result.failed += 1
        log.warning(
            "notify: %s notice for incident %d on %s failed after %d attempts%s: %s",
            row.kind,
            incident.id,
            channel.name,
            row.attempts,
            " (giving up)" if given_up else f", next try after {row.next_attempt_at:%H:%M:%S}",
            error,
        )
    result.notices.append((incident.id, channel.name, row.kind, row.status))


def _timeline_event(row: NoticeRow, now: datetime) -> Event | None:
    """What the incident's timeline says about a notice (sent, suppressed, given up)."""
    if row.status == "sent":
        detail = f"{row.kind} notice sent to {row.channel}"
    elif row.status == "suppressed":
        detail = f"{row.kind} notice to {row.channel} suppressed by {row.suppressed_by}"
    elif row.next_attempt_at is None:
        detail = f"{row.kind} notice to {row.channel} given up after {row.attempts} attempts"
    else:
        return None
    return Event(row.incident_id, now, "notified", "notify", detail)


def _record(store: Store, rows: list[NoticeRow], now: datetime) -> None:
    events = [e for e in (_timeline_event(r, now) for r in rows) if e is not None]
    with store.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            next_id = _next_id(con, "notifications")
            for r in rows:
                values = [
                    r.incident_id, r.channel, r.kind, r.severity, r.status, r.attempts,
                    r.last_error, r.created_at, r.sent_at, r.next_attempt_at, r.suppressed_by,
                ]  # fmt: skip
                if r.id is None:
                    r.id = next_id
                    next_id += 1
                    con.execute(
                        "INSERT INTO notifications (id, incident_id, channel, kind, severity, "
                        "status, attempts, last_error, created_at, sent_at, next_attempt_at, "
                        "suppressed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [r.id, *values],
                    )
                else:
                    con.execute(
                        "UPDATE notifications SET incident_id = ?, channel = ?, kind = ?, "
                        "severity = ?, status = ?, attempts = ?, last_error = ?, created_at = ?, "
                        "sent_at = ?, next_attempt_at = ?, suppressed_by = ? WHERE id = ?",
                        [*values, r.id],
                    )
            if events:
                save_events(con, events)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
