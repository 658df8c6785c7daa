"""`aiops detect-series`: score a CSV of timestamp,value with a registered detector and
write it back with anomaly_score and anomaly columns.

It never leaves a partial or stale output behind: it writes a temporary file beside the
output and renames it only when everything succeeded.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from suite.detect.base import DetectorError
from suite.detect.registry import DEFAULT_DETECTOR, get_detector


class SeriesInputError(DetectorError):
    """The input CSV cannot be scored (missing file or column, unparsable cell)."""


@dataclass(frozen=True)
class SeriesSummary:
    detector: str
    threshold: float
    rows: int
    anomalies: int
    max_score: float
    output: Path


def read_series_csv(path: str | Path) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """The CSV as read, its timestamps (datetime64[ns], UTC-naive) and float values."""
    p = Path(path)
    if not p.is_file():
        raise SeriesInputError(f"{p}: file not found")
    try:
        df = pl.read_csv(p, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as e:
        raise SeriesInputError(f"{p}: not a readable CSV file ({_first_line(e)})") from None
    missing = [c for c in ("timestamp", "value") if c not in df.columns]
    if missing:
        raise SeriesInputError(
            f"{p}: missing column(s) {', '.join(missing)}; need timestamp,value "
            f"(found: {', '.join(df.columns) or 'none'})"
        )
    ts_np = parse_timestamps(df["timestamp"], p)
    val_text = df["value"].str.strip_chars()
    vals = val_text.cast(pl.Float64, strict=False)
    # Empty cells are missing values (scored 0); anything else must parse as a number.
    bad_v = (vals.is_null() & val_text.is_not_null() & (val_text != "")) | vals.is_infinite()
    if bad_v.any():
        row = int(bad_v.arg_max() or 0)
        raise SeriesInputError(
            f"{p}: row {row + 2}: value {df['value'][row]!r} is not a finite number"
        )
    return df, ts_np, vals.fill_null(np.nan).to_numpy().astype(np.float64)


def parse_timestamps(col: pl.Series, p: Path) -> np.ndarray:
    """ISO 8601 timestamps (offsets converted to UTC, naive ones taken as UTC)."""
    text = col.str.strip_chars()
    ts = text.str.to_datetime(time_unit="ns", strict=False, time_zone="UTC")
    if ts.null_count() == 0:
        return ts.dt.replace_time_zone(None).to_numpy().astype("datetime64[ns]")
    # Mixed formats (some with offsets, some without): parse one by one.
    out = np.empty(len(text), dtype="datetime64[ns]")
    for i, cell in enumerate(text.to_list()):
        try:
            d = datetime.fromisoformat(cell or "")
        except ValueError:
            raise SeriesInputError(
                f"{p}: row {i + 2}: timestamp {col[i]!r} is not an ISO timestamp"
            ) from None
        if d.tzinfo is not None:
            d = d.astimezone(UTC).replace(tzinfo=None)
        out[i] = np.datetime64(d, "ns")
    return out


def detect_csv(
    in_path: str | Path, out_path: str | Path, detector: str = DEFAULT_DETECTOR
) -> SeriesSummary:
    """Score in_path's `value` column causally; write in_path + anomaly_score, anomaly."""
    det = get_detector(detector)  # unknown names fail before anything is read or written
    df, ts, values = read_series_csv(in_path)
    scores = det.score_series(ts, values)
    shown = np.round(scores, 6)
    # A held score one float step under the threshold must not print as the threshold.
    shown = np.where((shown >= det.threshold) & ~det.is_anomaly(scores), shown - 1e-6, shown)
    out = df.with_columns(
        pl.Series("anomaly_score", shown),
        pl.Series("anomaly", det.is_anomaly(scores)),
    )
    target = Path(out_path)
    if not target.parent.is_dir():
        raise SeriesInputError(f"{target}: output folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        out.write_csv(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return SeriesSummary(
        detector=detector,
        threshold=det.threshold,
        rows=len(out),
        anomalies=int(det.is_anomaly(scores).sum()),
        max_score=float(scores.max()) if len(scores) else 0.0,
        output=target,
    )


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
