"""Input hygiene (issue 9, items 4 and 8): data column names cannot steer the engine,
and every string or number that enters — names, purposes, ε and δ, k, bounds, SQL,
plans, policies — is checked where it enters, with a clear error that changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import pets
from pets import col

from ._util import ANALYST, PURPOSE, snapshot

# =====================================================================================
# Item 4: data column names cannot steer the engine
# =====================================================================================

ROWS_OF_P1 = 1000
OTHERS = 50


def _frame(unit: str, group: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One person with 1,000 rows and 50 persons with one row each, all in group 'A'."""
    n = ROWS_OF_P1 + OTHERS
    df = pd.DataFrame({unit: ["p1"] * ROWS_OF_P1 + [f"q{i}" for i in range(OTHERS)],
                       group: ["A"] * n, "v": [1] * n})
    for c in extra:
        df[c] = 1
    return df


def _write(df: pd.DataFrame, folder: Path, kind: str) -> Path:
    if kind == "csv":
        path = folder / "t.csv"
        df.to_csv(path, index=False)
    else:
        path = folder / "t.parquet"
        con = duckdb.connect()
        con.register("df", df)
        con.execute(f"COPY (SELECT * FROM df) TO '{path}' (FORMAT parquet)")
        con.close()
    return path


def _policy(unit: str, group: str) -> dict:
    return {
        "dataset": {"privacy_unit": unit, "max_groups": 1, "max_rows_per_group": 1},
        "columns": {unit: {"role": "identifier", "grade": 1},
                    group: {"role": "attribute", "grade": 1, "keys": ["A", "B"]},
                    "v": {"role": "attribute", "grade": 1, "bounds": [0, 1]}},
        "grades": {"1": {"allow": ["dp"]}},
    }


RESERVED = ["__pets_rn", "__pets_gr", "__PETS_RN", "__Pets_Rand", "__pets_g0", "__pets_bd__0_ri",
            "__pets_fx__v", "__pets_"]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("name", RESERVED)
def test_a_reserved_column_name_is_refused_in_place(tmp_path, kind, name):
    """A column named like the engine's hidden bounding columns bound to its predicate:
    p1's 1,000 rows counted 1,000 times. Now refused at registration, in any case."""
    path = _write(_frame("person", "g", (name,)), tmp_path, kind)
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match=rf"column named '{name}': pets reserves names "
                                             r"starting with '__pets' \(in any case\) for its "
                                             r"hidden columns; rename it"):
        h.register("t", path, _policy("person", "g"))
    assert h.datasets() == []
    assert len(h.audit()) == 0


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("name", ["__PETS_RN", "__pets_rn"])
def test_a_reserved_column_name_is_refused_in_every_source(tmp_path, name, copy):
    df = _frame("person", "g", (name,))
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match="reserves names starting with '__pets'"):
        h.register("df", df, _policy("person", "g"))
    path = _write(df, tmp_path, "csv")
    with pytest.raises(pets.DataError, match="reserves names starting with '__pets'"):
        h.register("t", path, _policy("person", "g"), copy=copy)
    assert h.datasets() == []


def test_a_dataset_registered_in_place_before_the_fix_is_refused_until_re_registered(tmp_path):
    """A store written by an older pets may hold a source with a reserved column: it is
    refused at use, never answered with the bounding switched off."""
    path = _write(_frame("person", "g"), tmp_path, "csv")
    h = pets.Holder(tmp_path / "home")
    h.register("t", path, _policy("person", "g"))
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=10.0)
    # what an older version stored: the reserved column in the schema and the file
    _write(_frame("person", "g", ("__pets_rn",)), tmp_path, "csv")
    rec = h._store.get_dataset("t")
    rec["schema"]["__pets_rn"] = "int"
    st = path.stat()
    rec.update(size=st.st_size, mtime_ns=st.st_mtime_ns,
               sha256=pets.holder._sha256(path))
    h._store.put_dataset("t", rec, replace=True)
    h2 = pets.Holder(tmp_path / "home")
    s = h2.session(ANALYST, purpose=PURPOSE)
    before = snapshot(h2, s)
    with pytest.raises(pets.DataError, match=r"'__pets_rn'.*reserves.*re-register it"):
        s.release(s.table("t").agg(n=pets.count()), pets.DP(epsilon=1.0))
    assert snapshot(h2, s) == before


