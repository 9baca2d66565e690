"""Notebook display of releases: each cell with its interval drawn, the cost and the
audit record; an explanation with its noise scales and widths; an extract's summary."""

from __future__ import annotations

import re

import pets


def _session(tmp_path):
    h = pets.Holder(tmp_path)
    h.register("adult", pets.example_data("adult"), pets.example_policy("adult"))
    h.grant("alice", dataset="adult", purpose="p", epsilon=3.0)
    return h.session("alice", purpose="p")


def test_release_html_draws_each_cells_interval(tmp_path) -> None:
    s = _session(tmp_path)
    r = s.release(s.table("adult").group_by("sex").agg(n=pets.count()), pets.DP(epsilon=0.5))
    html = r._repr_html_()
    ci = r.ci(0.95)
    svgs = re.findall(r'<svg[^>]*aria-label="([^"]+)"', html)
    assert len(svgs) == len(ci) == 2
    for (_, row), label in zip(ci.iterrows(), svgs):
        assert label == f"{row['value']:.6g} (95% CI {row['lower']:.6g} to {row['upper']:.6g})"
    assert f"audit record {r.audit_id}" in html and "spent ε=0.5" in html
    assert f"<td>{r.scale['n']:.6g}</td>" in html
    assert "<script" not in html


def test_explanation_and_refusal_html(tmp_path) -> None:
    s = _session(tmp_path)
    q = s.table("adult").group_by("sex").agg(n=pets.count())
    e = s.explain(q, pets.DP(epsilon=0.5))
    html = e._repr_html_()
    assert "allowed" in html and "nothing spent" in html
    assert f"{e.ci_width['n']:.6g}" in html and html.count("<svg") == 1
    bad = s.explain(s.table("adult").group_by("fnlwgt").agg(n=pets.count()), pets.DP(epsilon=0.5))
    assert "refused" in bad._repr_html_() and "negative_list" in bad._repr_html_()


def test_extract_html(tmp_path) -> None:
    s = _session(tmp_path)
    x = s.release(s.table("adult").select("age", "sex", "education"), pets.KAnonymity(k=5))
    html = x._repr_html_()
    assert f"{len(x.df)} rows" in html and f"audit record {x.audit_id}" in html
    body = html.split("<tbody>")[1]
    assert body.count("<tr>") == min(len(x.df), 50)
