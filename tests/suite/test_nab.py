from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from suite import nab
from suite.cli import main

ROOT = Path(__file__).resolve().parents[2]
NAB_DIR = (ROOT / ".." / "shared" / "nab").resolve()
STANDARD = nab.DEFAULT_PROFILES["standard"]


@pytest.fixture(scope="module")
def nab_dir() -> Path:
    # Beside the project in development and in CI (../shared/nab): a missing corpus is a
    # failure, not a skip, so a green run always means the scorer was checked.
    assert (NAB_DIR / "labels" / "combined_windows.json").exists(), (
        f"the NAB corpus is not at {NAB_DIR}: these tests need ../shared/nab beside the project"
    )
    return NAB_DIR


@pytest.fixture(scope="module")
def final_results(nab_dir: Path) -> dict[str, dict[str, float]]:
    return json.loads((nab_dir / "results" / "final_results.json").read_text())


# -- THE validation: NAB's published results, rescored ---------------------------------------
@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_scoring_published_results_reproduces_final_results(
    nab_dir: Path, final_results: dict[str, dict[str, float]], detector: str
) -> None:
    scores = nab.score_corpus(nab_dir / "results", detector, nab_dir)
    assert set(scores) == set(nab.PROFILE_NAMES)
    for profile, s in scores.items():
        assert s["score"] == pytest.approx(final_results[detector][profile], abs=0.1), profile
        # NAB's null detector: every one of the 116 windows missed.
        assert s["null"] == -116 * nab.DEFAULT_PROFILES[profile]["fnWeight"]
        assert s["perfect"] == 116.0


@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_at_the_published_thresholds_the_scores_match_exactly(
    nab_dir: Path, final_results: dict[str, dict[str, float]], detector: str
) -> None:
    thresholds = nab.published_thresholds(nab_dir, detector)
    scores = nab.score_corpus(nab_dir / "results", detector, nab_dir, thresholds)
    for profile, s in scores.items():
        assert s["score"] == pytest.approx(final_results[detector][profile], abs=1e-6), profile
        assert s["threshold"] == thresholds[profile]


def test_the_sweep_finds_a_threshold_at_least_as_good_as_the_published_one(nab_dir: Path) -> None:
    # NAB's published numenta low-FP threshold came from its older hill-climb; the full sweep
    # must never do worse than any threshold, that one included.
    optimised = nab.score_corpus(nab_dir / "results", "numenta", nab_dir)
    fixed = nab.score_corpus(
        nab_dir / "results", "numenta", nab_dir, nab.published_thresholds(nab_dir, "numenta")
    )
    for profile in nab.PROFILE_NAMES:
        assert optimised[profile]["raw"] >= fixed[profile]["raw"] - 1e-9


def test_corpus_loads_58_files_and_116_windows_matching_the_labels(nab_dir: Path) -> None:
    corpus = nab.load_corpus(nab_dir)
    assert len(corpus.files) == 58
    assert corpus.window_count == 116
    taxi = next(f for f in corpus.files if f.relpath == "realKnownCause/nyc_taxi.csv")
    assert len(taxi) == 10320 and len(taxi.windows) == 5
    # NAB's published label column for the same file agrees row for row.
    import polars as pl

    published = pl.read_csv(nab_dir / "results/numenta/realKnownCause/numenta_nyc_taxi.csv")
    assert np.array_equal(taxi.labels(), published["label"].to_numpy())


# -- the scoring function, piece by piece ---------------------------------------------------
def test_scaled_sigmoid_matches_nab_reference_points() -> None:
    values = nab.scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.5]))
    assert values == pytest.approx([0.98661, 0.84828, 0.0, -0.98661, -1.0], abs=1e-5)


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert nab.probation_rows(1000) == 150
    assert nab.probation_rows(4032) == 604  # floor(604.8)
    assert nab.probation_rows(22695) == 750