STEERING = ["t", "f0", "select", "group", "from", "count", "rowid", "a b", 'we"ird', "it's",
            "x); DROP TABLE y; --", "*", "NULL", "true", "hash", "random", "wr", "wg", "order",
            "Person2", "per son"]


def _released_counts(h: pets.Holder, group: str) -> list[float]:
    h.grant(ANALYST, dataset="t", purpose=PURPOSE, epsilon=1000.0)
    s = h.session(ANALYST, purpose=PURPOSE)
    dp = pets.DP(epsilon=200.0)  # noise scale 1/200: the count is exact to ±0.5 w.h.p.
    t = s.table("t")
    out = [s.release(t.agg(n=pets.count()), dp).df["n"].iloc[0],
           s.release(t.filter(col(group) == "A").agg(n=pets.count()), dp).df["n"].iloc[0]]
    r = s.release(t.group_by(group).agg(n=pets.count(), sv=pets.sum("v", bounds=(0, 1))), dp).df
    a = r[r[group] == "A"].iloc[0]
    out += [a["n"], a["sv"]]
    return out


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("name", STEERING)
def test_odd_column_names_cannot_switch_off_contribution_bounding(tmp_path, kind, name):
    """Names with quotes, spaces, SQL fragments, SQL keywords, engine aliases (t, wr, wg),
    as the privacy unit and as the group column: each person still counts once."""
    for i, (unit, group) in enumerate([("person", name), (name, "g")]):
        folder = tmp_path / str(i)
        folder.mkdir()
        path = _write(_frame(unit, group), folder, kind)
        h = pets.Holder(folder / "home")
        h.register("t", path, _policy(unit, group))
        counts = _released_counts(h, group)
        assert all(abs(c - (OTHERS + 1)) < 10 for c in counts), (unit, group, counts)


def test_a_group_column_named_like_a_measure_key_is_counted_right(tmp_path):
    path = _write(_frame("person", "e0"), tmp_path, "csv")
    h = pets.Holder(tmp_path / "home")
    h.register("t", path, _policy("person", "e0"))
    assert all(abs(c - (OTHERS + 1)) < 10 for c in _released_counts(h, "e0"))


_X_POLICY = {"columns": {"x": {"role": "attribute", "grade": 1}}, "grades": {"1": {"allow": ["dp"]}}}


def test_columns_differing_only_by_case_are_refused_in_a_dataframe(tmp_path):
    df = pd.DataFrame({"x": [1, 2], "person": ["a", "b"], "PERSON": ["c", "d"]})
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match=r"'person' and 'PERSON', which differ only by case"):
        h.register("t", df, _X_POLICY)
    dup = pd.DataFrame([[1, 2, 3]], columns=["x", "a", "a"])
    with pytest.raises(pets.QueryError, match=r"two columns named 'a'; rename one"):
        h.register("t", dup, _X_POLICY)
    assert h.datasets() == []


def test_columns_differing_only_by_case_in_a_file_are_told_apart_by_the_engine(tmp_path):
    """DuckDB renames the second of two case-equal CSV headers (PERSON_1): the privacy
    unit is the column the policy names and each person counts once."""
    path = tmp_path / "t.csv"
    df = _frame("person", "g")
    df["PERSON"] = ["same"] * len(df)  # one value: if the engine bound it, all would be one person
    df.to_csv(path, index=False)
    h = pets.Holder(tmp_path / "home")
    h.register("t", path, _policy("person", "g"))
    assert "person" in h._dataset("t").schema
    assert all(abs(c - (OTHERS + 1)) < 10 for c in _released_counts(h, "g"))


