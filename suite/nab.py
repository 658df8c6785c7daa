"""The Numenta Anomaly Benchmark (NAB): run a detector over the corpus and score it NAB's way.

Reproduces numenta/NAB's sweeper, optimiser and normaliser. It must never write into the
corpus (`--nab-dir` is read-only) nor let the labels tune anything but NAB's per-profile threshold.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from suite.errors import AiopsError, ConfigError

PROBATION_FRACTION = 0.15
# NAB caps the probation period at 15% of 5000 rows, however long the file is.
PROBATION_CAP_ROWS = 5000
# The threshold that detects nothing; NAB starts its sweep here.
NOTHING_DETECTED_THRESHOLD = 1.1

DEFAULT_PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0},
}
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass(frozen=True)
class Published:
    """One row of NAB's published scoreboard (standard, low FP, low FN)."""

    detector: str
    standard: float
    reward_low_FP_rate: float
    reward_low_FN_rate: float

    def score(self, profile: str) -> float:
        return float(getattr(self, profile))


# From NAB's README scoreboard (v1.1); numenta's own results/final_results.json rescoring
# of the HTM detector gives 70.1 / 63.1 / 74.3, listed too since that is what we reproduce.
PUBLISHED_SCOREBOARD: tuple[Published, ...] = (
    Published("ARTime", 74.9, 65.1, 80.4),
    Published("Numenta HTM", 70.5, 62.6, 75.2),
    Published("Numenta HTM, NAB's final_results.json", 70.1, 63.1, 74.3),
    Published("CAD OSE", 69.9, 67.0, 73.2),
    Published("windowed Gaussian", 39.6, 20.9, 47.4),
    Published("null", 0.0, 0.0, 0.0),
)


class NabError(ConfigError):
    """The NAB corpus or a results folder is missing or malformed (exit code 2)."""


class DetectorError(AiopsError):
    """A detector returned scores NAB cannot score (wrong length, NaN, outside [0, 1])."""


# -- the corpus ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NabFile:
    """One data file of the corpus with its labelled windows as row-index ranges."""

    relpath: str  # "realKnownCause/nyc_taxi.csv", the key in combined_windows.json
    timestamps: np.ndarray  # datetime64[ns]
    windows: tuple[tuple[int, int], ...]  # inclusive (first row, last row), in time order

    @property
    def category(self) -> str:
        return self.relpath.split("/")[0]

    @property
    def name(self) -> str:
        return self.relpath.split("/")[-1]

    def __len__(self) -> int:
        return len(self.timestamps)

    def labels(self) -> np.ndarray:
        """1 inside a labelled window, 0 elsewhere, as NAB's CorpusLabel writes them."""
        out = np.zeros(len(self), dtype=np.int8)
        for start, end in self.windows:
            out[start : end + 1] = 1
        return out


@dataclass(frozen=True)
class NabCorpus:
    root: Path
    files: tuple[NabFile, ...]
    profiles: dict[str, dict[str, float]]

    @property
    def window_count(self) -> int:
        return sum(len(f.windows) for f in self.files)


def check_nab_dir(nab_dir: str | Path) -> Path:
    """The corpus root, or a NabError that says what is missing and what to pass instead."""
    root = Path(nab_dir).expanduser()
    if not root.is_dir():
        raise NabError(f"--nab-dir {root}: no such directory (pass a checkout of numenta/NAB)")
    for needed in ("data", "labels/combined_windows.json"):
        if not (root / needed).exists():
            raise NabError(
                f"--nab-dir {root}: not a NAB corpus, {needed} is missing "
                "(pass the folder that holds data/ and labels/ of numenta/NAB)"
            )
    return root


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NabError(f"{path}: cannot read JSON: {e}") from e


