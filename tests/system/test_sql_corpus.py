"""A corpus of 122 analyst queries over the bundled Adult table (tests/system/sql_corpus.py):
pets answers at least 95% of the 113 a DP engine can answer, refuses the rest with a
pets.PetsError (never another exception), and its answered cells are accurate at ε = 1.

Noise cannot be seeded, so the accuracy assertions state their false-failure rate: each
reported interval covers its exact value with probability ≥ 0.95; over the ≥ 300
intervals the corpus yields, a coverage below 0.80 has probability at most
exp(−n·KL(0.80‖0.95)) = exp(−0.14·n) for independent intervals — below 1e-6 even if
the intervals sharing a release's noise made the effective n a third of it. The median
relative error is about 4e-4; it exceeds 0.01 only if more than half of the cells are
off by more than 1%, which at these noise scales (counts ± ~3 in thousands) needs
hundreds of tail events of probability < 1e-3 each.
"""

from __future__ import annotations

import pytest

from .sql_corpus import CORPUS, run_corpus, summary


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_corpus(epsilon=1.0, home=tmp_path_factory.mktemp("corpus"))


def test_the_corpus_is_large_and_mostly_answerable():
    assert len(CORPUS) >= 100
    assert sum(1 for _, a, _ in CORPUS if a) >= 100
    assert len({q for q, _, _ in CORPUS}) == len(CORPUS)


def test_nothing_crashes_outside_pets_errors(outcomes):
    crashed = [(o.sql, o.error) for o in outcomes if o.status == "crashed"]
    assert crashed == []


def test_at_least_95_percent_of_the_answerable_queries_are_answered(outcomes):
    s = summary(outcomes)
    assert s["answered"] >= 0.95 * s["answerable"], s["refused_answerable"]


def test_what_no_dp_engine_answers_is_refused_with_a_position_or_a_rule(outcomes):
    for o in outcomes:
        if not o.answerable:
            assert o.status == "refused", o.sql
            assert "at line" in o.error or "PolicyError" in o.error, o.error


def test_answered_cells_are_accurate_and_their_intervals_cover(outcomes):
    s = summary(outcomes)
    assert s["cells"] >= 300 and s["intervals"] >= 300, s
    assert s["median_relative_error"] < 0.01, s
    assert s["coverage"] >= 0.80, s