@pytest.mark.parametrize("name", ["a\x1bb", "tab\there", "rtl\u202eevil", "nl\nname"])
def test_a_column_name_with_control_characters_is_refused(tmp_path, name):
    df = pd.DataFrame({name: [1, 2], "x": [1, 2]})
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.DataError, match=r"column name with control characters .*rename"):
        h.register("t", df, _X_POLICY)
    assert h.datasets() == []


# =====================================================================================
# Item 8: names and purposes
# =====================================================================================


@pytest.mark.parametrize("bad", ["alice\n", "alice\r\n", "\nalice"])
def test_a_name_with_a_trailing_newline_is_refused_everywhere(holder, session, bad):
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=r"analyst name .* is not valid"):
        holder.grant(bad, dataset="adult", purpose=PURPOSE, epsilon=1.0)
    with pytest.raises(pets.QueryError, match=r"analyst name .* is not valid"):
        holder.session(bad, purpose=PURPOSE)
    with pytest.raises(pets.QueryError, match=r"analyst name .* is not valid"):
        holder.issue_key(bad)
    with pytest.raises(pets.QueryError, match=r"dataset name .* is not valid"):
        holder.register(bad.replace("alice", "adult2"), pets.example_data(), pets.example_policy())
    assert snapshot(holder, session) == before


@pytest.mark.parametrize("purpose", ["stats\x1b[2J\x1b[31m", "stats\u202eevil", "two\nlines",
                                     "nul\x00", "zero\u200bwidth"])
def test_a_purpose_with_control_characters_is_refused(holder, session, purpose):
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=r"purpose must be printable text; remove its "
                                              r"control characters \(\\"):
        holder.grant(ANALYST, dataset="adult", purpose=purpose, epsilon=1.0)
    with pytest.raises(pets.QueryError, match="purpose must be printable text"):
        holder.session(ANALYST, purpose=purpose)
    assert snapshot(holder, session) == before


def test_a_purpose_is_at_most_200_characters_and_a_long_one_stores_nothing(holder, session):
    holder.grant(ANALYST, dataset="adult", purpose="p" * 200, epsilon=1.0)  # the limit itself
    before = snapshot(holder, session)
    size = sum(f.stat().st_size for f in holder.home.iterdir() if f.is_file())
    for _ in range(30):
        with pytest.raises(pets.QueryError, match=r"purpose is 1,000,000 characters long; name "
                                                  r"it in at most 200 characters"):
            holder.session(ANALYST, purpose="x" * 1_000_000)
    with pytest.raises(pets.QueryError, match="at most 200 characters"):
        holder.grant(ANALYST, dataset="adult", purpose="p" * 201, epsilon=1.0)
    assert snapshot(holder, session) == before
    assert sum(f.stat().st_size for f in holder.home.iterdir() if f.is_file()) < size + 100_000


@pytest.mark.parametrize("purpose", ["ALL", "All", "Any", "ANYTHING", "Everything", "all purposes",
                                     "All  Purposes", "*", "stats*"])
def test_a_wildcard_purpose_is_refused_in_any_case(holder, session, purpose):
    before = snapshot(holder, session)
    with pytest.raises(pets.PolicyError, match="is a wildcard") as e:
        holder.grant(ANALYST, dataset="adult", purpose=purpose, epsilon=1.0)
    assert e.value.rule == "purpose"
    with pytest.raises(pets.PolicyError, match="is a wildcard"):
        holder.session(ANALYST, purpose=purpose)
    assert snapshot(holder, session) == before