def load_profiles(root: Path) -> dict[str, dict[str, float]]:
    path = root / "config" / "profiles.json"
    if not path.exists():
        return {k: dict(v) for k, v in DEFAULT_PROFILES.items()}
    raw = _read_json(path)
    try:
        return {
            name: {
                k: float(raw[name]["CostMatrix"][k]) for k in ("tpWeight", "fnWeight", "fpWeight")
            }
            for name in raw
        }
    except (KeyError, TypeError, ValueError) as e:
        raise NabError(
            f"{path}: every profile needs CostMatrix tpWeight/fnWeight/fpWeight ({e})"
        ) from e


def read_timestamps(path: Path) -> np.ndarray:
    import polars as pl

    try:
        df = pl.read_csv(path, columns=["timestamp"], schema_overrides={"timestamp": pl.Utf8})
        ts = df["timestamp"].str.to_datetime(time_unit="ns")
    except (pl.exceptions.PolarsError, OSError) as e:
        raise NabError(f"{path}: cannot read the timestamp column: {e}") from e
    return ts.to_numpy()


def _to_ns(text: str) -> np.datetime64:
    return np.datetime64(text.strip().replace(" ", "T"), "ns")


def window_rows(
    timestamps: np.ndarray, limits: Sequence[Sequence[str]], where: str
) -> tuple[tuple[int, int], ...]:
    """Window limits (timestamps, inclusive) as row ranges: first row >= start, last row <= end.

    NAB matches the limits to rows exactly; the corpus's limits always are row timestamps, so
    this is the same there and still sensible for limits that fall between rows.
    """
    out = []
    for start_text, end_text in limits:
        first = int(np.searchsorted(timestamps, _to_ns(start_text), side="left"))
        last = int(np.searchsorted(timestamps, _to_ns(end_text), side="right")) - 1
        if last < first:
            raise NabError(f"{where}: window {start_text} .. {end_text} holds no row")
        out.append((first, last))
    return tuple(sorted(out))


def load_corpus(nab_dir: str | Path) -> NabCorpus:
    """The 58 data files that have labels, in path order, with windows as row ranges."""
    root = check_nab_dir(nab_dir)
    windows_path = root / "labels" / "combined_windows.json"
    labelled: dict[str, list[list[str]]] = _read_json(windows_path)
    files = []
    for relpath in sorted(labelled):
        path = root / "data" / relpath
        if not path.exists():
            raise NabError(
                f"--nab-dir {root}: data/{relpath} is listed in {windows_path.name} but missing"
            )
        ts = read_timestamps(path)
        files.append(
            NabFile(relpath, ts, window_rows(ts, labelled[relpath], f"{windows_path}: {relpath}"))
        )
    if not files:
        raise NabError(f"{windows_path}: lists no data file")
    return NabCorpus(root, tuple(files), load_profiles(root))


