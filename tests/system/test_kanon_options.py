"""The search options of a governed extract (``pets.KAnonymity(gs_factor, aggregation,
search, max_nodes, recoding, t_distance)``) and the policy's ``[kanon]`` keys that bound
them: through the session and the CLI (an extract has no SQL form: SQL text is aggregated under DP), on the bundled Adult data under
its example policy. A choice outside the policy is refused before any data is read
(nothing counted); cell suppression releases classes of >= k rows by label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pets
from pets.anon.policy import KanonPolicy
from pets.errors import PolicyFormatError

QIS = ["age", "sex", "race", "marital-status"]
PURPOSE = "research"

pytestmark = pytest.mark.filterwarnings("ignore::pets.registration.RegistrationWarning")


def _home(tmp_path: Path, kanon: dict[str, Any] | None = None, rows: int = 5000) -> pets.Holder:
    tmp_path.mkdir(parents=True, exist_ok=True)
    df = pd.read_csv(pets.example_data("adult"), dtype=str, skipinitialspace=True,
                     keep_default_na=False).head(rows)
    data = tmp_path / "adult.csv"
    df.to_csv(data, index=False)
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    if kanon:
        pol["kanon"] = kanon
    pol["dataset"]["max_extracts"] = 20
    h = pets.Holder(tmp_path / "home")
    h.register("adult", data, pol)
    h.grant("alice", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    return h


def _q(s: pets.Session, *cols: str):
    return s.table("adult").select(*(cols or QIS))


def test_policy_section_parses_and_round_trips() -> None:
    k = KanonPolicy.from_dict({"search": ["optimal", "heuristic"], "recoding": "global",
                               "gs_factor": [0.3, 0.7], "max_nodes": 500,
                               "aggregation": ["geometric"], "t_distance": ["ordered", "equal"]})
    assert k.search == ("optimal", "heuristic") and k.recoding == ("global",)
    assert k.gs_factor == (0.3, 0.7) and not k.active
    assert KanonPolicy.from_dict(k.to_dict()) == k
    assert k.to_dict()["recoding"] == "global" and KanonPolicy.from_dict({"gs_factor": 0.2}).to_dict() == {"gs_factor": 0.2}
    cells = KanonPolicy.from_dict({"recoding": ["cells", "global"], "search": "heuristic", "max_nodes": 70})
    assert cells.options(pets.KAnonymity(k=5)) == {"recoding": "cells"}
    assert cells.options(pets.KAnonymity(k=5, recoding="global")) == {
        "recoding": "global", "search": "heuristic", "max_nodes": 70}
    with pytest.raises(pets.PolicyError, match="recoding default 'cells', which searches none") as e:
        cells.options(pets.KAnonymity(k=5, search="heuristic"))
    assert e.value.rule == "kanon.recoding"
    for bad, key in [({"search": "fast"}, "kanon.search"), ({"search": []}, "kanon.search"),
                     ({"recoding": ["global", "cell"]}, "kanon.recoding"),
                     ({"gs_factor": [0.8, 0.2]}, "kanon.gs_factor"), ({"gs_factor": 2}, "kanon.gs_factor"),
                     ({"max_nodes": 0}, "kanon.max_nodes"), ({"max_nodes": True}, "kanon.max_nodes"),
                     ({"t_distance": "emd"}, "kanon.t_distance"), ({"time_limit": 3}, "kanon.time_limit")]:
        with pytest.raises(PolicyFormatError) as e:
            KanonPolicy.from_dict(bad)
        assert e.value.key == key, (bad, e.value)


def test_choices_outside_the_policy_are_refused_before_counting(tmp_path: Path) -> None:
    h = _home(tmp_path, {"search": ["optimal"], "recoding": ["global", "cells"], "gs_factor": [0.3, 0.7],
                         "aggregation": "geometric", "max_nodes": 100, "t_distance": ["ordered"]})
    s = h.session("alice", purpose=PURPOSE)
    cases = [
        (dict(search="heuristic"), "kanon.search", "search='heuristic' is not allowed by the policy's [kanon] search"),
        (dict(recoding="local"), "kanon.recoding", "recoding='local' is not allowed by the policy's [kanon] recoding"),
        (dict(gs_factor=0.9), "kanon.gs_factor", "gs_factor=0.9 is outside the policy's [kanon] gs_factor [0.3, 0.7]"),
        (dict(aggregation="max"), "kanon.aggregation", "aggregation='max' is not allowed"),
        (dict(search="optimal", max_nodes=50), "kanon.max_nodes", "max_nodes bounds the heuristic search"),
        (dict(t=0.5, sensitive="relationship", t_distance="equal"), "kanon.t_distance",
         "t_distance='equal' is not allowed"),
    ]
    for kw, rule, msg in cases:
        cols = QIS + (["relationship"] if "sensitive" in kw else [])
        with pytest.raises(pets.PolicyError) as e:
            s.release(_q(s, *cols), pets.KAnonymity(k=5, max_suppression=0.1, **kw))
        assert e.value.rule == rule and msg in str(e.value), (kw, e.value)
        ex = s.explain(_q(s, *cols), pets.KAnonymity(k=5, max_suppression=0.1, **kw))
        assert not ex.allowed and ex.rule == rule and msg in str(ex.message), ex
    assert not [r for r in h.audit().records() if r["status"] == "released"]
    x = s.release(_q(s), pets.KAnonymity(k=5, max_suppression=0.1))
    assert x.extracts_left == 19  # the refusals counted nothing
    # the policy's defaults applied: the gs-factor at 0.5 within [0.3, 0.7]
    rec = [r for r in h.audit().records() if r["status"] == "released"][-1]
    assert "0.5" in json.dumps(rec)


def test_cell_suppression_extract(tmp_path: Path) -> None:
    h = _home(tmp_path, {"recoding": ["global", "cells"]})
    s = h.session("alice", purpose=PURPOSE)
    x = s.release(_q(s, *QIS, "workclass"), pets.KAnonymity(k=5, recoding="cells"))
    assert x.transformation == "cells" and x.suppressed == 0 and len(x.df) == 5000
    assert x.df[QIS].astype(str).value_counts().min() >= 5
    stars = int((x.df[QIS] == "*").to_numpy().sum())
    assert x.metrics["cells_suppressed"] == stars > 0
    # workclass is not a quasi-identifier: released unchanged
    assert "*" not in set(x.df["workclass"])
    e = s.explain(_q(s), pets.KAnonymity(k=5, recoding="cells"))
    assert set(e.details["treatment"]) == {"suppressed cells"}


def test_heuristic_extract_is_deterministic_under_a_node_budget(tmp_path: Path) -> None:
    h = _home(tmp_path, {"search": "heuristic", "max_nodes": 30})
    s = h.session("alice", purpose=PURPOSE)
    xs = [s.release(_q(s), pets.KAnonymity(k=5, max_suppression=0.05)) for _ in range(2)]
    assert xs[0].transformation == xs[1].transformation
    # the same rows (each extract leaves in its own random order: pets.anon.order)
    srt = [x.df.sort_values(list(x.df.columns)).reset_index(drop=True) for x in xs]
    assert srt[0].equals(srt[1])
    with pytest.raises(pets.PolicyError, match="max_nodes=31 is above the policy's"):
        s.release(_q(s), pets.KAnonymity(k=5, max_nodes=31))
    with pytest.raises(pets.PolicyError, match="not allowed by the policy's \\[kanon\\] search"):
        s.release(_q(s), pets.KAnonymity(k=5, search="optimal"))


def test_options_without_a_section_and_t_distance(tmp_path: Path) -> None:
    h = _home(tmp_path)
    s = h.session("alice", purpose=PURPOSE)
    x = s.release(_q(s), pets.KAnonymity(k=5, max_suppression=0.05, metric="entropy", gs_factor=0.2,
                                         aggregation="arithmetic", search="auto"))
    assert x.df[QIS].astype(str).value_counts().min() >= 5
    # relationship has no hierarchy in the policy: the hierarchical distance is refused up front
    with pytest.raises(pets.PolicyError, match="t_distance='hierarchical' needs a hierarchy") as e:
        s.release(_q(s, *QIS, "relationship"),
                  pets.KAnonymity(k=5, t=0.3, sensitive="relationship", t_distance="hierarchical"))
    assert e.value.rule == "hierarchy"
    y = s.release(_q(s, *QIS, "relationship"),
                  pets.KAnonymity(k=5, t=0.5, sensitive="relationship", t_distance="equal",
                                  max_suppression=0.1))
    assert any("closeness" in m for m in y.models)
    with pytest.raises(pets.QueryError, match="aggregation=...\\) applies only to the per-quasi"):
        pets.KAnonymity(k=5, metric="discernibility", aggregation="sum")


def test_cli_extract_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pets.cli import main

    h = _home(tmp_path, {"search": ["optimal", "heuristic"], "max_nodes": 40})
    out = tmp_path / "x.csv"
    args = ["extract", "adult", "--home", str(tmp_path / "home"), "--analyst", "alice", "--purpose", PURPOSE,
            "--columns", ",".join(QIS), "--k", "5"]
    assert main(args + ["--recoding", "cells", "-o", str(out)]) == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert df[QIS].value_counts().min() >= 5 and (df[QIS] == "*").to_numpy().any()
    assert main(args + ["--search", "heuristic", "--max-nodes", "40", "--gs-factor", "0.3",
                        "--aggregation", "arithmetic", "--max-suppression", "0.05", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(args + ["--search", "heuristic", "--max-nodes", "41", "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "max_nodes=41 is above the policy's [kanon] max_nodes of 40" in err


def test_cli_extract_bad_flags_in_cli_terms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pets.cli import main

    _home(tmp_path, rows=500)
    args = ["extract", "adult", "--home", str(tmp_path / "home"), "--analyst", "alice", "--purpose", PURPOSE,
            "--columns", ",".join(QIS), "--k", "5", "-o", str(tmp_path / "x.csv")]
    for extra, words in [(["--algorithm", "mondrian", "--recoding", "local"], "--recoding applies to --algorithm optimal"),
                         (["--recoding", "cells", "--search", "heuristic"], "--recoding cells searches no lattice"),
                         (["--t-distance", "equal"], "--t-distance needs --t"),
                         (["--metric", "discernibility", "--aggregation", "sum"], "--aggregation applies only to"),
                         (["--recoding", "cell"], "--recoding")]:
        capsys.readouterr()
        assert main(args + extra) != 0
        assert words in capsys.readouterr().err, extra
    assert not (tmp_path / "x.csv").exists()