@pytest.mark.parametrize("purpose", [" stats", "stats ", "stats\u00a0"])
def test_a_purpose_with_surrounding_whitespace_is_refused(holder, purpose):
    with pytest.raises(pets.QueryError, match="begins or ends with whitespace"):
        holder.grant(ANALYST, dataset="adult", purpose=purpose, epsilon=1.0)


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_audit_list_never_prints_control_characters_from_the_store(holder, capsys, fmt):
    """A store written by an older version may hold any purpose: the listing escapes it."""
    holder._store.set_grant(ANALYST, "adult", "evil\x1b[2J\x1b]0;pwned\x07\u202e\x9b", 1.0, 0.0, "basic")
    from pets.cli import main

    args = ["audit", "list", "--home", str(holder.home)] + ([] if fmt == "table" else ["--format", fmt])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\u202e\x9b")
    if fmt != "json":  # JSON escapes them itself (\u001b)
        assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\u202e\\x9b" in out


# =====================================================================================
# Item 8: recursion depth — SQL, the Python builder, plan JSON, policy TOML
# =====================================================================================


def _deep_sql(n: int) -> str:
    return "SELECT COUNT(*) FROM adult WHERE " + "(" * n + "age >= 18" + ")" * n


@pytest.mark.parametrize("sql, match", [
    (_deep_sql(3000), r"SQL nested too deeply at line 1, column \d+: at most 32 levels"),
    ("SELECT COUNT(*) FROM adult WHERE " + "NOT " * 3000 + "age >= 18", "at most 32 levels"),
    ("SELECT SUM(" + "CASE WHEN age > 1 THEN " * 100 + "1" + " END" * 100 + ") FROM adult",
     "at most 32 levels"),
    ("SELECT SUM(" + " + ".join(["age"] * 5000) + ") FROM adult",
     r"SQL expression nested too deeply at line 1, column \d+: at most 64 levels"),
    ("SELECT COUNT(*) FROM adult ORDER BY " + " * ".join(["age"] * 5000), "at most 64 levels"),
    ("SELECT COUNT(*) FROM adult WHERE age = " + "1 " * 60_000, r"at most 100,000 are supported"),
    ("SELECT COUNT(*) FROM adult WHERE sex = 'unterminated", "SQL syntax error"),
])
def test_deep_or_huge_sql_is_a_query_error_naming_the_limit(holder, session, sql, match):
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=match):
        session.sql(sql, pets.DP(epsilon=0.1))
    assert snapshot(holder, session) == before


def test_sql_nested_to_the_limit_still_works(session):
    r = session.sql(_deep_sql(30), pets.DP(epsilon=1.0))
    assert r.df["count"].iloc[0] > 0


@pytest.mark.slow  # 4-8 s each; in CI's own step (.ci/run)
@pytest.mark.parametrize("op", ["AND", "OR"])
def test_a_5000_term_sql_and_or_chain_is_answered(holder, adult_df, op):
    holder.grant("bob", dataset="adult", purpose=PURPOSE, epsilon=1e6)
    s = holder.session("bob", purpose=PURPOSE)
    if op == "AND":  # every term holds for ages 17 … 90
        terms = [f"age <> {-i}" for i in range(5000)]
        exact = len(adult_df)
    else:
        terms = [f"age = {i}" for i in range(5000)]
        exact = int(adult_df["age"].notna().sum())
    r = s.sql(f"SELECT COUNT(*) AS n FROM adult WHERE {f' {op} '.join(terms)}", pets.DP(epsilon=1e5))
    assert abs(r.df["n"].iloc[0] - exact) < 5


@pytest.mark.slow  # 7 s; in CI's own step (.ci/run)
def test_a_5000_term_chain_built_with_and_or_in_python_is_answered(holder, adult_df):
    holder.grant("bob", dataset="adult", purpose=PURPOSE, epsilon=1e6)
    s = holder.session("bob", purpose=PURPOSE)
    cond = col("age") != -1
    for i in range(2, 5001):
        cond = cond & (col("age") != -i)
    alt = col("age") == 0
    for i in range(1, 5000):
        alt = alt | (col("age") == i)
    assert pets.plan.depth(cond.node) <= pets.plan.MAX_DEPTH
    q = s.table("adult").filter(cond).filter(alt).agg(n=pets.count())
    assert abs(s.release(q, pets.DP(epsilon=1e5)).df["n"].iloc[0] - len(adult_df)) < 5
    # a short chain keeps the left-deep shape it always had
    short = (col("a") == 1) & (col("b") == 2) & (col("c") == 3)
    assert short.node == pets.plan.And(pets.plan.And((col("a") == 1).node, (col("b") == 2).node),
                                       (col("c") == 3).node)