def _file(n: int, windows: tuple[tuple[int, int], ...], name: str = "cat/f.csv") -> nab.NabFile:
    ts = np.datetime64("2020-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    return nab.NabFile(name, ts, windows)


def _corpus(*files: nab.NabFile) -> nab.NabCorpus:
    return nab.NabCorpus(Path("."), files, {"standard": STANDARD})


def _raw(corpus: nab.NabCorpus, scores: list[np.ndarray], threshold: float = 0.5) -> float:
    return nab.score_scores(corpus, scores, {"standard": threshold})["standard"].raw


def _detect(n: int, *rows: int) -> np.ndarray:
    s = np.zeros(n)
    s[list(rows)] = 1.0
    return s


# 200 rows: probation is rows 0..29; one window over rows 100..119 (width 20).
ONE = _corpus(_file(200, ((100, 119),)))


def test_detection_at_the_left_edge_of_a_window_earns_the_full_tp_weight() -> None:
    assert _raw(ONE, [_detect(200, 100)]) == pytest.approx(1.0)


def test_later_detections_in_a_window_earn_less_and_only_the_first_counts() -> None:
    mid = _raw(ONE, [_detect(200, 110)])
    right = _raw(ONE, [_detect(200, 119)])
    assert 1.0 > mid > right > 0.0
    assert right == pytest.approx(float(nab.scaled_sigmoid(-1 / 20)) / nab.MAX_TP)
    # A second, later detection in the same window neither adds nor costs anything.
    assert _raw(ONE, [_detect(200, 110, 115, 119)]) == pytest.approx(mid)
    assert _raw(ONE, [_detect(200, 100, 110)]) == pytest.approx(1.0)


def test_a_missed_window_costs_the_fn_weight() -> None:
    assert _raw(ONE, [np.zeros(200)]) == -1.0


def test_false_positives_cost_fp_weight_scaled_by_distance_after_the_previous_window() -> None:
    fp = STANDARD["fpWeight"]
    # Before any window (after probation): the full FP weight.
    assert _raw(ONE, [_detect(200, 50)]) == pytest.approx(-1.0 - fp)
    # Just after the window the cost is small, and grows with distance (width - 1 = 19).
    near = _raw(ONE, [_detect(200, 121)]) + 1.0
    far = _raw(ONE, [_detect(200, 160)]) + 1.0
    assert near == pytest.approx(fp * float(nab.scaled_sigmoid(2 / 19)))
    assert -fp < far < near < 0
    # Three widths or more after it: the full FP weight again.
    assert _raw(ONE, [_detect(200, 119 + 3 * 19 + 1)]) == pytest.approx(-1.0 - fp)


def test_probation_rows_are_never_scored() -> None:
    assert _raw(ONE, [_detect(200, 0, 10, 29)]) == -1.0
    assert _raw(ONE, [_detect(200, 30)]) == pytest.approx(-1.0 - STANDARD["fpWeight"])


def test_null_detector_scores_0_and_a_perfect_one_100() -> None:
    corpus = _corpus(_file(300, ((100, 119), (200, 229))), _file(150, ((60, 70),), "cat/g.csv"))
    null = nab.score_scores(corpus, [np.zeros(300), np.zeros(150)])["standard"]
    assert null.score == 0.0 and null.null == -3.0 and null.perfect == 3.0
    perfect = nab.score_scores(corpus, [_detect(300, 100, 200), _detect(150, 60)])["standard"]
    assert perfect.score == pytest.approx(100.0)
    assert (perfect.tp, perfect.fp) == (3, 0)


def _naive_raw(corpus: nab.NabCorpus, scores: list[np.ndarray], t: float, cost: dict) -> float:
    """NAB's rules written out plainly, one threshold at a time, as the reference."""
    total = 0.0
    for f, s in zip(corpus.files, scores, strict=True):
        first = nab.probation_rows(len(f))
        detected = [i for i in range(first, len(f)) if s[i] >= t]
        for start, end in f.windows:
            if end < first:
                continue  # a window wholly in probation is not scored at all
            hits = [i for i in detected if start <= i <= end]
            if not hits:
                total -= cost["fnWeight"]
            else:
                pos = -(end - hits[0] + 1) / (end - start + 1)
                total += cost["tpWeight"] * float(nab.scaled_sigmoid(pos)) / nab.MAX_TP
        for i in detected:
            if any(start <= i <= end for start, end in f.windows):
                continue
            before = [(start, end) for start, end in f.windows if end < i]
            if not before:
                total -= cost["fpWeight"]
            else:
                start, end = before[-1]
                total += cost["fpWeight"] * float(nab.scaled_sigmoid((i - end) / (end - start)))
    return total


@pytest.mark.parametrize("profile", nab.PROFILE_NAMES)
def test_the_one_pass_sweep_equals_naive_scoring_at_every_threshold(profile: str) -> None:
    rng = np.random.default_rng(7)
    corpus = nab.NabCorpus(
        Path("."),
        (
            _file(400, ((20, 40), (150, 180), (300, 310))),  # first window inside probation
            _file(250, ((100, 130),), "cat/g.csv"),
            _file(120, (), "cat/none.csv"),
        ),
        {profile: nab.DEFAULT_PROFILES[profile]},
    )
    # Rounded so that many rows share a score, as real detectors' outputs do.
    scores = [np.round(rng.random(len(f)) ** 3, 2) for f in corpus.files]
    curve = nab.threshold_curve(nab.scorable_rows(corpus.files, scores), corpus.profiles[profile])
    assert np.all(np.diff(curve.thresholds) < 0)
    # Nothing detected: the three windows after probation are missed (the first is in it).
    assert curve.scores[0] == -3 * nab.DEFAULT_PROFILES[profile]["fnWeight"]
    for t, raw in zip(curve.thresholds, curve.scores, strict=True):
        expected = _naive_raw(corpus, scores, float(t), corpus.profiles[profile])
        assert raw == pytest.approx(expected, abs=1e-9), t
    best = curve.best()
    assert curve.scores[best] == curve.scores.max()


# -- running a detector ---------------------------------------------------------------------
def _mini_corpus(root: Path) -> Path:
    """A two-file corpus in NAB's layout: enough to exercise the runner quickly."""
    rng = np.random.default_rng(3)
    windows: dict[str, list[list[str]]] = {}
    for relpath, n, spike in (("catA/one.csv", 300, 200), ("catB/two.csv", 240, None)):
        ts = np.datetime64("2021-03-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
        values = rng.normal(10, 1, n).round(3)
        if spike is not None:
            values[spike] = 60.0
        text = [str(t).replace("T", " ") for t in ts.astype("datetime64[s]")]
        path = root / "data" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in zip(text, values, strict=True))
        )
        windows[relpath] = [] if spike is None else [[text[190] + ".000000", text[210] + ".000000"]]
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def jump_detector(timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Causal: how far each value is from the previous one, squashed into [0, 1]."""
    jumps = np.abs(np.diff(values, prepend=values[0]))
    return 1.0 - np.exp(-jumps / 10.0)


def test_runner_writes_nab_results_that_score_like_the_in_memory_scores(tmp_path: Path) -> None:
    corpus_dir = _mini_corpus(tmp_path / "nab")
    run = nab.run_detector_on_corpus(
        lambda: jump_detector, corpus_dir, tmp_path / "out", progress=False, name="jump"
    )
    assert (run.files, run.rows) == (2, 540)
    import polars as pl

    one = pl.read_csv(tmp_path / "out/jump/catA/jump_one.csv")
    assert one.columns == ["timestamp", "value", "anomaly_score", "label"]
    assert one["timestamp"][0] == "2021-03-01 00:00:00"
    assert one["label"].sum() == 21 and one["label"][190] == 1 and one["label"][189] == 0
    assert one["value"][200] == 60.0
    assert (tmp_path / "out/jump/catB/jump_two.csv").exists()

    from_files = nab.score_corpus(tmp_path / "out", "jump", corpus_dir)
    in_memory = nab.score_scores(nab.load_corpus(corpus_dir), run.scores)
    for profile in nab.PROFILE_NAMES:
        assert from_files[profile]["score"] == in_memory[profile].score
    # The jump up (row 200, 11 rows into a 21-row window) and back down (row 201) are the
    # detections, no FP; NAB counts both points as TP but scores only the first.
    std = from_files["standard"]
    assert (std["tp"], std["fp"]) == (2, 0)
    assert std["raw"] == pytest.approx(
        float(nab.scaled_sigmoid(-(210 - 200 + 1) / 21)) / nab.MAX_TP
    )


def test_an_oracle_detector_run_over_the_real_corpus_scores_100(
    nab_dir: Path, tmp_path: Path
) -> None:
    labelled = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    # Files share timestamps, so the oracle for each file knows only that file's windows;
    # the runner makes one detector per file, in path order.
    per_file = iter(
        np.array([np.datetime64(w[0].replace(" ", "T"), "ns") for w in labelled[k]])
        for k in sorted(labelled)
    )

    def oracle_factory() -> nab.SeriesFunction:
        starts = next(per_file)
        return lambda timestamps, values: np.isin(timestamps, starts).astype(float)

    run = nab.run_detector_on_corpus(oracle_factory, nab_dir, tmp_path, progress=False, name="o")
    assert (run.files, run.rows) == (58, 365558)
    scores = nab.score_corpus(tmp_path, "o", nab_dir)
    for profile in nab.PROFILE_NAMES:
        assert scores[profile]["score"] == pytest.approx(100.0)
        assert (scores[profile]["tp"], scores[profile]["fp"]) == (116, 0)


def test_a_detector_needs_a_name_that_can_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(nab.DetectorError, match="pass name="):
        nab.run_detector_on_corpus(lambda: jump_detector, _mini_corpus(tmp_path), tmp_path, False)


def test_every_file_gets_a_fresh_detector(tmp_path: Path) -> None:
    made: list[object] = []

    class Counting:
        def __init__(self) -> None:
            self.calls = 0
            made.append(self)

        def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
            self.calls += 1
            assert timestamps.dtype == np.dtype("datetime64[ns]") and values.dtype == np.float64
            return np.zeros(len(values))

    nab.run_detector_on_corpus(
        Counting, _mini_corpus(tmp_path / "nab"), tmp_path / "o", progress=False, name="c"
    )
    assert [m.calls for m in made] == [1, 1]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda ts, v: np.zeros(len(v) - 1), "scores for"),
        (lambda ts, v: np.full(len(v), np.nan), "NaN"),
        (lambda ts, v: np.full(len(v), 3.0), r"in \[0, 1\]"),
    ],
)
def test_bad_detector_output_is_a_clear_error(tmp_path: Path, bad: object, message: str) -> None:
    with pytest.raises(nab.DetectorError, match=message):
        nab.run_detector_on_corpus(
            lambda: bad,  # type: ignore[arg-type, return-value]
            _mini_corpus(tmp_path / "nab"),
            tmp_path / "o",
            progress=False,
            name="bad",
        )


def test_missing_results_file_names_the_file(tmp_path: Path) -> None:
    corpus_dir = _mini_corpus(tmp_path / "nab")
    nab.run_detector_on_corpus(lambda: jump_detector, corpus_dir, tmp_path / "o", False, name="j")
    (tmp_path / "o/j/catB/j_two.csv").unlink()
    with pytest.raises(nab.NabError, match="j_two.csv: results file missing"):
        nab.score_corpus(tmp_path / "o", "j", corpus_dir)


def test_the_registry_detector_runs_by_name_when_it_exists(tmp_path: Path) -> None:
    run = nab.run_detector_on_corpus(
        "default", _mini_corpus(tmp_path / "nab"), tmp_path / "o", progress=False
    )
    assert run.files == 2 and (tmp_path / "o/default/catA/default_one.csv").exists()


# -- the command line -----------------------------------------------------------------------
def test_cli_score_only_json_reproduces_numenta(
    nab_dir: Path, final_results: dict[str, dict[str, float]]
) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "suite.cli", "bench", "nab", "--nab-dir", str(nab_dir),
         "--results-dir", str(nab_dir / "results"), "--detector", "numenta", "--score-only",
         "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["profile"] for row in rows] == list(nab.PROFILE_NAMES)
    for row in rows:
        assert set(row) >= {"profile", "score", "threshold", "seconds"}
        assert row["score"] == pytest.approx(final_results["numenta"][row["profile"]], abs=0.1)
        assert row["seconds"] > 0


def test_cli_table_shows_this_run_beside_the_scoreboard(
    nab_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "nab", "--nab-dir", str(nab_dir), "--results-dir", str(nab_dir / "results")]
    assert main([*argv, "--detector", "windowedGaussian", "--score-only"]) == 0
    out = capsys.readouterr().out
    assert "windowedGaussian (this run)" in out and "39.6" in out
    assert "ARTime (published)" in out and "74.9" in out and "null (published)" in out


def test_cli_runs_a_detector_and_writes_to_the_default_results_dir(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus_dir = _mini_corpus(tmp_path / "nab")
    assert main(["bench", "nab", "--nab-dir", str(corpus_dir), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert (home / "nab_results" / "default" / "catA" / "default_one.csv").exists()


@pytest.mark.parametrize("what", ["missing", "not-a-corpus"])
def test_cli_bad_nab_dir_exits_2_with_a_clear_message(tmp_path: Path, what: str) -> None:
    bad = tmp_path / "nope" if what == "missing" else tmp_path
    r = subprocess.run(
        [sys.executable, "-m", "suite.cli", "bench", "nab", "--nab-dir", str(bad), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stdout == ""
    assert f"--nab-dir {bad}" in r.stderr and "Traceback" not in r.stderr


def test_cli_score_only_without_results_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus_dir = _mini_corpus(tmp_path / "nab")
    argv = ["bench", "nab", "--nab-dir", str(corpus_dir), "--results-dir", str(tmp_path / "empty")]
    assert main([*argv, "--detector", "nothing", "--score-only"]) == 2
    assert "no results folder for detector 'nothing'" in capsys.readouterr().err
