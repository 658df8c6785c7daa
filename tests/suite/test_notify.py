from __future__ import annotations

import json
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from suite import incidents
from suite.cli import main
from suite.config import GatewayConfig, parse_gateway_config
from suite.errors import ConfigError
from suite.notify import (
    add_maintenance_window,
    add_silence,
    expire_silence,
    list_maintenance_windows,
    list_silences,
    parse_duration,
    run_notify,
)
from suite.store import Store
from tests.receivers import TOKEN, Mailbox, WebhookReceiver, free_port

T0 = datetime(2026, 3, 10, 12, 0, 0)


def make_config(body: str) -> GatewayConfig:
    return parse_gateway_config(tomllib.loads(body), "gw.toml")


def channels(
    webhook: WebhookReceiver | None = None,
    smtp: Mailbox | None = None,
    *,
    extra: str = "",
    repeat: int = 60,
) -> GatewayConfig:
    text = f"[notify]\nrepeat_interval_minutes = {repeat}\n"
    if webhook is not None:
        text += f'[[notify.webhooks]]\nname = "ops-slack"\nurl = "{webhook.url}"\n{extra}'
    if smtp is not None:
        text += (
            f'[[notify.email]]\nname = "ops-mail"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\n'
            'from = "aiops@example.org"\nto = ["oncall@example.org", "lead@example.org"]\n'
        )
    return make_config(text)


def open_incident(
    store: Store,
    *,
    service: str = "claims-api",
    signal: str = "error_ratio",
    severity: str = "critical",
    at: datetime = T0,
) -> int:
    return incidents.open_or_update_incident(
        store, service=service, signal=signal, severity=severity, now=at, title=f"{service} errors"
    )


def notices(store: Store) -> list[dict[str, Any]]:
    return store.query(
        "SELECT incident_id, channel, kind, severity, status, attempts, last_error, sent_at, "
        "suppressed_by FROM notifications ORDER BY id"
    ).to_dicts()


def no_sleep(_seconds: float) -> None:
    pass


def assert_no_secret_stored(store: Store) -> None:
    for table in ("notifications", "silences", "maintenance_windows", "incident_events"):
        df = store.query(f"SELECT * FROM {table}")
        assert TOKEN not in df.write_csv(), table


# -- the lifecycle --------------------------------------------------------------------------
def test_opened_once_repeat_after_the_interval_resolved_once(
    tmp_path: Path, webhook: WebhookReceiver, smtp: Mailbox
) -> None:
    store = Store(tmp_path)
    config = channels(webhook, smtp)
    iid = open_incident(store)

    first = run_notify(store, config, T0, sleep=no_sleep)
    assert (first.sent, first.failed) == (2, 0)
    assert webhook.kinds() == ["opened"] and smtp.kinds() == ["opened"]
    msg = webhook.received[0]
    assert msg["text"].startswith("[CRITICAL] claims-api errors")
    assert msg["aiops"]["incident_id"] == iid and msg["blocks"][0]["type"] == "section"
    rcpt, mail = smtp.messages[0]
    assert rcpt == ["oncall@example.org", "lead@example.org"]
    assert mail["Subject"] == "[aiops] [CRITICAL] claims-api errors (claims-api)"
    assert mail["From"] == "aiops@example.org"
    assert "Signal:" in mail.get_payload() and f"#{iid}" in mail.get_payload()

    for minutes in (1, 30, 59):  # within the repeat interval: silence
        assert run_notify(store, config, T0 + timedelta(minutes=minutes), sleep=no_sleep).sent == 0
    assert len(webhook.received) == 1 and len(smtp.messages) == 1

    assert run_notify(store, config, T0 + timedelta(minutes=61), sleep=no_sleep).sent == 2
    assert webhook.kinds() == ["opened", "repeat"] and smtp.kinds() == ["opened", "repeat"]
    assert webhook.received[1]["text"].startswith("[CRITICAL] still open:")
    run_notify(store, config, T0 + timedelta(minutes=62), sleep=no_sleep)
    assert len(webhook.received) == 2

    incidents.resolve_signal_incident(
        store, service="claims-api", signal="error_ratio", now=T0 + timedelta(minutes=70)
    )
    for minutes in (71, 72, 200):
        run_notify(store, config, T0 + timedelta(minutes=minutes), sleep=no_sleep)
    assert webhook.kinds() == ["opened", "repeat", "resolved"]
    assert smtp.kinds() == ["opened", "repeat", "resolved"]
    assert webhook.received[2]["text"] == "[RESOLVED] claims-api errors (claims-api)"
    rows = notices(store)
    assert [(r["channel"], r["kind"], r["status"], r["attempts"]) for r in rows] == [
        ("ops-slack", "opened", "sent", 1),
        ("ops-mail", "opened", "sent", 1),
        ("ops-slack", "repeat", "sent", 1),
        ("ops-mail", "repeat", "sent", 1),
        ("ops-slack", "resolved", "sent", 1),
        ("ops-mail", "resolved", "sent", 1),
    ]
    timeline = [e["detail"] for e in incidents.get_incident(store, iid)["events"]]
    assert "opened notice sent to ops-slack" in timeline
    assert "resolved notice sent to ops-mail" in timeline
    assert_no_secret_stored(store)