def test_a_deep_arithmetic_chain_in_python_is_a_query_error_naming_the_limit():
    e = col("age")
    with pytest.raises(pets.QueryError, match="nests more than 64 levels deep"):
        for _ in range(5000):
            e = e + 1
    with pytest.raises(pets.QueryError, match="nests more than 64 levels deep"):
        x = col("age") > 1
        for _ in range(5000):
            x = ~x


def test_deep_plan_json_is_a_query_error_naming_the_limit():
    node: dict = {"col": "age"}
    for _ in range(5000):
        node = {"not": node}
    d = {"dataset": "adult", "filters": [node], "aggs": [{"name": "n", "kind": "count"}]}
    with pytest.raises(pets.QueryError, match="nests more than 64 levels deep"):
        pets.plan.Plan.from_dict(d)
    text = ('{"dataset": "adult", "aggs": [{"name": "n", "kind": "count"}], "filters": ['
            + '{"not": ' * 900 + '{"col": "age"}' + "}" * 900 + "]}")
    with pytest.raises(pets.QueryError, match="nests more than 64 levels deep"):
        pets.plan.Plan.from_json(text)
    with pytest.raises(pets.QueryError, match="malformed plan JSON: nested too deeply"):
        pets.plan.Plan.from_json('{"dataset": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(pets.QueryError, match="malformed plan JSON: expected an object"):
        pets.plan.Plan.from_json("[1, 2]")


@pytest.mark.parametrize("toml", [
    "negative_list = " + "[" * 3000 + "]" * 3000,
    "[dataset]\nx = " + "{a = " * 3000 + "1" + "}" * 3000,
])
def test_deeply_nested_policy_toml_is_a_policy_format_error_naming_the_limit(tmp_path, toml):
    with pytest.raises(pets.PolicyFormatError, match=r"line \d+: arrays and inline tables nest "
                                                     r"more than 32 levels deep"):
        pets.Policy.from_toml_text(toml)
    path = tmp_path / "deep.toml"
    path.write_text(toml)
    h = pets.Holder(tmp_path / "home")
    with pytest.raises(pets.PolicyFormatError, match="more than 32 levels deep"):
        h.register("adult", pets.example_data(), path)
    assert h.datasets() == []


def test_a_huge_policy_toml_is_refused(tmp_path):
    with pytest.raises(pets.PolicyFormatError, match=r"at most 1,000,000 are supported"):
        pets.Policy.from_toml_text("# " + "x" * 1_000_001)


# =====================================================================================
# Item 8: numbers — ε and δ, k, bounds, bins, literals
# =====================================================================================


@pytest.mark.parametrize("kw, match", [
    ({"epsilon": 10**400}, r"DP\(epsilon=\.\.\.\) must be a finite number > 0 between 1e-09 and "
                           r"1e\+09, got an integer of 401 digits"),
    ({"epsilon": 5e-324}, r"between 1e-09 and 1e\+09, got 5e-324"),
    ({"epsilon": 1e308}, r"between 1e-09 and 1e\+09, got 1e\+308"),
    ({"epsilon": 1e308, "delta": 1e-6, "noise": "gaussian"}, r"between 1e-09 and 10000, got 1e\+308"),
    ({"epsilon": 5e-324, "delta": 1e-6, "noise": "gaussian"}, r"between 1e-09 and 10000"),
    ({"epsilon": 1e5, "delta": 1e-6, "noise": "gaussian"}, r"between 1e-09 and 10000"),
    ({"epsilon": 1.0, "delta": 5e-324, "noise": "gaussian"}, r"0, or at least 1e-100, got 5e-324"),
    ({"epsilon": 1.0, "delta": 10**400}, r"DP\(delta=\.\.\.\) must be a number in \[0, 1\), got an integer"),
    ({"epsilon": 1.0, "noise": ["laplace"]}, r"DP\(noise=\.\.\.\) must be one of"),
])
def test_dp_parameters_out_of_range_are_query_errors_not_overflow_or_opendp(kw, match):
    with pytest.raises(pets.QueryError, match=match):
        pets.DP(**kw)


def test_every_epsilon_and_delta_dp_accepts_compiles_without_an_opendp_error(tmp_path):
    """At the ends of the accepted ranges a release is answered or refused with a
    PetsError before anything is charged — never an OpenDPException / OverflowError."""
    h = pets.Holder(tmp_path / "home")
    h.register("adult", pets.example_data(), pets.example_policy())
    t = lambda s: s.table("adult")  # noqa: E731
    queries = [lambda s: t(s).agg(n=pets.count()),
               lambda s: t(s).group_by("sex").agg(m=pets.mean("age", bounds=(0, 100))),
               lambda s: t(s).agg(q=pets.quantile("age", 0.5, bounds=(0, 100))),
               lambda s: t(s).agg(v=pets.variance("age", bounds=(0, 100))),
               lambda s: t(s).group_by("native-country").agg(n=pets.count())]
    cases = [(pets.protections.MIN_EPSILON, 0.0, "laplace"), (pets.protections.MAX_EPSILON, 0.0, "laplace"),
             (pets.protections.MIN_EPSILON, pets.protections.MIN_DELTA, "gaussian"),
             (pets.protections.MAX_GAUSSIAN_EPSILON, pets.protections.MIN_DELTA, "gaussian"),
             (pets.protections.MAX_GAUSSIAN_EPSILON, 0.999999, "gaussian")]
    for i, (eps, delta, noise) in enumerate(cases):
        for acc in ("basic", "zcdp") if delta else ("basic",):
            a = f"a{i}{acc}"
            h.grant(a, dataset="adult", purpose=PURPOSE, epsilon=min(eps * 10, 1e4 if acc == "zcdp" else 1e9),
                    delta=min(delta * 10, 0.9999999), accounting=acc)
            s = h.session(a, purpose=PURPOSE)
            for q in queries:
                dp = pets.DP(epsilon=eps, delta=delta, noise=noise)
                try:
                    s.explain(q(s), dp)
                    s.release(q(s), dp)
                except pets.BudgetExceeded:  # a grant near the ends holds fewer releases
                    pass
                except pets.QueryError as e:  # noise beyond any 64-bit answer: said before the charge
                    assert "too small" in str(e), (eps, delta, noise, e)


@pytest.mark.parametrize("kw, match", [
    ({"epsilon": 10**400}, r"a grant's epsilon must be a finite number > 0 between 1e-09 and 1e\+09"),
    ({"epsilon": 1e308}, r"a grant's epsilon .* got 1e\+308"),
    ({"epsilon": 1e-320}, r"a grant's epsilon"),
    ({"epsilon": 1e5, "delta": 1e-6, "accounting": "zcdp"}, r"between 1e-09 and 10000"),
    ({"epsilon": 1.0, "delta": 1e-320}, r"a grant's delta must be a number in \[0, 1\): 0, or at least"),
])
def test_grant_parameters_out_of_range_are_query_errors(holder, kw, match):
    before = holder.grants()
    with pytest.raises(pets.QueryError, match=match):
        holder.grant("bob", dataset="adult", purpose=PURPOSE, **kw)
    assert holder.grants().equals(before)


@pytest.mark.parametrize("kw, match", [
    ({"k": 10**30}, r"KAnonymity\(k=\.\.\.\) must be an integer from 2 to 1,000,000,000"),
    ({"k": 5, "l": 1e308}, r"KAnonymity\(l=\.\.\.\) must be a number from 1 to"),
    ({"k": 5, "l": float("nan")}, r"KAnonymity\(l=\.\.\.\)"),
    ({"k": 5, "metric": "nonsense"}, r"KAnonymity\(metric=\.\.\.\) must be one of 'loss'"),
    ({"k": 5, "l_kind": "nonsense"}, r"KAnonymity\(l_kind=\.\.\.\) must be one of 'distinct'"),
    ({"k": 5, "sensitive": 5}, r"KAnonymity\(sensitive=\.\.\.\) must be a column name"),
    ({"k": 5, "algorithm": ["mondrian"]}, r"KAnonymity\(algorithm=\.\.\.\)"),
])
def test_kanonymity_parameters_out_of_range_are_query_errors(kw, match):
    with pytest.raises(pets.QueryError, match=match):
        pets.KAnonymity(**kw)


@pytest.mark.parametrize("d, match", [
    ({"form": "dp"}, r"malformed dp protection: missing key 'epsilon'"),
    ({"form": "dp", "epsilon": 1, "sneaky": 2}, r"malformed dp protection: unexpected keys"),
    ({"form": "kanon", "k": 5, "bogus": 1}, r"malformed kanon protection"),
    ({"form": "zzz"}, r"unknown protection 'zzz'"),
    ([1], r"a protection must be a JSON object"),
])
def test_a_malformed_protection_dict_is_a_query_error(d, match):
    with pytest.raises(pets.QueryError, match=match):
        pets.protections.protection_from_dict(d)


HUGE = 10**400
NUMBERS = {
    "sum bounds": lambda t: t.agg(n=pets.sum("age", bounds=(0, HUGE))),
    "quantile bounds": lambda t: t.agg(n=pets.quantile("age", 0.5, bounds=(0, HUGE))),
    "histogram edges": lambda t: t.agg(n=pets.histogram("age", bins=[0, HUGE])),
    "histogram bounds": lambda t: t.agg(n=pets.histogram("age", bins=4, bounds=(0, HUGE))),
    "filter literal": lambda t: t.filter(col("age") > HUGE).agg(n=pets.count()),
    "isin value": lambda t: t.filter(col("age").isin([1, HUGE])).agg(n=pets.count()),
    "group key": lambda t: t.group_by("age", keys=[HUGE]).agg(n=pets.count()),
    "case literal": lambda t: t.agg(n=pets.sum(pets.case((col("age") > 3, HUGE), default=0))),
    "arithmetic literal": lambda t: t.agg(n=pets.sum(col("age") * HUGE, bounds=(0, 100))),
}


@pytest.mark.parametrize("where", list(NUMBERS))
def test_a_huge_integer_anywhere_in_a_query_is_a_query_error_before_any_charge(holder, session, where):
    """Before: OverflowError, or a DataError after the charge (budget spent, nothing back)."""
    before = snapshot(holder, session)
    with pytest.raises(pets.QueryError, match=r"within the 128-bit range \(±1.7e38\), got an "
                                              r"integer of 401 digits"):
        session.release(NUMBERS[where](session.table("adult")), pets.DP(epsilon=0.5))
    assert snapshot(holder, session) == before


@pytest.mark.parametrize("build", [
    lambda t: t.agg(__pets_x=pets.count()),
    lambda t: t.group_by(__PETS_band=pets.case((col("age") < 30, "young"), default="old")).agg(n=pets.count()),
    lambda t: t.filter(col("__Pets_rn") > 1).agg(n=pets.count()),
])
def test_names_starting_with_pets_are_refused_in_queries(session, build):
    with pytest.raises(pets.QueryError, match=r"starts with '__pets', which pets reserves"):
        build(session.table("adult"))
