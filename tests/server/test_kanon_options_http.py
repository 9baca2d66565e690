"""The search options of a k-anonymous extract over HTTP (``pets.connect``): a real
``pets serve`` on loopback over a home whose policy bounds them in ``[kanon]``. The
extract and the refusals are those of the in-process session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import pets

from .conftest import PURPOSE, start, stop

QIS = ["age", "sex", "race", "marital-status"]

pytestmark = pytest.mark.filterwarnings("ignore::pets.registration.RegistrationWarning")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("kanon-options")
    df = pd.read_csv(pets.example_data("adult"), dtype=str, skipinitialspace=True,
                     keep_default_na=False).head(3000)
    df.to_csv(d / "adult.csv", index=False)
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["kanon"] = {"search": ["optimal", "heuristic"], "recoding": ["global", "cells"], "max_nodes": 60}
    pol["dataset"]["max_extracts"] = 20
    h = pets.Holder(d / "home")
    h.register("adult", d / "adult.csv", pol)
    h.grant("alice", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    key = h.issue_key("alice")
    srv = start(d / "home")
    try:
        yield srv, key, h
    finally:
        stop(srv)


def test_cells_extract_and_refusals_over_http(served) -> None:
    srv, key, h = served
    r = pets.connect(srv.url, api_key=key, purpose=PURPOSE)
    local = h.session("alice", purpose=PURPOSE)
    q = pets.Query("adult").select(*QIS)
    x = r.release(q, pets.KAnonymity(k=5, recoding="cells"))
    assert x.transformation == "cells" and x.df[QIS].astype(str).value_counts().min() >= 5
    y = local.release(q, pets.KAnonymity(k=5, recoding="cells"))
    # the same rows, the same cells suppressed (each in its own random order)
    srt = [d.astype(str).sort_values(list(d.columns)).reset_index(drop=True) for d in (x.df, y.df)]
    assert srt[0].equals(srt[1])
    b = r.release(q, pets.KAnonymity(k=5, search="heuristic", max_nodes=60, max_suppression=0.05))
    c = local.release(q, pets.KAnonymity(k=5, search="heuristic", max_nodes=60, max_suppression=0.05))
    assert b.transformation == c.transformation
    for prot in (pets.KAnonymity(k=5, recoding="local"), pets.KAnonymity(k=5, search="auto"),
                 pets.KAnonymity(k=5, search="heuristic", max_nodes=61)):
        with pytest.raises(pets.PolicyError) as remote:
            r.release(q, prot)
        with pytest.raises(pets.PolicyError) as here:
            local.release(q, prot)
        assert str(remote.value) == str(here.value) and remote.value.rule == here.value.rule
    with pytest.raises(pets.QueryError, match=r"KAnonymity\(recoding=...\) must be one of"):
        pets.KAnonymity(k=5, recoding="cell")
