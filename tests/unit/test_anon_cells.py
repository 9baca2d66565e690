"""Cell suppression (``anonymize(..., recoding="cells")``, :mod:`pets.anon.cells`) and the
node-budgeted heuristic search (``max_nodes`` of :func:`pets.anon.heuristic_full_domain`).

The property (every class of the released table, counted by label with ``*`` a label
like any other, has at least k rows) is checked with pandas on the released rows; the
count of suppressed cells against the stars in the released table and against the
optimum found by brute force (every suppression pattern of every row) on tiny tables.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pets
import pets.anon as anon
from pets.errors import QueryError

HIER = Path(pets.example_policy()).parent / "hierarchies"
QIS = ["age", "sex", "race", "education", "marital-status"]


def adult() -> pd.DataFrame:
    return pd.read_csv(pets.example_data("adult"), dtype=str, skipinitialspace=True, keep_default_na=False)


def class_sizes(df: pd.DataFrame, qis: list[str]) -> pd.Series:
    return df[qis].astype(str).value_counts()


def brute_force(df: pd.DataFrame, qis: list[str], k: int) -> int:
    """The fewest cells to replace by "*" so that every class (by label) has >= k rows."""
    C = df[qis].astype(str).to_numpy()
    n, d = C.shape
    masks = list(itertools.product((0, 1), repeat=d))
    best = n * d + 1
    for choice in itertools.product(range(len(masks)), repeat=n):
        cost = sum(sum(masks[m]) for m in choice)
        if cost >= best:
            continue
        rows = [tuple("*" if masks[m][j] else C[i, j] for j in range(d)) for i, m in enumerate(choice)]
        if min(Counter(rows).values()) >= k:
            best = cost
    return best


def tiny_tables():
    rng = np.random.default_rng(1)
    for _ in range(30):
        k = int(rng.integers(2, 4))
        yield k, pd.DataFrame({f"q{j}": rng.choice(["a", "b", "c"], 6) for j in range(2)})
    for _ in range(4):
        yield 2, pd.DataFrame({f"q{j}": rng.choice(["a", "b"], 5) for j in range(3)})


def test_cells_against_brute_force_on_tiny_tables() -> None:
    ratios = []
    for k, df in tiny_tables():
        qis = list(df.columns)
        r = anon.anonymize(df, qis, k=k, recoding="cells")
        assert r.suppressed == 0 and len(r.df) == len(df)
        assert class_sizes(r.df, qis).min() >= k
        stars = int((r.df[qis] == "*").to_numpy().sum())
        assert r.metrics["cells_suppressed"] == stars
        # unsuppressed cells keep their value
        kept = r.df[qis] != "*"
        assert (r.df[qis][kept] == df[qis][kept]).to_numpy()[kept.to_numpy()].all()
        best = brute_force(df, qis, k)
        assert stars >= best
        ratios.append(stars / best if best else 1.0)
    # a greedy: measured on these tables (fixed seed), at most 1.5x the optimum, 1.2x on average
    assert max(ratios) <= 1.5 and np.mean(ratios) <= 1.2, ratios


def test_cells_is_optimal_where_one_column_separates() -> None:
    df = pd.DataFrame({"a": ["x", "x", "y", "y", "z", "z"], "b": list("pqrstu")})
    r = anon.anonymize(df, ["a", "b"], k=2, recoding="cells")
    assert r.metrics["cells_suppressed"] == brute_force(df, ["a", "b"], 2) == 6
    assert list(r.df["a"]) == list(df["a"]) and set(r.df["b"]) == {"*"}


def test_cells_on_adult_with_hierarchies_reports_loss() -> None:
    df = adult()
    H = anon.load_hierarchies(HIER, QIS)
    r = anon.anonymize(df, QIS, H, k=5, recoding="cells")
    assert class_sizes(r.df, QIS).min() >= 5
    assert r.transformation == "cells" and r.recoding == "cells" and r.suppressed == 0
    assert r.metrics["cells_suppressed"] == int((r.df[QIS] == "*").to_numpy().sum()) > 0  # no "*" in Adult
    assert 0 < r.metrics["loss"] < 1 and r.row_levels is not None
    g = anon.anonymize(df, QIS, H, k=5)
    assert r.metrics["loss"] < g.metrics["loss"]  # on these five QIs: fewer cells lost than columns


def test_cells_with_l_diversity_and_suppression_limit() -> None:
    df = adult().head(3000)
    r = anon.anonymize(df, QIS, k=3, l=2, sensitive="relationship", recoding="cells",
                       max_suppression=0.05)
    key = r.df[QIS].astype(str).apply(tuple, axis=1)
    assert key.value_counts().min() >= 3
    assert r.df.groupby(key)["relationship"].nunique().min() >= 2
    assert r.suppressed <= 150


def test_cells_star_in_the_data_is_the_same_label() -> None:
    df = pd.DataFrame({"a": ["*", "*", "x", "y"], "b": ["p", "p", "q", "q"]})
    r = anon.anonymize(df, ["a", "b"], k=2, recoding="cells")
    assert class_sizes(r.df, ["a", "b"]).min() >= 2
    assert r.metrics["cells_suppressed"] == 2  # x and y; the data's own "*" are not counted


def test_cells_refusals() -> None:
    df = adult().head(500)
    with pytest.raises(QueryError, match="recoding='cells' cannot guarantee"):
        anon.anonymize(df, ["sex", "race"], k=2, recoding="cells",
                       models=[anon.DeltaPresence(0, 0.5, population=df)])
    with pytest.raises(QueryError, match="search applies to recoding='global' or 'local'"):
        anon.anonymize(df, ["sex", "race"], k=2, recoding="cells", search="heuristic")
    with pytest.raises(QueryError, match="recoding must be one of global, local, cells"):
        anon.anonymize(df, ["sex", "race"], k=2, recoding="cell")
    with pytest.raises(QueryError, match="no cell suppression found"):
        anon.anonymize(df.head(3), ["sex", "race"], k=3, l=3, sensitive="relationship",
                       recoding="cells")


def test_node_budget_is_deterministic_and_bounded() -> None:
    df = adult()
    H = anon.load_hierarchies(HIER, QIS)
    runs = [anon.anonymize(df, QIS, H, k=5, max_suppression=0.02, search="heuristic", max_nodes=40)
            for _ in range(2)]
    assert runs[0].transformation == runs[1].transformation
    assert runs[0].metrics["loss"] == runs[1].metrics["loss"]
    assert runs[0].nodes_checked <= 40 + 1
    assert class_sizes(runs[0].df, QIS).min() >= 5
    best = anon.anonymize(df, QIS, H, k=5, max_suppression=0.02)
    assert runs[0].lower_bound <= best.metrics["loss"] + 1e-9 <= runs[0].metrics["loss"] + 2e-9
    with pytest.raises(QueryError, match="max_nodes must be an integer >= 1"):
        anon.anonymize(df, QIS, H, k=5, search="heuristic", max_nodes=0)


def test_the_guides_cell_suppression_figures() -> None:
    """docs/anonymisation.md "Cell suppression": its block prints the figures it quotes."""
    import contextlib
    import io
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "anonymisation.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    use = [blocks[0]] + [b for b in blocks if b.startswith("g = anon.anonymize") or b.startswith("c = anon.anonymize")]
    assert len(use) == 3
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile("\n".join(use), "docs/anonymisation.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert "0 14005 8.6% 894 0.0766" in lines and "1135 0.1052 | 0 0.0853" in lines
