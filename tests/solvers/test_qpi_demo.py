"""The phase-imaging demo (`python -m solvers demo --task qpi`) end to end with the bundled priors, short runs."""

from __future__ import annotations

import json

import torch

from solvers.app import cli


def test_qpi_demo_runs_end_to_end(tmp_path):
    from solvers.app.qpi import QPIDemoSettings, run_qpi_demo

    settings = QPIDemoSettings(cvdm_steps=5, ddrm_steps=3, ddgm_steps=4, ddgm_gradient_steps=2)
    rows = run_qpi_demo(settings, tmp_path / "demo", progress=False, log=lambda *a: None)
    assert [r.name.split(" ")[0] for r in rows] == ["Tikhonov", "CDDPM", "CVDM-simple", "CVDM", "DDRM", "DDGM"]
    for name in ("comparison.png", "metrics.md", "metrics.json"):
        assert (tmp_path / "demo" / name).exists()
    summary = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert {m["method"] for m in summary["methods"]} == {r.name for r in rows}
    # scored up to a constant: every estimate has the truth's mean (zero)
    assert all(abs(float(r.estimate.mean())) < 1e-6 * (1 + float(r.estimate.abs().max())) for r in rows)
    assert rows[3].prior_calls == 5 and torch.isfinite(rows[3].estimate).all()


def test_demo_task_option_routes_to_the_qpi_demo(tmp_path, monkeypatch):
    import solvers.app.qpi as qpi

    calls = []
    monkeypatch.setattr(qpi, "run_qpi_demo", lambda settings, output, progress: calls.append((settings, output)))
    assert cli.main(["demo", "--task", "qpi", "--output", str(tmp_path), "--image", "3", "--quiet"]) == 0
    assert calls and calls[0][0].image == 3 and calls[0][1] == tmp_path
