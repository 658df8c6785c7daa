"""Gateway API keys: issuing, hashing, verifying, revoking, and the hashes-only snapshot
that gateways read (they never open DuckDB).

A key is `aiops_<key id>_<secret>` with a 256-bit secret. Only a salted HMAC-SHA256 of the
secret is ever stored (table `api_keys`, snapshot `<home>/run/api_keys.json`); the key
itself is printed once by `aiops keys create` and never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from suite.clock import utc_now
from suite.errors import AiopsError, ConfigError
from suite.home import Home

KEY_PREFIX = "aiops_"
KEY_ID_HEX = 12  # 48 bits: a name, not a secret
SECRET_HEX = 64  # 256 bits
KEY_RE = re.compile(rf"^aiops_([0-9a-f]{{{KEY_ID_HEX}}})_([0-9a-f]{{{SECRET_HEX}}})$")
KEY_ID_RE = re.compile(rf"^[0-9a-f]{{{KEY_ID_HEX}}}$")
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
AUTH_MODES = ("none", "key")
SNAPSHOT_NAME = "api_keys.json"
SNAPSHOT_FORMAT = 1
DURATION_RE = re.compile(r"^(\d+)\s*([mhdw])$")
DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class KeyNotFound(AiopsError):
    """`aiops keys revoke` with an id that is not a key."""

    exit_code = 2


# -- the key itself ------------------------------------------------------------------------
def new_key() -> tuple[str, str, str]:
    """(key id, secret, full key) for a new gateway key."""
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    secret = secrets.token_hex(SECRET_HEX // 2)
    return key_id, secret, f"{KEY_PREFIX}{key_id}_{secret}"


def hash_secret(salt_hex: str, secret: str) -> str:
    """HMAC-SHA256 of the secret under a per-key salt. The secret has 256 bits of entropy,
    so a slow KDF (scrypt) would only cost milliseconds per request and add nothing."""
    return hmac.new(bytes.fromhex(salt_hex), secret.encode(), hashlib.sha256).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed gateway key, else None."""
    m = KEY_RE.match(presented)
    return (m.group(1), m.group(2)) if m else None


def display_key(key_id: str, last4: str) -> str:
    """How a key is shown in lists and logs: enough to recognise, useless to use."""
    return f"{KEY_PREFIX}{key_id}_...{last4}"


@dataclass(frozen=True)
class KeyRecord:
    """One key as a gateway sees it (from the snapshot): limits and the verifier."""

    key_id: str
    tenant: str
    routes: tuple[str, ...]  # empty: every route
    rpm: int | None
    tpm: int | None
    budget_usd_day: float | None
    budget_usd_month: float | None
    expires_at: float | None  # epoch seconds
    revoked_at: float | None
    salt: str
    hash: str

    def allows_route(self, route: str) -> bool:
        return not self.routes or route in self.routes


VERIFY_REASONS = ("malformed", "unknown", "revoked", "expired")


def verify_key(
    presented: str, keys: dict[str, KeyRecord], now: float
) -> tuple[KeyRecord | None, str | None]:
    """(record, None) for a valid key, else (record or None, reason): 'malformed',
    'unknown' (no such id, or the secret does not match), 'revoked', 'expired'."""
    parts = split_key(presented)
    if parts is None:
        return None, "malformed"
    key_id, secret = parts
    record = keys.get(key_id)
    if record is None or not hmac.compare_digest(hash_secret(record.salt, secret), record.hash):
        return None, "unknown"
    return record, state_reason(record, now)


def state_reason(record: KeyRecord, now: float) -> str | None:
    """'revoked', 'expired' or None (usable) at `now`."""
    if record.revoked_at is not None and record.revoked_at <= now:
        return "revoked"
    if record.expires_at is not None and record.expires_at <= now:
        return "expired"
    return None