def test_failing_webhook_is_retried_with_back_off_and_delivered(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    open_incident(store)
    webhook.statuses = [500]
    pauses: list[float] = []
    result = run_notify(store, channels(webhook), T0, sleep=pauses.append)
    assert (result.sent, result.failed, result.attempts) == (1, 0, 2)
    assert pauses == [0.5]
    assert webhook.hits == 2 and webhook.kinds() == ["opened"]
    (row,) = notices(store)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 2, None)


def test_failed_delivery_waits_and_is_retried_at_a_later_run(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    config = channels(webhook)
    open_incident(store)
    webhook.statuses = [500, 502, 503]
    pauses: list[float] = []
    result = run_notify(store, config, T0, sleep=pauses.append)
    assert (result.sent, result.failed) == (0, 1)
    assert pauses == [0.5, 1.0]  # doubling
    (row,) = notices(store)
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["last_error"] == "HTTP 503 from webhook ops-slack"

    # Still backing off ten seconds later: no new attempt.
    run_notify(store, config, T0 + timedelta(seconds=10), sleep=no_sleep)
    assert webhook.hits == 3
    result = run_notify(store, config, T0 + timedelta(seconds=31), sleep=no_sleep)
    assert result.sent == 1 and webhook.kinds() == ["opened"]
    (row,) = notices(store)
    assert (row["status"], row["attempts"], row["kind"]) == ("sent", 4, "opened")
    assert row["sent_at"] == T0 + timedelta(seconds=31)
    assert_no_secret_stored(store)


def test_unreachable_webhook_error_keeps_the_url_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    config = make_config(
        '[[notify.webhooks]]\nname = "hook"\nurl = "${AIOPS_TEST_HOOK}"\ntimeout_seconds = 2\n'
    )
    open_incident(store)
    result = run_notify(store, config, T0, sleep=no_sleep)
    assert result.failed == 1
    assert notices(store)[0]["last_error"] == (
        "webhook hook: environment variable AIOPS_TEST_HOOK is not set"
    )
    monkeypatch.setenv("AIOPS_TEST_HOOK", f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}")
    result = run_notify(store, config, T0 + timedelta(minutes=5), sleep=no_sleep)
    assert result.failed == 1
    (row,) = notices(store)
    assert row["attempts"] == 6 and row["last_error"].startswith("ConnectError")
    assert_no_secret_stored(store)


# -- silences and maintenance ---------------------------------------------------------------
def test_silence_suppresses_is_recorded_and_expires(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    config = channels(webhook)
    sid = add_silence(
        store,
        service="claims-api",
        duration=timedelta(hours=2),
        reason="known upstream outage",
        created_by="ana",
        now=T0 - timedelta(minutes=1),
    )
    iid = open_incident(store)
    result = run_notify(store, config, T0, sleep=no_sleep)
    assert (result.sent, result.suppressed) == (0, 1)
    assert webhook.received == []
    (row,) = notices(store)
    assert (row["kind"], row["status"], row["suppressed_by"]) == (
        "opened",
        "suppressed",
        f"silence:{sid}",
    )
    # Still silenced: not recorded again within the interval.
    run_notify(store, config, T0 + timedelta(minutes=10), sleep=no_sleep)
    assert len(notices(store)) == 1
    assert [s["id"] for s in list_silences(store, now=T0 + timedelta(minutes=10))] == [sid]

    expire_silence(store, sid, now=T0 + timedelta(minutes=20))
    assert list_silences(store, now=T0 + timedelta(minutes=21)) == []
    result = run_notify(store, config, T0 + timedelta(minutes=21), sleep=no_sleep)
    assert result.sent == 1 and webhook.kinds() == ["opened"]
    assert webhook.received[0]["aiops"]["incident_id"] == iid


def test_silence_by_signal_glob_and_its_own_expiry(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    config = channels(webhook)
    add_silence(
        store,
        service="*",
        signal="slo_burn:*",
        duration=parse_duration("30m"),
        reason="tuning SLOs",
        now=T0,
    )
    open_incident(store, signal="slo_burn:claims-availability")
    open_incident(store, service="quotes-api", signal="latency_p95_ms", severity="warning")
    result = run_notify(store, config, T0 + timedelta(minutes=1), sleep=no_sleep)
    assert (result.sent, result.suppressed) == (1, 1)
    assert [m["aiops"]["service"] for m in webhook.received] == ["quotes-api"]
    # The silence runs out after 30 minutes; the still-open SLO incident is told then.
    run_notify(store, config, T0 + timedelta(minutes=29), sleep=no_sleep)
    assert len(webhook.received) == 1
    run_notify(store, config, T0 + timedelta(minutes=31), sleep=no_sleep)
    assert [m["aiops"]["signal"] for m in webhook.received] == [
        "latency_p95_ms",
        "slo_burn:claims-availability",
    ]


def test_maintenance_window_suppresses_but_keeps_the_incident(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    config = channels(webhook)
    wid = add_maintenance_window(
        store,
        service="claims-api",
        starts_at=T0 - timedelta(minutes=10),
        ends_at=T0 + timedelta(minutes=20),
        reason="database upgrade",
    )
    assert [w["id"] for w in list_maintenance_windows(store, active_at=T0)] == [wid]
    assert list_maintenance_windows(store, active_at=T0 + timedelta(minutes=20)) == []
    iid = open_incident(store)
    result = run_notify(store, config, T0, sleep=no_sleep)
    assert (result.sent, result.suppressed) == (0, 1)
    assert webhook.received == []
    assert notices(store)[0]["suppressed_by"] == f"maintenance:{wid}"
    events = incidents.get_incident(store, iid)["events"]
    assert events[-1]["detail"] == f"opened notice to ops-slack suppressed by maintenance:{wid}"
    assert incidents.get_incident(store, iid)["status"] == "open"
    # After the window the incident, still open, is notified.
    run_notify(store, config, T0 + timedelta(minutes=21), sleep=no_sleep)
    assert webhook.kinds() == ["opened"]
    with pytest.raises(ConfigError, match="ends_at must be after starts_at"):
        add_maintenance_window(store, service="x", starts_at=T0, ends_at=T0, reason="r")


# -- routing and policy -----------------------------------------------------------------------
def test_channels_filter_by_severity_and_service(
    tmp_path: Path, webhook: WebhookReceiver, smtp: Mailbox
) -> None:
    store = Store(tmp_path)
    config = make_config(
        f'[[notify.webhooks]]\nname = "claims-team"\nurl = "{webhook.url}"\n'
        'services = ["claims-api"]\n'
        f'[[notify.email]]\nname = "pager"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\n'
        'from = "a@example.org"\nto = ["b@example.org"]\nseverities = ["critical"]\n'
    )
    open_incident(store, service="claims-api", severity="warning")
    open_incident(store, service="quotes-api", severity="critical")
    run_notify(store, config, T0, sleep=no_sleep)
    assert [m["aiops"]["service"] for m in webhook.received] == ["claims-api"]
    assert [m["Subject"] for _, m in smtp.messages] == [
        "[aiops] [CRITICAL] quotes-api errors (quotes-api)"
    ]


def test_severity_change_is_told_at_once(tmp_path: Path, webhook: WebhookReceiver) -> None:
    store = Store(tmp_path)
    config = channels(webhook)
    open_incident(store, severity="warning")
    run_notify(store, config, T0, sleep=no_sleep)
    open_incident(store, severity="critical", at=T0 + timedelta(minutes=2))
    run_notify(store, config, T0 + timedelta(minutes=3), sleep=no_sleep)
    assert webhook.kinds() == ["opened", "repeat"]
    assert webhook.received[1]["text"].startswith("[CRITICAL] severity warning -> critical")
    run_notify(store, config, T0 + timedelta(minutes=4), sleep=no_sleep)
    assert len(webhook.received) == 2


def test_acknowledged_incident_gets_no_reminders(tmp_path: Path, webhook: WebhookReceiver) -> None:
    store = Store(tmp_path)
    config = channels(webhook)
    iid = open_incident(store)
    run_notify(store, config, T0, sleep=no_sleep)
    incidents.acknowledge(store, iid, actor="ana")
    run_notify(store, config, T0 + timedelta(hours=3), sleep=no_sleep)
    assert webhook.kinds() == ["opened"]


def test_reopened_incident_is_told_again_and_resolved_again(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    config = channels(webhook)
    iid = open_incident(store)
    run_notify(store, config, T0, sleep=no_sleep)
    incidents.resolve_signal_incident(
        store, service="claims-api", signal="error_ratio", now=T0 + timedelta(minutes=5)
    )
    run_notify(store, config, T0 + timedelta(minutes=6), sleep=no_sleep)
    # The problem is back within the reopen window: the same incident, open again.
    assert open_incident(store, at=T0 + timedelta(minutes=10)) == iid
    run_notify(store, config, T0 + timedelta(minutes=11), sleep=no_sleep)
    run_notify(store, config, T0 + timedelta(minutes=12), sleep=no_sleep)
    incidents.resolve_signal_incident(
        store, service="claims-api", signal="error_ratio", now=T0 + timedelta(minutes=20)
    )
    run_notify(store, config, T0 + timedelta(minutes=21), sleep=no_sleep)
    run_notify(store, config, T0 + timedelta(minutes=22), sleep=no_sleep)
    assert webhook.kinds() == ["opened", "resolved", "opened", "resolved"]


def test_incident_resolved_before_anyone_was_told_sends_nothing(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    open_incident(store)
    incidents.resolve_signal_incident(
        store, service="claims-api", signal="error_ratio", now=T0 + timedelta(seconds=5)
    )
    run_notify(store, channels(webhook), T0 + timedelta(seconds=10), sleep=no_sleep)
    assert webhook.hits == 0 and notices(store) == []


def test_no_channels_means_nothing_recorded(tmp_path: Path) -> None:
    store = Store(tmp_path)
    open_incident(store)
    assert run_notify(store, make_config(""), T0).sent == 0
    assert notices(store) == []


# -- config, durations, CLI -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[[notify.email]]\nname = "m"\nsmtp_host = "h"\nfrom = "a@b.c"\nto = ["d@e.f"]\n'
            'password = "hunter2"\n',
            'gw.toml: notify.email[0].password: must be an environment reference such as "${SMTP_PASSWORD}"',
        ),
        (
            '[[notify.webhooks]]\nname = "w"\nurl = "ftp://x"\n',
            "gw.toml: notify.webhooks[0].url: 'ftp://x' is not an http(s) URL",
        ),
        ('[[notify.webhooks]]\nname = "w"\n', "gw.toml: notify.webhooks[0].url: is required"),
        (
            '[[notify.webhooks]]\nname = "w"\nurl = "http://x"\nseverities = ["urgent"]\n',
            "gw.toml: notify.webhooks[0].severities: 'urgent' is not one of critical, warning, info",
        ),
        (
            '[[notify.webhooks]]\nname = "w"\nurl = "http://x"\n'
            '[[notify.email]]\nname = "w"\nsmtp_host = "h"\nfrom = "a@b.c"\nto = ["d@e.f"]\n',
            "gw.toml: notify.email[0].name: 'w' is already used by notify.webhooks[0]",
        ),
        (
            '[[notify.email]]\nname = "m"\nsmtp_host = "h"\nfrom = "a@b.c"\nto = []\n',
            "gw.toml: notify.email[0].to: [] must be a non-empty list of addresses",
        ),
        (
            '[[notify.email]]\nname = "m"\nsmtp_host = "h"\nfrom = "a@b.c"\nto = ["d@e.f"]\n'
            "smtp_port = 70000\n",
            "gw.toml: notify.email[0].smtp_port: 70000 is out of range",
        ),
        ("[notify]\nrepeat_interval_minutes = 0\n", "gw.toml: notify.repeat_interval_minutes: 0"),
        ("[notify]\nrepeat = 5\n", "gw.toml: notify.repeat: unknown key"),
    ],
)
def test_notify_config_mistakes_name_file_and_key(body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_config(body)
    assert expected in str(e.value)


def test_notify_config_accepts_env_references() -> None:
    config = make_config(
        '[notify]\nrepeat_interval_minutes = 15\n[[notify.webhooks]]\nname = "w"\n'
        'url = "${SLACK_WEBHOOK_URL}"\nseverities = ["critical", "warning"]\n'
        '[[notify.email]]\nname = "m"\nsmtp_host = "smtp.example.org"\nsmtp_port = 587\n'
        'from = "a@b.c"\nto = ["d@e.f"]\nstarttls = true\nusername = "aiops"\n'
        'password = "${SMTP_PASSWORD}"\n'
    )
    assert config.notify.repeat_interval_minutes == 15
    assert config.notify.webhooks[0].url == "${SLACK_WEBHOOK_URL}"
    mail = config.notify.email[0]
    assert (mail.smtp_port, mail.starttls, mail.password) == (587, True, "${SMTP_PASSWORD}")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "2x", "h", "0m", "-1h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--duration"):
        parse_duration(text)


def test_silences_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = str(tmp_path / "h")
    assert (
        main(
            [
                "silences",
                "add",
                "--home",
                home,
                "--service",
                "claims-api",
                "--signal",
                "slo_burn:*",
                "--duration",
                "2h",
                "--reason",
                "deploy",
                "--created-by",
                "ana",
            ]
        )  # fmt: skip
        == 0
    )
    assert "silence 1:" in capsys.readouterr().out
    assert main(["silences", "list", "--home", home, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["id"], row["service"], row["signal"], row["created_by"], row["reason"]) == (
        1,
        "claims-api",
        "slo_burn:*",
        "ana",
        "deploy",
    )
    assert row["active"] is True
    assert main(["silences", "expire", "1", "--home", home]) == 0
    capsys.readouterr()
    assert main(["silences", "list", "--home", home, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["silences", "expire", "9", "--home", home]) == 1
    assert "no silence with id 9" in capsys.readouterr().err
    bad = ["silences", "add", "--home", home, "--service", "x", "--duration", "soon"]
    assert main([*bad, "--reason", "r"]) == 2
    assert "--duration: 'soon' is not a duration" in capsys.readouterr().err


def test_slo_page_to_webhook_and_back(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """The worker's order: slo opens the page, notify tells it; clean traffic resolves both."""
    from suite.slo import run_slo
    from tests.suite.test_slo import ROUTES, add_minutes

    store = Store(tmp_path)
    config = make_config(
        ROUTES
        + '[[slos]]\nname = "claims-availability"\nservice = "claims-api"\nobjective = 99.9\n'
        + f'[[notify.webhooks]]\nname = "ops-slack"\nurl = "{webhook.url}"\n'
        + 'severities = ["critical"]\n'
    )
    add_minutes(store, T0 - timedelta(hours=1), T0, requests=1000, errors_5xx=50)
    run_slo(store, config, T0)
    run_notify(store, config, T0, sleep=no_sleep)
    assert webhook.kinds() == ["opened"]
    assert webhook.received[0]["aiops"]["signal"] == "slo_burn:claims-availability"
    assert webhook.received[0]["aiops"]["severity"] == "critical"
    add_minutes(store, T0, T0 + timedelta(days=4), requests=1000, errors_5xx=0)
    later = T0 + timedelta(days=4)
    run_slo(store, config, later)
    run_notify(store, config, later, sleep=no_sleep)
    assert webhook.kinds() == ["opened", "resolved"]


# Loopback only; production channels use starttls = true.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtp_login_uses_the_password_from_the_environment_and_never_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == TOKEN.encode(), handled=False)

    box = Mailbox(port=free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        store = Store(tmp_path)
        config = make_config(
            f'[[notify.email]]\nname = "ops-mail"\nsmtp_host = "127.0.0.1"\nsmtp_port = {box.port}\n'
            'from = "aiops@example.org"\nto = ["oncall@example.org"]\nusername = "aiops"\n'
            'password = "${AIOPS_TEST_SMTP_PASSWORD}"\n'
        )
        open_incident(store)
        monkeypatch.setenv("AIOPS_TEST_SMTP_PASSWORD", "wrong")
        result = run_notify(store, config, T0, sleep=no_sleep)
        assert result.failed == 1 and box.messages == []
        assert notices(store)[0]["last_error"].startswith("SMTPAuthenticationError")
        monkeypatch.setenv("AIOPS_TEST_SMTP_PASSWORD", TOKEN)
        result = run_notify(store, config, T0 + timedelta(minutes=1), sleep=no_sleep)
        assert result.sent == 1 and box.kinds() == ["opened"]
        assert logins[-1] == (b"aiops", TOKEN.encode())
        assert_no_secret_stored(store)
    finally:
        controller.stop()