# -- NAB's scoring function ------------------------------------------------------------------
def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's scaledSigmoid: 2*sigmoid(-5x) - 1, and -1 past three window widths.

    x = -1 is the left edge of a window (0.987), 0 its right edge (0), x > 0 after it.
    """
    x = np.asarray(position, dtype=np.float64)
    return np.where(x > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0)


MAX_TP = float(scaled_sigmoid(-1.0))


def probation_rows(n: int, fraction: float = PROBATION_FRACTION) -> int:
    """Rows at the start of a file that are never scored (NAB: min(floor(15% n), 15% of 5000))."""
    return math.ceil(min(math.floor(fraction * n), fraction * PROBATION_CAP_ROWS))


@dataclass(frozen=True)
class FileSweep:
    """Per row of one file: which window it is in (-1 none) and its unweighted NAB value.

    Inside a window the value is scaled_sigmoid of its position, so the earliest row is worth
    most; outside, it is the (negative) scaled_sigmoid of the distance after the previous
    window, relative to that window's width, or -1 where no window precedes it.
    """

    window: np.ndarray  # int64, -1 outside every window
    tp_value: np.ndarray  # unweighted, before dividing by MAX_TP; 0 outside windows
    fp_value: np.ndarray  # unweighted; 0 inside windows
    probation: int


def sweep_file(n: int, windows: Sequence[tuple[int, int]], first_window_id: int = 0) -> FileSweep:
    i = np.arange(n, dtype=np.float64)
    window = np.full(n, -1, dtype=np.int64)
    tp_value = np.zeros(n)
    fp_value = np.full(n, -1.0)  # before the first window: as if far behind one
    for k, (start, end) in enumerate(windows):
        width = end - start + 1
        rows = slice(start, end + 1)
        window[rows] = first_window_id + k
        tp_value[rows] = scaled_sigmoid(-(end - i[rows] + 1) / width)
        fp_value[rows] = 0.0
        after_end = windows[k + 1][0] if k + 1 < len(windows) else n
        after = slice(end + 1, after_end)
        # NAB divides by width - 1, which is 0 for a one-row window; one row then counts as a width.
        fp_value[after] = scaled_sigmoid(np.abs(i[after] - end) / max(width - 1, 1))
    return FileSweep(window, tp_value, fp_value, probation_rows(n))


@dataclass(frozen=True)
class ThresholdCurve:
    """NAB's raw score (and point counts) for every distinct threshold, highest threshold first.

    At threshold t every row with anomaly_score >= t is a detection.
    """

    thresholds: np.ndarray
    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    def best(self) -> int:
        """Index of the best score; on a tie the highest threshold, as NAB's stable sort picks."""
        return int(np.argmax(self.scores))

    def at(self, threshold: float) -> int:
        """Index of the state where exactly the rows scoring >= threshold are detections."""
        # thresholds fall strictly, so the entries >= threshold form a prefix.
        return max(int(np.count_nonzero(self.thresholds >= threshold)) - 1, 0)


@dataclass(frozen=True)
class ScorableRows:
    """All scorable (post-probation) rows of a corpus, concatenated."""

    anomaly_score: np.ndarray
    window: np.ndarray
    tp_value: np.ndarray
    fp_value: np.ndarray
    window_count: int  # windows with at least one scorable row (NAB's FN baseline)


def scorable_rows(files: Sequence[NabFile], scores: Sequence[np.ndarray]) -> ScorableRows:
    parts: list[tuple[np.ndarray, ...]] = []
    next_id = 0
    for f, s in zip(files, scores, strict=True):
        sw = sweep_file(len(f), f.windows, next_id)
        next_id += len(f.windows)
        keep = slice(sw.probation, None)
        parts.append(
            (
                np.asarray(s, dtype=np.float64)[keep],
                sw.window[keep],
                sw.tp_value[keep],
                sw.fp_value[keep],
            )
        )
    score, window, tp_value, fp_value = (np.concatenate(col) for col in zip(*parts, strict=True))
    return ScorableRows(score, window, tp_value, fp_value, len(np.unique(window[window >= 0])))


def threshold_curve(rows: ScorableRows, cost: dict[str, float]) -> ThresholdCurve:
    """Score every distinct threshold in one pass, as NAB's Sweeper.calcScoreByThreshold does.

    Rows are taken by falling anomaly score. A detection outside windows adds its weighted FP
    value; inside a window only the earliest detection counts, so a window's part is the
    running maximum of its detected TP values (from -fnWeight while none is detected).
    """
    tp_w, fp_w, fn_w = cost["tpWeight"], cost["fpWeight"], cost["fnWeight"]
    order = np.argsort(-rows.anomaly_score, kind="stable")
    score = rows.anomaly_score[order]
    window = rows.window[order]
    in_window = window >= 0
    change = np.where(in_window, 0.0, rows.fp_value[order] * fp_w)

    positions = np.flatnonzero(in_window)
    by_window = positions[np.argsort(window[positions], kind="stable")]
    ids = window[by_window]
    tp_value = rows.tp_value[order] * (tp_w / MAX_TP)
    bounds = np.flatnonzero(np.diff(ids)) + 1
    for group in np.split(by_window, bounds) if len(by_window) else []:
        best_so_far = np.maximum.accumulate(tp_value[group])
        change[group] = best_so_far - np.concatenate(([-fn_w], best_so_far[:-1]))

    null = -fn_w * rows.window_count
    running = null + np.cumsum(change)
    tp = np.cumsum(in_window)
    fp = np.cumsum(~in_window)
    # The curve keeps the state after the last row of each distinct score.
    last = np.flatnonzero(np.append(score[1:] != score[:-1], True))
    top = (
        NOTHING_DETECTED_THRESHOLD
        if len(score) == 0
        else max(NOTHING_DETECTED_THRESHOLD, float(score[0]) + 0.1)
    )
    n_in, n_out = int(in_window.sum()), int((~in_window).sum())
    tp_at = np.concatenate(([0], tp[last]))
    fp_at = np.concatenate(([0], fp[last]))
    return ThresholdCurve(
        thresholds=np.concatenate(([top], score[last])),
        scores=np.concatenate(([null], running[last])),
        tp=tp_at,
        fp=fp_at,
        fn=n_in - tp_at,
        tn=n_out - fp_at,
    )


