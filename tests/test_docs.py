"""Every setting, command and column a user can meet is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.cli import build_parser
from suite.config import GATEWAY_KEYS, ROUTE_KEYS, WORKER_KEYS
from suite.schema import REQUEST_COLUMN_NAMES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize(
    ("table", "key"),
    [("[[routes]]", k) for k in sorted(ROUTE_KEYS)]
    + [("[gateway]", k) for k in sorted(GATEWAY_KEYS)]
    + [("[worker]", k) for k in sorted(WORKER_KEYS)],
)
def test_every_config_key_is_in_the_reference(table: str, key: str) -> None:
    assert f"| `{table}` `{key}` |" in README


def test_every_subcommand_is_in_the_command_table() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"| `aiops {name}" in README, name


def test_every_requests_column_is_described() -> None:
    for col in REQUEST_COLUMN_NAMES:
        assert f"`{col}`" in README, col


def test_readme_gives_the_two_fresh_machine_commands_and_ci_runs_the_test_one() -> None:
    assert "make demo" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci
