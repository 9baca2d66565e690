"""Bounding a Parquet file read in place from ordinals stored beside it (a sidecar in the
home, read with POSITIONAL JOIN): the bound holds person by person, the released counts
equal the window functions' where the bound does not bind, and a changed or missing file
invalidates the sidecar (never misaligned ordinals).

Same data as tests/system/test_bounding_ordinals.py: every person has groups of their
own, so the exact per-group counts show what the bounding kept for each person.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import pets
from pets.engines.base import Measure
from pets.engines.duckdb import _fitting_ordinals

from .test_bounding_ordinals import DATA, HUGE, IN_KEYS, KEYS, NG, NR, PEOPLE, PURPOSE, _policy, _request

ORDER = ["pid", "g", "v"]


def _write(df: pd.DataFrame, path: Path) -> None:
    duckdb.from_df(df).write_parquet(str(path))  # (pandas would need pyarrow)


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> pets.Holder:
    tmp = tmp_path_factory.mktemp("sidecar")
    h = pets.Holder(tmp / "home")
    _write(DATA, tmp / "people.parquet")
    shutil.copy(tmp / "people.parquet", tmp / "people-windows.parquet")
    h.register("side", tmp / "people.parquet", _policy())
    h.register("windows", tmp / "people-windows.parquet", _policy())
    Path(h._store.get_dataset("windows")["source"]["sidecar"]).unlink()  # the fallback
    h._cache.clear()
    for name in ("side", "windows"):
        h.grant("ann", dataset=name, purpose=PURPOSE, epsilon=1e9)
    return h


def _record_sql(h: pets.Holder) -> list[str]:
    """The list the holder's engine appends every SQL text it runs to, from now on."""
    sent: list[str] = []
    cursor = h._engine._cursor

    def spy() -> object:
        cur = cursor()

        class Spy:
            def __getattr__(self, k: str) -> object:
                return getattr(cur, k)

            def execute(self, sql: str, params: object = None) -> object:
                sent.append(sql)
                return cur.execute(sql, params or [])
        return Spy()

    h._engine._cursor = spy  # type: ignore[method-assign]
    return sent


def _groups_kept(got: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    n = got["n"].reindex(KEYS, fill_value=0)
    kept = n[n > 0]
    owner = kept.index.str.slice(1, 3).map(lambda i: f"P{i}")
    return pd.Series(1, index=owner).groupby(level=0).sum(), kept


def test_an_in_place_parquet_with_a_privacy_unit_gets_a_sidecar_in_the_home(holder: pets.Holder) -> None:
    src = holder._dataset("side").source
    assert src.path.endswith("people.parquet") and src.kind == "parquet"  # still read in place
    side = Path(src.sidecar)
    assert side.is_file() and side.parent == holder.home / "data" / "ordinals"
    rec = holder._store.get_dataset("side")
    assert rec["sha256"][:32] in side.name  # named by the digest of the bytes it belongs to
    assert {(o.unit, o.column) for o in src.ordinals} == {("pid", None), ("pid", "g")}
    # one row per source row, only hidden ordinal columns
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{side}')").fetchone()[0] == len(DATA)
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{side}')").fetchall()]
    # hidden columns only: the ordinals and the bounded column pre-encoded for sums
    assert "__pets_fx__v" in cols and all(c.startswith(("__pets_bd__", "__pets_fx__")) for c in cols)
    assert src.encoded and src.encoded[0][0] == "v"
    assert _fitting_ordinals(src, _request(True, 3, 2, 1)) is not None
    assert holder._dataset("windows").source.ordinals == ()


@pytest.mark.parametrize("max_groups, max_rows", [(1, 1), (3, 2), (8, 6)])
def test_each_person_keeps_min_groups_and_min_rows_through_the_sidecar(
        holder: pets.Holder, max_groups: int, max_rows: int) -> None:
    for seed in (1, 2**62 + 12345, 2**63 - 1):
        got = holder._engine.aggregate(holder._dataset("side").source,
                                       _request(True, max_groups, max_rows, seed)).set_index("g")
        assert "zz" not in got.index
        groups, kept = _groups_kept(got)
        assert groups.reindex(NG.index, fill_value=0).to_dict() == NG.clip(upper=max_groups).to_dict()
        cap = NR.clip(upper=max_rows).droplevel("pid")
        assert (kept == cap[kept.index]).all()


def test_without_grouping_each_person_keeps_min_rows_through_the_sidecar(holder: pets.Holder) -> None:
    per_person = PEOPLE.groupby("pid").size()
    for max_rows in (1, 4, 100):
        got = holder._engine.aggregate(holder._dataset("side").source, _request(False, 3, max_rows, 7))
        assert int(got["n"].iloc[0]) == int(per_person.clip(upper=max_rows).sum())


def test_the_sidecar_and_the_windows_give_the_same_exact_answer_where_the_bound_does_not_bind(
        holder: pets.Holder) -> None:
    """Bounds above every person's groups and rows: both paths keep every in-key row of
    every person, so counts and sums are equal (and equal to pandas')."""
    req = _request(True, 8, 6, 12345)
    a = holder._engine.aggregate(holder._dataset("side").source, req).set_index("g").sort_index()
    b = holder._engine.aggregate(holder._dataset("windows").source, req).set_index("g").sort_index()
    pd.testing.assert_frame_equal(a, b)
    want = PEOPLE[PEOPLE["g"] != "zz"].groupby("g")["v"].agg(["size", "sum"])
    assert a["n"].to_dict() == want["size"].to_dict() and a["s"].to_dict() == want["sum"].to_dict()


def test_a_release_through_the_session_is_bounded_by_the_sidecar(holder: pets.Holder) -> None:
    s = holder.session("ann", purpose=PURPOSE)
    r = s.release(s.table("side").group_by("g").agg(n=pets.count()), pets.DP(epsilon=HUGE))
    n = r.df.set_index("g")["n"].round().astype(int)
    kept = n[n > 0]
    assert int(len(kept)) == int(NG.clip(upper=3).sum())
    assert kept.to_dict() == NR.clip(upper=2).droplevel("pid")[kept.index].to_dict()
    assert r.scale["n"] == pytest.approx(3 * 2 / HUGE)


def test_a_changed_file_is_refused_and_re_registration_replaces_the_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "people.parquet"
    _write(DATA, path)
    h = pets.Holder(tmp_path / "home")
    h.register("d", path, _policy())
    h.grant("ann", dataset="d", purpose=PURPOSE, epsilon=1e9)
    s = h.session("ann", purpose=PURPOSE)
    first = Path(h._dataset("d").source.sidecar)
    # other rows, in another order: the old ordinals would misalign
    changed = DATA[DATA["pid"].isin(["P00", "P01", "P02"])].iloc[::-1]
    _write(changed, path)
    with pytest.raises(pets.DataError, match="has changed since it was registered"):
        s.release(s.table("d").group_by("g").agg(n=pets.count()), pets.DP(epsilon=HUGE))
    h.register("d", path, _policy(), replace=True)
    second = Path(h._dataset("d").source.sidecar)
    assert second != first and second.is_file() and not first.exists()
    r = s.release(s.table("d").group_by("g").agg(n=pets.count()), pets.DP(epsilon=HUGE * 1.000001))
    n = r.df.set_index("g")["n"].round().astype(int)
    own = changed[(changed["g"] != "zz") & changed["pid"].notna()]
    want = own.groupby(["pid", "g"]).size().clip(upper=2)
    kept = n[n > 0]
    assert int(len(kept)) == int(own.groupby("pid")["g"].nunique().clip(upper=3).sum())
    assert kept.to_dict() == want.droplevel("pid")[kept.index].to_dict()


def test_a_touched_but_equal_file_keeps_its_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "people.parquet"
    _write(DATA, path)
    h = pets.Holder(tmp_path / "home")
    h.register("d", path, _policy())
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, new mtime
    h._cache.clear()
    assert Path(h._dataset("d").source.sidecar).is_file()
    assert h._dataset("d").source.ordinals


def test_a_missing_sidecar_falls_back_to_windows_with_the_same_bound(tmp_path: Path) -> None:
    path = tmp_path / "people.parquet"
    _write(DATA, path)
    h = pets.Holder(tmp_path / "home")
    h.register("d", path, _policy())
    src = h._dataset("d").source
    Path(src.sidecar).unlink()
    # the cached dataset still names it: the engine sees it is gone and uses windows
    got = h._engine.aggregate(src, _request(True, 3, 2, 99)).set_index("g")
    groups, _ = _groups_kept(got)
    assert groups.reindex(NG.index, fill_value=0).to_dict() == NG.clip(upper=3).to_dict()
    h._cache.clear()
    assert h._dataset("d").source.ordinals == () and h._dataset("d").source.sidecar == ""


def test_no_sidecar_without_a_privacy_unit_or_for_a_csv(tmp_path: Path) -> None:
    h = pets.Holder(tmp_path / "home")
    _write(DATA, tmp_path / "p.parquet")
    pol = _policy()
    del pol["dataset"]
    h.register("nounit", tmp_path / "p.parquet", pol)
    assert h._dataset("nounit").source.sidecar == ""
    DATA.to_csv(tmp_path / "p.csv", index=False)
    h.register("csv", tmp_path / "p.csv", _policy())
    assert h._dataset("csv").source.sidecar == "" and h._dataset("csv").source.ordinals == ()
    assert not (h.home / "data" / "ordinals").exists() or not any((h.home / "data" / "ordinals").iterdir())


# ------------------------------------------------------- precomputed choices (mask)


def test_a_release_under_the_policy_bounds_uses_one_precomputed_choice(holder: pets.Holder) -> None:
    from pets.engines.base import Bounding
    from pets.engines.duckdb import MASK_CHOICES, _ordinal_predicates

    o = next(o for o in holder._dataset("side").source.ordinals if o.column == "g")
    assert o.mask_bounds == (3, 2) and o.mask
    assert _ordinal_predicates(o, Bounding("pid", 3, 2, 37)) == [
        f'("{o.mask}" & {1 << (37 % MASK_CHOICES)}) <> 0']
    # other bounds than the policy's: the per-release offsets, two modulos
    assert all("%" in p for p in _ordinal_predicates(o, Bounding("pid", 2, 2, 37)))


@pytest.mark.parametrize("name", ["side", "copy"])
def test_every_precomputed_choice_keeps_exactly_the_bound(holder: pets.Holder, name: str,
                                                          tmp_path: Path) -> None:
    from pets.engines.duckdb import MASK_CHOICES

    if name == "copy" and "copy" not in holder.datasets():
        holder.register("copy", DATA, _policy())
    src = holder._dataset(name).source
    choices: dict[str, set[frozenset[str]]] = {p: set() for p in NG[NG >= 4].index}
    for k in range(MASK_CHOICES):  # seed ≡ k picks choice k
        got = holder._engine.aggregate(src, _request(True, 3, 2, k + MASK_CHOICES * 12345)).set_index("g")
        groups, kept = _groups_kept(got)
        assert groups.reindex(NG.index, fill_value=0).to_dict() == NG.clip(upper=3).to_dict()
        assert (kept == NR.clip(upper=2).droplevel("pid")[kept.index]).all()
        for p in choices:
            choices[p].add(frozenset(kept.index[kept.index.str.startswith(f"g{p[1:]}_")]))
    # the choices differ: for a person with ng ≥ 4 groups each choice leaves out a
    # uniformly random cyclic run, independently per choice; all 16 the same has
    # probability ≤ ng · ng^-16 ≤ 4^-15 ≈ 9.3e-10 per person: over < 40 persons the test
    # fails falsely with probability < 4e-8
    assert len(choices) >= 10 and all(len(c) >= 2 for c in choices.values())


def test_sums_through_the_sidecar_use_its_encoded_column_and_are_exact(tmp_path: Path) -> None:
    """Bounds that never bind (8 groups, 6 rows): the DP sums by group, at an ε where
    the noise is far below 0.5, equal pandas' exact sums; the engine SQL sums the
    sidecar's pre-encoded column."""
    path = tmp_path / "people.parquet"
    _write(DATA, path)
    h = pets.Holder(tmp_path / "home")
    h.register("d", path, _policy(max_groups=8, max_rows=6))
    h.grant("ann", dataset="d", purpose=PURPOSE, epsilon=1e9)
    s = h.session("ann", purpose=PURPOSE)
    sent = _record_sql(h)
    side = h._dataset("d").source.sidecar
    want = PEOPLE[PEOPLE["g"] != "zz"].groupby("g")["v"]
    # the policy's bounds: the sidecar alone holds the group, the choice and the sums
    r = s.release(s.table("d").group_by("g").agg(t=pets.sum("v", bounds=(0, 10_000)),
                                                 m=pets.mean("v", bounds=(0, 10_000))), pets.DP(epsilon=1e8))
    got = r.df.set_index("g")
    assert got["t"].round().astype(int).reindex(want.sum().index).to_dict() == want.sum().to_dict()
    assert (got["m"].reindex(want.mean().index) - want.mean()).abs().max() < 1e-3
    q = next(q for q in reversed(sent) if "GROUP BY" in q)
    assert "POSITIONAL JOIN" not in q and side in q and '"__pets_fx__v"' in q
    assert "people.parquet" not in q.replace(side, "")  # the source file is not read
    # other bounds than the stored encoding's: the source is read beside the sidecar
    r = s.release(s.table("d").group_by("g").agg(t=pets.sum("v", bounds=(0, 20_000))), pets.DP(epsilon=1e8))
    got2 = r.df.set_index("g")["t"].round().astype(int)
    assert got2.reindex(want.sum().index).to_dict() == want.sum().to_dict()
    q = next(q for q in reversed(sent) if "GROUP BY" in q)
    assert "POSITIONAL JOIN" in q and '"__pets_fx__v"' not in q


def test_an_ordinals_file_without_the_group_values_is_read_beside_the_source(tmp_path: Path) -> None:
    """An ordinals file written before the group column's values were stored in it (or
    missing them for any reason) is still used, through the POSITIONAL JOIN with the
    source: the same exact counts as the ordinals file read alone."""
    path = tmp_path / "people.parquet"
    _write(DATA, path)
    h = pets.Holder(tmp_path / "home")
    h.register("d", path, _policy(max_groups=8, max_rows=6))  # bounds that never bind
    src = h._dataset("d").source
    req = dataclasses.replace(_request(True, 8, 6, 5), measures=(Measure("n", "rows"),))
    side = Path(src.sidecar)
    assert h._engine._sidecar_alone(src, _fitting_ordinals(src, req), req)
    alone = h._engine.aggregate(src, req).set_index("g")["n"]
    old = tmp_path / "old.parquet"
    duckdb.sql(f"COPY (SELECT * EXCLUDE ('__pets_bd__1_grp') FROM read_parquet('{side}')) "
               f"TO '{old}' (FORMAT parquet)")
    os.replace(old, side)
    h._engine.forget(src)
    sent = _record_sql(h)
    assert not h._engine._sidecar_alone(src, _fitting_ordinals(src, req), req)
    joined = h._engine.aggregate(src, req).set_index("g")["n"]
    assert "POSITIONAL JOIN" in sent[-1]
    want = IN_KEYS.groupby("g").size()
    assert alone.reindex(want.index).to_dict() == want.to_dict()
    assert joined.reindex(want.index).to_dict() == want.to_dict()