@dataclass(frozen=True)
class ProfileScore:
    profile: str
    score: float  # normalised: 100 * (raw - null) / (perfect - null)
    threshold: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    tn: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score_scores(
    corpus: NabCorpus,
    scores: Sequence[np.ndarray],
    thresholds: dict[str, float] | None = None,
) -> dict[str, ProfileScore]:
    """Optimise the threshold per profile over the whole corpus and normalise, as NAB does.

    With `thresholds` ({profile: threshold}) those profiles are scored at the given threshold
    instead, as NAB's score step does with the thresholds stored in config/thresholds.json.
    """
    rows = scorable_rows(corpus.files, scores)
    out = {}
    for profile in _ordered_profiles(corpus.profiles):
        cost = corpus.profiles[profile]
        curve = threshold_curve(rows, cost)
        fixed = (thresholds or {}).get(profile)
        k = curve.best() if fixed is None else curve.at(fixed)
        null = float(curve.scores[0])
        # NAB's perfect detector catches every labelled window at its first row.
        perfect = cost["tpWeight"] * corpus.window_count
        raw = float(curve.scores[k])
        out[profile] = ProfileScore(
            profile=profile,
            score=100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0,
            threshold=float(curve.thresholds[k]) if fixed is None else float(fixed),
            raw=raw,
            null=null,
            perfect=perfect,
            tp=int(curve.tp[k]),
            fp=int(curve.fp[k]),
            fn=int(curve.fn[k]),
            tn=int(curve.tn[k]),
        )
    return out


def _ordered_profiles(profiles: dict[str, dict[str, float]]) -> list[str]:
    return [p for p in PROFILE_NAMES if p in profiles] + [
        p for p in profiles if p not in PROFILE_NAMES
    ]


# -- results folders -------------------------------------------------------------------------
def result_path(results_dir: Path, detector: str, f: NabFile) -> Path:
    """NAB's layout: <results>/<detector>/<category>/<detector>_<file>.csv."""
    return results_dir / detector / f.category / f"{detector}_{f.name}"


def read_anomaly_scores(path: Path, expected_rows: int) -> np.ndarray:
    import polars as pl

    if not path.exists():
        raise NabError(
            f"{path}: results file missing (run the detector first, or check --detector)"
        )
    try:
        col = pl.read_csv(
            path, columns=["anomaly_score"], schema_overrides={"anomaly_score": pl.Float64}
        )
    except (pl.exceptions.PolarsError, OSError) as e:
        raise NabError(f"{path}: cannot read an anomaly_score column: {e}") from e
    scores = col["anomaly_score"].to_numpy()
    if len(scores) != expected_rows:
        raise NabError(f"{path}: {len(scores)} rows, but the data file has {expected_rows}")
    if np.isnan(scores).any():
        raise NabError(
            f"{path}: anomaly_score has empty or NaN values (row {int(np.argmax(np.isnan(scores))) + 2})"
        )
    return scores


def published_thresholds(nab_dir: str | Path, detector_name: str) -> dict[str, float]:
    """The thresholds NAB's optimiser stored for a published detector (config/thresholds.json)."""
    path = check_nab_dir(nab_dir) / "config" / "thresholds.json"
    if not path.exists():
        raise NabError(f"{path}: missing, so there are no published thresholds")
    stored = _read_json(path)
    if detector_name not in stored:
        known = ", ".join(sorted(stored))
        raise NabError(f"{path}: no thresholds for detector {detector_name!r} (it has: {known})")
    return {p: float(v["threshold"]) for p, v in stored[detector_name].items()}


def score_corpus(
    results_dir: str | Path,
    detector_name: str,
    nab_dir: str | Path,
    thresholds: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Score a NAB-format results folder with every profile: {profile: {score, threshold, ...}}.

    The threshold of each profile is optimised over the corpus unless `thresholds` fixes it.
    """
    corpus = load_corpus(nab_dir)
    results = Path(results_dir).expanduser()
    if not (results / detector_name).is_dir():
        raise NabError(
            f"{results / detector_name}: no results folder for detector {detector_name!r}"
        )
    scores = [
        read_anomaly_scores(result_path(results, detector_name, f), len(f)) for f in corpus.files
    ]
    return {p: s.as_dict() for p, s in score_scores(corpus, scores, thresholds).items()}


# -- running a detector ----------------------------------------------------------------------
class SeriesScorer(Protocol):
    def score_series(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray: ...


SeriesFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
DetectorFactory = Callable[[], SeriesScorer | SeriesFunction]


def detector_factory(name: str) -> DetectorFactory:
    """A factory for a detector of suite.detect's registry, made fresh for every file."""
    try:
        # Imported by name: the registry is optional for scoring published results.
        detect = importlib.import_module("suite.detect")
    except ImportError as e:
        raise NabError(
            f"--detector {name}: the detector registry (suite.detect) is not available: {e}"
        ) from e
    get_detector: Callable[[str], Any] = detect.get_detector
    get_detector(name)  # fail now, with the registry's own message, not after the first file
    return lambda: get_detector(name)


def _scores_of(
    detector: SeriesScorer | SeriesFunction, ts: np.ndarray, values: np.ndarray
) -> np.ndarray:
    if hasattr(detector, "score_series"):
        return np.asarray(detector.score_series(ts, values), dtype=np.float64)
    return np.asarray(detector(ts, values), dtype=np.float64)


def check_scores(scores: np.ndarray, n: int, where: str) -> np.ndarray:
    if scores.shape != (n,):
        raise DetectorError(f"{where}: detector returned {scores.shape} scores for {n} rows")
    if not np.isfinite(scores).all():
        raise DetectorError(f"{where}: detector returned NaN or infinite scores")
    if scores.min() < -1e-9 or scores.max() > 1 + 1e-9:
        raise DetectorError(
            f"{where}: scores must be in [0, 1], got {scores.min():.6g} .. {scores.max():.6g}"
        )
    return np.clip(scores, 0.0, 1.0)


@dataclass
class RunResult:
    detector: str
    results_dir: Path
    files: int
    rows: int
    seconds: float
    scores: list[np.ndarray] = field(default_factory=list, repr=False)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("NAB {task.description:<45}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    ) as bar:
        task = bar.add_task("", total=total)

        def advance(description: str) -> None:
            bar.update(task, advance=1, description=description)

        yield advance


def run_detector_on_corpus(
    detector: str | DetectorFactory,
    nab_dir: str | Path,
    results_dir: str | Path,
    progress: bool = True,
    *,
    name: str | None = None,
) -> RunResult:
    """Run a fresh detector over every corpus file and write NAB-format results files.

    `detector` is a suite.detect registry name, or a factory returning an object with
    `score_series(timestamps, values)` or a plain `(timestamps, values) -> scores` callable.
    Writes <results_dir>/<name>/<category>/<name>_<file>.csv: timestamp,value,anomaly_score,label.
    """
    import polars as pl

    if isinstance(detector, str):
        factory, detector_name = detector_factory(detector), name or detector
    else:
        factory, detector_name = detector, name or str(getattr(detector, "__name__", ""))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", detector_name):
        raise DetectorError(
            f"detector name {detector_name!r} cannot name a results folder; pass name="
        )
    corpus = load_corpus(nab_dir)
    out_root = Path(results_dir).expanduser()
    started = time.perf_counter()
    all_scores: list[np.ndarray] = []
    rows = 0
    with _progress(progress, len(corpus.files)) as advance:
        for f in corpus.files:
            data_path = corpus.root / "data" / f.relpath
            # Text as read, so timestamp and value are written back exactly as NAB has them.
            raw = pl.read_csv(data_path, schema_overrides={"timestamp": pl.Utf8, "value": pl.Utf8})
            values = raw["value"].cast(pl.Float64).to_numpy()
            scores = check_scores(
                _scores_of(factory(), f.timestamps.copy(), values.copy()),
                len(f),
                f"{detector_name} on {f.relpath}",
            )
            out = result_path(out_root, detector_name, f)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            raw.select("timestamp", "value").with_columns(
                pl.Series("anomaly_score", scores), pl.Series("label", f.labels())
            ).write_csv(tmp)
            tmp.replace(out)  # a half-written file must never be scored
            all_scores.append(scores)
            rows += len(f)
            advance(f.relpath)
    return RunResult(
        detector_name, out_root, len(corpus.files), rows, time.perf_counter() - started, all_scores
    )


# -- `aiops bench nab` -------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchResult:
    detector: str
    results_dir: Path
    scores: dict[str, ProfileScore]
    seconds: float  # detection (unless score-only) plus scoring
    ran_detector: bool

    def rows(self) -> list[dict[str, Any]]:
        """One object per profile, for `--json`."""
        return [
            {
                "profile": s.profile,
                "score": s.score,
                "threshold": s.threshold,
                "seconds": self.seconds,
                "detector": self.detector,
                "raw": s.raw,
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
            }
            for s in self.scores.values()
        ]


def bench_nab(
    nab_dir: str | Path,
    detector: str,
    results_dir: str | Path,
    *,
    score_only: bool = False,
    use_published_thresholds: bool = False,
    progress: bool = True,
) -> BenchResult:
    """Run `detector` over the corpus (unless score_only) and score its results folder."""
    check_nab_dir(nab_dir)
    thresholds = published_thresholds(nab_dir, detector) if use_published_thresholds else None
    started = time.perf_counter()
    if not score_only:
        run_detector_on_corpus(detector, nab_dir, results_dir, progress)
    scores = score_corpus(results_dir, detector, nab_dir, thresholds)
    return BenchResult(
        detector=detector,
        results_dir=Path(results_dir).expanduser(),
        scores={p: ProfileScore(**v) for p, v in scores.items()},
        seconds=time.perf_counter() - started,
        ran_detector=not score_only,
    )


def bench_table(result: BenchResult) -> Any:
    """A rich Table: this run's three scores above the published scoreboard rows."""
    from rich.table import Table

    profiles = [p for p in PROFILE_NAMES if p in result.scores]
    what = "run and scored" if result.ran_detector else "scored"
    table = Table(
        title="NAB scores (normalised: null = 0, perfect = 100)",
        caption=f"{result.detector}: {what} in {result.seconds:.1f} s; results in {result.results_dir}",
    )
    table.add_column("detector")
    for p in profiles:
        table.add_column(p, justify="right")
    table.add_column("thresholds", justify="right")
    table.add_row(
        f"[bold]{result.detector} (this run)[/bold]",
        *(f"[bold]{result.scores[p].score:.1f}[/bold]" for p in profiles),
        " / ".join(f"{result.scores[p].threshold:.4g}" for p in profiles),
    )
    table.add_section()
    for row in PUBLISHED_SCOREBOARD:
        table.add_row(f"{row.detector} (published)", *(f"{row.score(p):.1f}" for p in profiles), "")
    return table
