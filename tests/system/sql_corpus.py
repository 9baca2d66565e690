"""A corpus of SQL that analysts write, over the bundled Adult table, and how to score
pets on it: how many queries it answers, how many it refuses (and that every refusal
is a :class:`pets.PetsError`), and how accurate the answered cells are against the
exact answer of the same SQL in DuckDB.

The kinds follow the corpora DP SQL engines test themselves with (SmartNoise SQL's
query tests and the census-sample queries of issue #13: HAVING, ORDER BY, LIMIT/TOP,
expressions over aggregates, VAR/STD names, literals of another type, GROUP BY without
an aggregate, CASE groups, renamed groups, qualifiers) and the usual reporting queries
(counts, sums, means and medians by category, cross tabs, filters). Written for this
project; no query is copied from a peer.

Each entry is ``(sql, answerable, delta)``: ``answerable`` says whether a DP engine can
answer it at all (False: row-level output, MIN/MAX of raw values, joins, windows,
sub-queries — refused by design); ``delta`` > 0 for the queries that group by a column
without public keys (the groups are found by a thresholded noisy count).

Run ``python -m tests.system.sql_corpus`` from the repository root for the figures.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pets

Q = tuple[str, bool, float]


def _q(sql: str, answerable: bool = True, delta: float = 0.0) -> Q:
    return (sql, answerable, delta)


CORPUS: list[Q] = [
    # ---------------------------------------------------------------- reporting basics
    _q("SELECT COUNT(*) FROM adult"),
    _q("SELECT COUNT(*) AS n FROM adult WHERE age >= 18"),
    _q("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex"),
    _q("SELECT race, COUNT(*) FROM adult GROUP BY race"),
    _q("SELECT education, COUNT(*) AS n FROM adult GROUP BY education"),
    _q("SELECT workclass, COUNT(*) AS n FROM adult GROUP BY workclass"),
    _q('SELECT "marital-status", COUNT(*) AS n FROM adult GROUP BY "marital-status"'),
    _q("SELECT relationship, COUNT(*) AS n FROM adult GROUP BY relationship"),
    _q('SELECT "salary-class", COUNT(*) AS n FROM adult GROUP BY "salary-class"'),
    _q("SELECT occupation, COUNT(*) AS n FROM adult GROUP BY occupation"),
    _q("SELECT sex, race, COUNT(*) AS n FROM adult GROUP BY sex, race"),
    _q('SELECT sex, "salary-class", COUNT(*) AS n FROM adult GROUP BY sex, "salary-class"'),
    _q("SELECT AVG(age) FROM adult"),
    _q('SELECT AVG("hours-per-week") AS hours FROM adult'),
    _q("SELECT sex, AVG(age) AS avg_age FROM adult GROUP BY sex"),
    _q('SELECT education, AVG("hours-per-week") AS h FROM adult GROUP BY education'),
    _q('SELECT race, SUM("capital-gain") AS gain FROM adult GROUP BY race'),
    _q('SELECT SUM("capital-gain") AS gain, SUM("capital-loss") AS loss FROM adult'),
    _q('SELECT sex, AVG("capital-gain") AS g FROM adult GROUP BY sex'),
    _q("SELECT MEDIAN(age) AS med FROM adult"),
    _q('SELECT sex, MEDIAN("hours-per-week") AS med FROM adult GROUP BY sex'),
    _q("SELECT PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY age) AS p90 FROM adult"),
    _q("SELECT QUANTILE_CONT(age, 0.25) AS q1 FROM adult"),
    _q('SELECT COUNT("capital-gain") AS n FROM adult WHERE "capital-gain" > 0'),
    _q("SELECT COUNT(*) FROM adult WHERE sex = 'Female' AND age BETWEEN 20 AND 30"),
    _q("SELECT COUNT(*) FROM adult WHERE race IN ('Black', 'Asian-Pac-Islander')"),
    _q("SELECT COUNT(*) FROM adult WHERE NOT (sex = 'Male') OR age < 25"),
    _q("SELECT COUNT(*) FROM adult WHERE workclass IS NULL"),
    _q("SELECT COUNT(*) FROM adult WHERE occupation IS NOT NULL"),
    _q('SELECT education, COUNT(*) AS n FROM adult WHERE "native-country" = \'United-States\' '
       "GROUP BY education"),
    _q('SELECT sex, SUM("hours-per-week") AS total FROM adult WHERE age < 65 GROUP BY sex'),
    _q('SELECT sex, AVG("capital-gain" - "capital-loss") AS net FROM adult GROUP BY sex'),
    _q("SELECT sex, SUM(CASE WHEN age >= 50 THEN 1 ELSE 0 END) AS older FROM adult GROUP BY sex"),
    _q('SELECT race, AVG("education-num") AS years FROM adult GROUP BY race'),
    _q("SELECT COUNT(DISTINCT education) AS k FROM adult"),
    _q("SELECT VAR_POP(age) AS v FROM adult"),
    # ---------------------------------------------------------------- HAVING
    _q("SELECT education, COUNT(*) AS n FROM adult GROUP BY education HAVING COUNT(*) > 1000"),
    _q("SELECT race, COUNT(*) AS n FROM adult GROUP BY race HAVING n >= 300"),
    _q("SELECT occupation, AVG(age) AS a FROM adult GROUP BY occupation HAVING AVG(age) > 40"),
    _q('SELECT workclass, AVG("hours-per-week") AS h FROM adult GROUP BY workclass '
       'HAVING AVG("hours-per-week") BETWEEN 35 AND 45'),
    _q("SELECT sex, race, COUNT(*) AS n FROM adult GROUP BY sex, race HAVING COUNT(*) > 100 "
       "AND sex = 'Female'"),
    _q('SELECT "marital-status", COUNT(*) AS n FROM adult GROUP BY "marital-status" '
       "HAVING COUNT(*) < 1000 OR COUNT(*) > 10000"),
    _q('SELECT education, SUM("capital-gain") AS g FROM adult GROUP BY education '
       'HAVING SUM("capital-gain") > 100000'),
    _q("SELECT relationship, AVG(age) FROM adult GROUP BY relationship HAVING COUNT(*) > 500"),
    _q('SELECT education, AVG("education-num") AS e FROM adult GROUP BY education '
       "HAVING NOT (AVG(age) < 30)"),
    _q("SELECT race, COUNT(*) AS n FROM adult GROUP BY race HAVING race <> 'White'"),
    _q("SELECT workclass, COUNT(*) AS n FROM adult GROUP BY workclass HAVING workclass IN "
       "('Private', 'State-gov')"),
    _q("SELECT sex, STDDEV(age) AS sd FROM adult GROUP BY sex HAVING STDDEV(age) > 5"),
    _q("SELECT education, COUNT(*) FROM adult GROUP BY education HAVING COUNT(*) * 2 > 3000"),
    _q('SELECT occupation, COUNT(*) AS n FROM adult GROUP BY occupation HAVING n > 10 '
       "ORDER BY n"),
    _q("SELECT sex, COUNT(*) FROM adult GROUP BY sex HAVING SUM(age) / COUNT(*) > 30"),
    # ---------------------------------------------------------------- ORDER BY, LIMIT, TOP
    _q("SELECT education, COUNT(*) AS n FROM adult GROUP BY education ORDER BY n DESC"),
    _q("SELECT race, COUNT(*) AS n FROM adult GROUP BY race ORDER BY race"),
    _q("SELECT occupation, AVG(age) AS a FROM adult GROUP BY occupation ORDER BY a DESC LIMIT 5"),
    _q("SELECT education, COUNT(*) FROM adult GROUP BY education ORDER BY 2 DESC LIMIT 3"),
    _q("SELECT TOP 5 education, COUNT(*) AS n FROM adult GROUP BY education ORDER BY n DESC"),
    _q("SELECT TOP 3 workclass, COUNT(*) AS n FROM adult GROUP BY workclass ORDER BY COUNT(*) DESC"),
    _q("SELECT sex, race, COUNT(*) AS n FROM adult GROUP BY sex, race ORDER BY sex, n DESC"),
    _q('SELECT "native-country", COUNT(*) AS n FROM adult GROUP BY "native-country" '
       "ORDER BY n DESC LIMIT 10 OFFSET 1"),
    _q('SELECT education, AVG("hours-per-week") AS h FROM adult GROUP BY education ORDER BY h'),
    _q("SELECT relationship, COUNT(*) AS n FROM adult GROUP BY relationship ORDER BY n ASC LIMIT 2"),
    _q('SELECT occupation, SUM("capital-gain") AS g FROM adult GROUP BY occupation '
       "ORDER BY g DESC NULLS LAST LIMIT 4"),
    _q("SELECT education, COUNT(*) AS n FROM adult GROUP BY education "
       "ORDER BY COUNT(*) DESC FETCH FIRST 3 ROWS ONLY"),
    _q("SELECT race, AVG(age) FROM adult GROUP BY race ORDER BY AVG(age)"),
    _q("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex ORDER BY n DESC LIMIT 1"),
    # ---------------------------------------------------------------- expressions over aggregates
    _q("SELECT (SUM(age)) AS s FROM adult"),
    _q("SELECT SUM(age) * 1 AS s FROM adult"),
    _q("SELECT COUNT(*) * 5 AS n5 FROM adult"),
    _q("SELECT POWER(SUM(age), 2) AS p FROM adult"),
    _q("SELECT 3 AS three, COUNT(*) AS n FROM adult"),
    _q("SELECT PI() AS pi, COUNT(*) AS n FROM adult"),
    _q("SELECT SUM(age) / COUNT(*) AS mean_age FROM adult"),
    _q("SELECT sex, SUM(age) / COUNT(age) AS mean_age FROM adult GROUP BY sex"),
    _q("SELECT sex, ROUND(AVG(age), 1) AS a FROM adult GROUP BY sex"),
    _q("SELECT SQRT(VAR_POP(age)) AS sd FROM adult"),
    _q('SELECT sex, AVG("capital-gain") - AVG("capital-loss") AS net FROM adult GROUP BY sex'),
    _q("SELECT race, 100.0 * COUNT(*) / 32561 AS pct FROM adult GROUP BY race"),
    _q("SELECT ABS(AVG(age) - 40) AS d FROM adult"),
    _q("SELECT sex, CASE WHEN AVG(age) > 38 THEN 1 ELSE 0 END AS older FROM adult GROUP BY sex"),
    _q("SELECT education, CAST(COUNT(*) AS DOUBLE) / 1000 AS thousands FROM adult GROUP BY education"),
    _q('SELECT sex, SUM("hours-per-week") / COUNT(*) * 52 AS yearly FROM adult GROUP BY sex'),
    _q("SELECT COUNT(*) + 0 AS n, AVG(age) * 12 AS months FROM adult"),
    # ---------------------------------------------------------------- VAR / STD names
    _q("SELECT VAR(age) AS v FROM adult"),
    _q("SELECT VARIANCE(age) AS v FROM adult"),
    _q("SELECT VAR_SAMP(age) AS v FROM adult"),
    _q("SELECT STD(age) AS s FROM adult"),
    _q("SELECT STDDEV(age) AS s FROM adult"),
    _q('SELECT sex, STDDEV_SAMP("hours-per-week") AS s FROM adult GROUP BY sex'),
    _q("SELECT race, STDDEV_POP(age) AS s FROM adult GROUP BY race"),
    # ---------------------------------------------------------------- literals of another type
    _q("SELECT COUNT(*) FROM adult WHERE \"education-num\" = '8'"),
    _q("SELECT COUNT(*) FROM adult WHERE age > '50'"),
    _q("SELECT COUNT(*) FROM adult WHERE age BETWEEN '20' AND '29'"),
    _q("SELECT COUNT(*) FROM adult WHERE \"education-num\" IN ('9', '10')"),
    _q("SELECT COUNT(*) FROM adult WHERE age = 40.0"),
    # ---------------------------------------------------------------- GROUP BY without aggregates
    _q("SELECT sex FROM adult GROUP BY sex"),
    _q("SELECT race, sex FROM adult GROUP BY race, sex"),
    _q("SELECT DISTINCT education FROM adult"),
    _q("SELECT workclass FROM adult WHERE age > 70 GROUP BY workclass"),
    # ---------------------------------------------------------------- CASE groups, renames
    _q("SELECT COUNT(*) AS n FROM adult GROUP BY CASE WHEN age < 30 THEN 'young' ELSE 'older' END"),
    _q("SELECT CASE WHEN age < 30 THEN 'young' WHEN age < 60 THEN 'middle' ELSE 'old' END AS band, "
       "COUNT(*) AS n FROM adult GROUP BY band"),
    _q('SELECT CASE WHEN "hours-per-week" > 40 THEN 1 ELSE 0 END AS overtime, AVG(age) AS a '
       'FROM adult GROUP BY CASE WHEN "hours-per-week" > 40 THEN 1 ELSE 0 END'),
    _q("SELECT sex, COUNT(*) AS n FROM adult GROUP BY sex, CASE WHEN age >= 65 THEN 'retired' "
       "ELSE 'working' END"),
    _q('SELECT "marital-status" AS m, COUNT(*) AS n FROM adult GROUP BY "marital-status"'),
    _q("SELECT sex AS gender, AVG(age) AS a FROM adult GROUP BY sex"),
    _q("SELECT race AS r, COUNT(*) FROM adult GROUP BY r"),
    _q("SELECT education, COUNT(*) FROM adult GROUP BY 1"),
    # ---------------------------------------------------------------- qualifiers
    _q("SELECT p.sex, COUNT(*) AS n FROM adult AS p GROUP BY p.sex"),
    _q("SELECT adult.race, AVG(adult.age) AS a FROM adult GROUP BY adult.race"),
    _q("SELECT a.sex, COUNT(*) FROM adult a WHERE a.age > 30 GROUP BY a.sex"),
    _q("SELECT t.education, COUNT(*) AS n FROM adult t GROUP BY t.education HAVING COUNT(*) > 50"),
    # ---------------------------------------------------------------- groups found in the data
    _q("SELECT age, COUNT(*) AS n FROM adult GROUP BY age", delta=1e-6),
    _q('SELECT "hours-per-week", COUNT(*) AS n FROM adult GROUP BY "hours-per-week" '
       "ORDER BY n DESC LIMIT 5", delta=1e-6),
    _q("SELECT age FROM adult GROUP BY age", delta=1e-6),
    # ---------------------------------------------------------------- not answerable by a DP engine
    _q("SELECT * FROM adult", answerable=False),
    _q("SELECT age, sex FROM adult", answerable=False),
    _q("SELECT MAX(age) FROM adult", answerable=False),
    _q("SELECT MIN(\"capital-gain\") FROM adult", answerable=False),
    _q("SELECT sex, COUNT(*) FROM adult a JOIN adult b ON a.age = b.age GROUP BY sex",
       answerable=False),
    _q("SELECT COUNT(*) FROM (SELECT * FROM adult WHERE age > 30) AS t", answerable=False),
    _q("SELECT sex, COUNT(*) OVER (PARTITION BY sex) FROM adult", answerable=False),
    _q("SELECT SUM(fnlwgt) FROM adult", answerable=False),  # on the negative list
    _q("SELECT COUNT(*) FROM adult WHERE sex LIKE 'M%'", answerable=False),
]


@dataclass
class Outcome:
    sql: str
    answerable: bool
    status: str  # "answered", "refused", "crashed"
    error: str = ""
    rel_errors: list[float] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)


def adult_frame() -> pd.DataFrame:
    """The bundled Adult CSV read independently of pets, for the exact answers."""
    return pd.read_csv(pets.example_data(), skipinitialspace=True, na_values=["?"])


def exact_answer(con: Any, sql: str) -> pd.DataFrame | None:
    """The same SQL in DuckDB (TOP n written as LIMIT n); None if DuckDB cannot run it."""
    import re

    text = sql
    m = re.match(r"(?is)^\s*SELECT\s+TOP\s+(\d+)\s+(.*)$", sql)
    if m:
        text = f"SELECT {m.group(2)} LIMIT {m.group(1)}"
    text = re.sub(r"(?i)\bSTD\(", "STDDEV(", text)
    text = re.sub(r"(?i)\bVAR\(", "VARIANCE(", text)
    try:
        return con.execute(text).df()
    except Exception:
        return None


def _cells(released: pd.DataFrame, exact: pd.DataFrame, ci: pd.DataFrame | None,
           out: Outcome) -> None:
    """Relative error and coverage of the numeric released cells whose keys (the
    non-numeric columns and the group keys of the release) appear in the exact answer."""
    num = [c for c in released.columns if c in exact.columns
           and pd.api.types.is_numeric_dtype(released[c]) and pd.api.types.is_numeric_dtype(exact[c])]
    keys = [c for c in released.columns if c in exact.columns and c not in num]
    if len(released.columns) != len(exact.columns):
        return
    if keys:
        ex = exact.dropna(subset=keys).drop_duplicates(subset=keys)
        merged = released.merge(ex, on=keys, suffixes=("", "__exact"))
    elif len(released) == 1 and len(exact) == 1:
        merged = released.merge(exact, left_index=True, right_index=True, how="left",
                            suffixes=("", "__exact"))  # join(rsuffix=) warns on pandas 3
    else:
        return
    for c in num:
        ec = c + "__exact" if c + "__exact" in merged.columns else None
        if ec is None:
            continue
        for i, row in merged.iterrows():
            v, x = row[c], row[ec]
            if pd.isna(v) or pd.isna(x):
                continue
            if x != 0:
                out.rel_errors.append(abs(float(v) - float(x)) / abs(float(x)))
            if ci is not None and len(ci):
                sub = ci[ci["aggregate"] == c]
                for k in keys:
                    if k in sub.columns:
                        sub = sub[sub[k] == row[k]]
                if len(sub) == 1 and not pd.isna(sub["lower"].iloc[0]):
                    lo, hi = float(sub["lower"].iloc[0]), float(sub["upper"].iloc[0])
                    tol = 1e-9 * max(1.0, abs(float(x)))
                    out.covered.append(lo - tol <= float(x) <= hi + tol)


def run_corpus(epsilon: float = 1.0, home: Path | None = None) -> list[Outcome]:
    """Every corpus query through a fresh holder's session at ``epsilon`` (pure DP, or
    with its δ), scored against DuckDB's exact answer."""
    import duckdb

    tmp = tempfile.TemporaryDirectory(prefix="pets-corpus-") if home is None else None
    base = Path(tmp.name) if tmp is not None else home
    assert base is not None
    try:
        h = pets.Holder(base / "home")
        frame = adult_frame()
        # a DataFrame source: registered once (as the holder keeps it), not re-read per query
        h.register("adult", frame, pets.example_policy())
        h.grant("analyst", dataset="adult", purpose="corpus", epsilon=10_000.0, delta=1e-3)
        s = h.session("analyst", purpose="corpus")
        con = duckdb.connect()
        con.register("adult", frame)
        out = []
        for sql, answerable, delta in CORPUS:
            o = Outcome(sql, answerable, "answered")
            try:
                r = s.sql(sql, pets.DP(epsilon=epsilon, delta=delta))
            except pets.PetsError as e:
                o.status, o.error = "refused", f"{type(e).__name__}: {e}"
            except Exception as e:  # noqa: BLE001 — a crash is what this counts
                o.status, o.error = "crashed", f"{type(e).__name__}: {e}"
            else:
                exact = exact_answer(con, sql)
                if exact is not None:
                    try:
                        ci = r.ci(0.95)
                    except TypeError:
                        ci = None
                    _cells(r.df, exact, ci, o)
            out.append(o)
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    answerable = [o for o in outcomes if o.answerable]
    errs = [e for o in outcomes for e in o.rel_errors]
    cov = [c for o in outcomes for c in o.covered]
    return {
        "queries": len(outcomes),
        "answerable": len(answerable),
        "answered": sum(o.status == "answered" for o in answerable),
        "refused_answerable": [o.sql for o in answerable if o.status != "answered"],
        "unanswerable_refused": sum(o.status == "refused" for o in outcomes if not o.answerable),
        "crashed": [o.sql for o in outcomes if o.status == "crashed"],
        "cells": len(errs),
        "median_relative_error": float(np.median(errs)) if errs else math.nan,
        "p90_relative_error": float(np.quantile(errs, 0.9)) if errs else math.nan,
        "intervals": len(cov),
        "coverage": float(np.mean(cov)) if cov else math.nan,
    }


if __name__ == "__main__":  # pragma: no cover
    res = run_corpus()
    for o in res:
        if o.status != "answered":
            print(f"[{o.status}{'' if o.answerable else ', by design'}] {o.sql}\n    {o.error}")
    for k, v in summary(res).items():
        print(f"{k}: {v}")