# -- route config ([[routes]] auth, rpm, tpm) ------------------------------------------------
def parse_route_policy(problems: Any, where: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Route fields `auth`, `rpm`, `tpm` (called by suite.config; mistakes go to problems)."""
    out: dict[str, Any] = {}
    if "auth" in raw:
        auth = raw["auth"]
        if auth not in AUTH_MODES:
            problems.add(f"{where}.auth", f"{auth!r} is not one of {', '.join(AUTH_MODES)}")
        else:
            out["auth"] = auth
    for name in ("rpm", "tpm"):
        if name in raw:
            v = raw[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.add(f"{where}.{name}", f"{v!r} must be a whole number >= 1")
            else:
                out[name] = v
    return out


# -- options of `aiops keys create` ----------------------------------------------------------
def parse_expires(text: str, now: datetime | None = None) -> datetime:
    """'30d', '12h', '90m', '2w', '2027-01-01' or an ISO date-time -> naive UTC datetime."""
    now = now or utc_now()
    value = text.strip()
    m = DURATION_RE.match(value.lower())
    if m:
        seconds = int(m.group(1)) * DURATION_UNITS[m.group(2)]
        if seconds <= 0:
            raise ConfigError(f"--expires: {text!r} must be longer than zero")
        return now + timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--expires: {text!r} is neither a date (2027-01-01), a date-time "
            "(2027-01-01T12:00:00Z) nor a duration (90m, 12h, 30d, 2w)"
        ) from None
    at = parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    if at <= now:
        raise ConfigError(f"--expires: {text!r} is in the past (now is {now:%Y-%m-%d %H:%M} UTC)")
    return at


def check_key_options(
    tenant: str,
    routes: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    budget_usd_day: float | None,
    budget_usd_month: float | None,
    known_routes: set[str] | None,
) -> None:
    """Every mistake in the options of `keys create`, as one ConfigError."""
    problems: list[str] = []
    if not TENANT_RE.match(tenant or ""):
        problems.append(
            f"--tenant: {tenant!r} is not a tenant name "
            "(letters, digits, '_', '.', '@', '-'; at most 64)"
        )
    for r in routes:
        if known_routes is not None and r not in known_routes:
            known = ", ".join(sorted(known_routes)) or "none defined"
            problems.append(f"--routes: {r!r} is not a route of the gateway config ({known})")
    for name, v in (("--rpm", rpm), ("--tpm", tpm)):
        if v is not None and v < 1:
            problems.append(f"{name}: {v} must be at least 1")
    for name, b in (("--budget-usd-day", budget_usd_day), ("--budget-usd-month", budget_usd_month)):
        if b is not None and not b > 0:
            problems.append(f"{name}: {b} must be more than 0")
    if problems:
        raise ConfigError("\n".join(problems))


# -- the store: create, list, revoke ----------------------------------------------------------
KEY_COLUMNS = (
    "key_id", "tenant", "name", "routes", "rpm", "tpm", "budget_usd_day", "budget_usd_month",
    "created_at", "created_by", "expires_at", "revoked_at", "revoked_by", "salt", "hash",
    "display_prefix", "last4",
)  # fmt: skip


def create_key(
    store: Any,
    *,
    tenant: str,
    routes: tuple[str, ...] = (),
    rpm: int | None = None,
    tpm: int | None = None,
    budget_usd_day: float | None = None,
    budget_usd_month: float | None = None,
    expires_at: datetime | None = None,
    name: str | None = None,
    actor: str | None = None,
    known_routes: set[str] | None = None,
) -> tuple[str, str]:
    """Store a new key's hash (and an audit row), refresh the snapshot; (key id, full key).
    The full key is returned to be shown once: it is not kept anywhere."""
    from suite import audit

    check_key_options(tenant, routes, rpm, tpm, budget_usd_day, budget_usd_month, known_routes)
    key_id, secret, full = new_key()
    salt = secrets.token_hex(16)
    who = actor or audit.current_actor()
    with store.write() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"INSERT INTO api_keys ({', '.join(KEY_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(KEY_COLUMNS))})",
            [
                key_id, tenant, name, list(routes), rpm, tpm, budget_usd_day, budget_usd_month,
                utc_now(), who, expires_at, None, None, salt, hash_secret(salt, secret),
                f"{KEY_PREFIX}{key_id}", secret[-4:],
            ],
        )  # fmt: skip
        audit.record(
            con,
            "api_key.create",
            "api_key",
            key_id,
            detail={
                "tenant": tenant,
                "name": name,
                "routes": list(routes),
                "rpm": rpm,
                "tpm": tpm,
                "budget_usd_day": budget_usd_day,
                "budget_usd_month": budget_usd_month,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },  # fmt: skip
            actor=who,
        )
        con.execute("COMMIT")
        # Under the same lock, so two CLIs cannot write their snapshots out of order.
        write_keys_snapshot(store.home, _snapshot_rows(con))
    return key_id, full


def revoke_key(store: Any, key_id: str, *, actor: str | None = None) -> bool:
    """Revoke a key now; False if it was already revoked. Unknown id: KeyNotFound."""
    from suite import audit

    if not KEY_ID_RE.match(key_id):
        raise KeyNotFound(
            f"{key_id!r} is not a key id ({KEY_ID_HEX} hex digits; see `aiops keys list`)"
        )
    who = actor or audit.current_actor()
    with store.write() as con:
        row = con.execute("SELECT revoked_at FROM api_keys WHERE key_id = ?", [key_id]).fetchone()
        if row is None:
            raise KeyNotFound(f"no key with id {key_id!r} (see `aiops keys list`)")
        changed = row[0] is None
        if changed:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ?",
                [utc_now(), who, key_id],
            )
            audit.record(con, "api_key.revoke", "api_key", key_id, actor=who)
            con.execute("COMMIT")
        write_keys_snapshot(store.home, _snapshot_rows(con))
    return changed


LIST_SQL = """
WITH spend AS (
    SELECT api_key_id,
           sum(cost_usd) FILTER (WHERE ts >= $day AND NOT coalesce(cache_hit, false)) AS day_usd,
           sum(cost_usd) FILTER (WHERE NOT coalesce(cache_hit, false)) AS month_usd,
           max(ts) AS last_used_at,
           count(*) AS requests_month
    FROM requests WHERE api_key_id IS NOT NULL AND ts >= $month GROUP BY api_key_id
)
SELECT k.key_id, k.tenant, k.name, k.display_prefix, k.last4, k.routes, k.rpm, k.tpm,
       k.budget_usd_day, k.budget_usd_month,
       coalesce(s.day_usd, 0) AS spent_usd_day, coalesce(s.month_usd, 0) AS spent_usd_month,
       coalesce(s.requests_month, 0) AS requests_month, s.last_used_at,
       k.created_at, k.created_by, k.expires_at, k.revoked_at, k.revoked_by
FROM api_keys k LEFT JOIN spend s ON s.api_key_id = k.key_id
ORDER BY k.created_at, k.key_id
"""


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    """(start of the UTC day, start of the UTC month) of a naive UTC time."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def list_keys(store: Any, *, include_revoked: bool = True) -> list[dict[str, Any]]:
    """Every key with its limits, spend this day/month and state; never the secret or hash."""
    now = utc_now()
    day, month = period_starts(now)
    df = store.query(LIST_SQL, {"day": day, "month": month})
    out = []
    for r in df.to_dicts():
        if r["revoked_at"] is not None:
            status = "revoked"
        elif r["expires_at"] is not None and r["expires_at"] <= now:
            status = "expired"
        else:
            status = "active"
        if status == "revoked" and not include_revoked:
            continue
        r["key"] = display_key(r["key_id"], r.pop("last4"))
        r.pop("display_prefix")
        r["routes"] = list(r["routes"] or [])
        r["status"] = status
        out.append(r)
    return out


# -- the snapshot file gateways read ---------------------------------------------------------
def snapshot_path(home: Home) -> Path:
    return home.run_dir / SNAPSHOT_NAME


def _epoch(ts: datetime | None) -> float | None:
    return None if ts is None else ts.replace(tzinfo=UTC).timestamp()


def _snapshot_rows(con: Any) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT key_id, tenant, routes, rpm, tpm, budget_usd_day, budget_usd_month, "
        "expires_at, revoked_at, salt, hash FROM api_keys ORDER BY key_id"
    ).fetchall()
    return [
        {
            "key_id": r[0],
            "tenant": r[1],
            "routes": list(r[2] or []),
            "rpm": r[3],
            "tpm": r[4],
            "budget_usd_day": r[5],
            "budget_usd_month": r[6],
            "expires_at": _epoch(r[7]),
            "revoked_at": _epoch(r[8]),
            "salt": r[9],
            "hash": r[10],
        }  # fmt: skip
        for r in rows
    ]


