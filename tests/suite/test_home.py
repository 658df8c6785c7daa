from __future__ import annotations

from pathlib import Path

import pytest

from suite.home import resolve_home


def test_precedence_argument_then_env_then_user_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "arg").root == (tmp_path / "arg").resolve()
    assert resolve_home(None).root == (tmp_path / "env").resolve()
    monkeypatch.delenv("AIOPS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert resolve_home(None).root == (tmp_path / "user" / ".aiops").resolve()


def test_layout(tmp_path: Path) -> None:
    h = resolve_home(tmp_path).ensure()
    assert h.db_path == tmp_path / "suite.duckdb"
    for d in (h.spool_dir, h.certs_dir, h.logs_dir, h.run_dir):
        assert d.is_dir()
