"""proxy_addons/caller.py: an x-aiops-caller header becomes the row's `caller` column."""

from __future__ import annotations

from mitmproxy.test import tflow

from proxy_addons.caller import CallerHeader


def test_a_valid_caller_is_recorded_and_an_invalid_one_ignored() -> None:
    addon = CallerHeader()
    flow = tflow.tflow()
    flow.request.headers["x-aiops-caller"] = "claims-portal"
    addon.requestheaders(flow)
    assert flow.metadata["aiops_fields"] == {"caller": "claims-portal"}
    # Passed on unchanged: the upstream may use it too.
    assert flow.request.headers["x-aiops-caller"] == "claims-portal"

    bad = tflow.tflow()
    bad.request.headers["x-aiops-caller"] = "claims portal; drop table"
    addon.requestheaders(bad)
    assert "aiops_fields" not in bad.metadata and addon.invalid == 1

    plain = tflow.tflow()
    addon.requestheaders(plain)
    assert "aiops_fields" not in plain.metadata