def write_json_atomically(path: Path, payload: object) -> None:
    """Write to a temporary name in the same directory, fsync, rename: a reader sees the
    old file or the new one, never half of one. Mode 0600: hashes are still credentials'
    verifiers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, separators=(",", ":"), sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_keys_snapshot(home: Home, rows: list[dict[str, Any]]) -> bool:
    """Write the snapshot if its keys differ from the file's; True if written (an unchanged
    file keeps its mtime, so gateways do not reload for nothing)."""
    path = snapshot_path(home)
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("keys") == rows:
            return False
    except (OSError, ValueError, AttributeError):
        pass
    write_json_atomically(
        path, {"format": SNAPSHOT_FORMAT, "written_at": utc_now().isoformat(), "keys": rows}
    )
    return True


def refresh_keys_snapshot(store: Any) -> bool:
    """Rewrite the snapshot from the store if it is missing or stale (worker job)."""
    with store.read() as con:
        rows = _snapshot_rows(con)
    return write_keys_snapshot(store.home, rows)


def read_keys_snapshot(path: Path) -> dict[str, KeyRecord]:
    """Key id -> record from a snapshot file; raises OSError/ValueError when unreadable."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"{path}: not an api key snapshot of format {SNAPSHOT_FORMAT}")
    out: dict[str, KeyRecord] = {}
    for k in data.get("keys", []):
        out[k["key_id"]] = KeyRecord(
            key_id=k["key_id"],
            tenant=k["tenant"],
            routes=tuple(k.get("routes") or ()),
            rpm=k.get("rpm"),
            tpm=k.get("tpm"),
            budget_usd_day=k.get("budget_usd_day"),
            budget_usd_month=k.get("budget_usd_month"),
            expires_at=k.get("expires_at"),
            revoked_at=k.get("revoked_at"),
            salt=k["salt"],
            hash=k["hash"],
        )
    return out
