from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from suite.cli import main
from suite.detect.series import SeriesInputError, detect_csv
from tests.procs import run_aiops


def write_series(path: Path, n: int = 2000, spike_at: int | None = 1500) -> Path:
    rng = np.random.default_rng(3)
    t0 = np.datetime64("2026-03-02T00:00:00")
    rows = ["timestamp,value"]
    for i in range(n):
        v = 100 + rng.normal(0, 1)
        if i == spike_at:
            v += 60
        rows.append(f"{t0 + np.timedelta64(i, 'm')}Z,{v:.4f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_detect_series_writes_scores_and_flags(tmp_path: Path) -> None:
    src = write_series(tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    r = run_aiops("detect-series", str(src), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert "2000 points scored with 'default'" in r.stdout
    rows = read_rows(out)
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "anomaly"]
    assert len(rows) == 2000
    assert rows[0]["timestamp"] == "2026-03-02T00:00:00Z"  # input kept as it was
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    flags = np.array([r["anomaly"] == "true" for r in rows])
    assert np.all((scores >= 0) & (scores <= 1))
    assert flags[1500] and scores[1500] >= 0.5
    assert np.array_equal(flags, scores >= 0.5)
    assert flags.sum() == 1


def test_detect_series_with_another_detector_and_missing_values(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        "timestamp,value,host\n"
        "2026-03-02 00:00:00,1.5,a\n"
        "2026-03-02T00:01:00+01:00,,a\n"
        "2026-03-02T00:02:00,2.5,a\n"
    )
    summary = detect_csv(src, tmp_path / "o.csv", "level_shift")
    assert summary.rows == 3 and summary.detector == "level_shift"
    rows = read_rows(tmp_path / "o.csv")
    assert [r["host"] for r in rows] == ["a", "a", "a"]
    assert rows[1]["value"] == "" and rows[1]["anomaly_score"] == "0.0"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,value\n2026-03-02T00:00:00,1\n", "missing column(s) timestamp"),
        ("timestamp,val\n2026-03-02T00:00:00,1\n", "missing column(s) value"),
        ("timestamp,value\n2026-03-02T00:00:00,1\nyesterday,2\n", "row 3: timestamp 'yesterday'"),
        ("timestamp,value\n2026-03-02T00:00:00,1\n2026-03-02T00:01:00,abc\n", "row 3: value 'abc'"),
        ("timestamp,value\n2026-03-02T00:00:00,inf\n", "row 2: value 'inf' is not a finite"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    src = tmp_path / "in.csv"
    src.write_text(content)
    out = tmp_path / "out.csv"
    assert main(["detect-series", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("aiops detect-series: error:")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["in.csv"]  # no temp file


def test_missing_file_and_unknown_detector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.csv"
    assert main(["detect-series", str(tmp_path / "nope.csv"), "--output", str(out)]) == 2
    assert "nope.csv: file not found" in capsys.readouterr().err
    src = write_series(tmp_path / "in.csv", n=10, spike_at=None)
    assert main(["detect-series", str(src), "--output", str(out), "--detector", "zzz"]) == 2
    err = capsys.readouterr().err
    assert "unknown detector 'zzz'; known: default" in err
    assert not out.exists()


def test_a_failed_run_leaves_an_existing_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\nnot-a-time,1\n")
    with pytest.raises(SeriesInputError):
        detect_csv(src, out)
    assert out.read_text() == "old\n"
