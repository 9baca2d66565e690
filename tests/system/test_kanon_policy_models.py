"""The policy's ``[kanon]`` section: privacy models the holder requires of every
k-anonymous extract (average risk, population uniqueness, k-map and δ-presence against
a population file of the holder's), through the session on the bundled Adult data.
Each released extract is checked with pandas against the population file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pets
import pets.anon as anon
from pets.anon.policy import KanonPolicy

QIS = ["age", "sex", "race", "marital-status"]
PURPOSE = "research"


def _text() -> pd.DataFrame:
    return pd.read_csv(pets.example_data("adult"), dtype=str, skipinitialspace=True, keep_default_na=False)


pytestmark = pytest.mark.filterwarnings("ignore::pets.registration.RegistrationWarning")


def _home(tmp_path: Path, kanon: dict, share: float = 0.3) -> tuple[pets.Holder, Path]:
    """A 30% sample of Adult registered under the example policy plus ``kanon``; the
    whole table is the population file (``"POP"`` in the section stands for its path)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    df = _text()
    pop = tmp_path / "register.csv"
    df.to_csv(pop, index=False)
    sample = tmp_path / "sample.csv"
    df[np.random.default_rng(0).random(len(df)) < share].to_csv(sample, index=False)
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["kanon"] = {k: (str(pop) if v == "POP" else v) for k, v in kanon.items()}
    pol["dataset"]["max_extracts"] = 10
    h = pets.Holder(tmp_path / "home")
    h.register("adult", sample, pol)
    h.grant("alice", dataset="adult", purpose=PURPOSE, epsilon=1.0)
    return h, pop


def test_extract_meets_the_holders_models(tmp_path: Path) -> None:
    h, pop_path = _home(tmp_path, {"max_risk": 0.02, "k_map": 10, "delta_presence": [0.0, 0.4],
                                   "population": "POP"})
    s = h.session("alice", purpose=PURPOSE)
    x = s.release(s.table("adult").select(*QIS), pets.KAnonymity(k=5, max_suppression=0.05))
    sizes = x.df.groupby(QIS).size()
    assert len(sizes) / sizes.sum() <= 0.02
    population = pd.read_csv(pop_path, dtype=str, keep_default_na=False)
    H = anon.load_hierarchies(Path(pets.example_policy()).parent / "hierarchies", QIS)
    levels = x.transformation
    gp = pd.DataFrame({c: H[c].generalize(population[c], levels[c]) for c in QIS})
    F = gp.groupby(QIS).size()
    f = x.df.astype(str).groupby(QIS).size()
    F = F.reindex(f.index)
    assert (F >= 10).all() and ((f / F) <= 0.4 + 1e-12).all()
    # without the section the same request releases more detail (the models bind)
    h3, _ = _home(tmp_path / "c", {})
    s3 = h3.session("alice", purpose=PURPOSE)
    y = s3.release(s3.table("adult").select(*QIS), pets.KAnonymity(k=5, max_suppression=0.05))
    assert y.metrics["loss"] < x.metrics["loss"]


def test_uniqueness_and_estimated_k_map(tmp_path: Path) -> None:
    h, _ = _home(tmp_path, {"sample_fraction": 0.3, "max_uniqueness": 0.0005, "k_map": 20})
    s = h.session("alice", purpose=PURPOSE)
    x = s.release(s.table("adult").select(*QIS), pets.KAnonymity(k=5, max_suppression=0.05))
    sizes = x.df.groupby(QIS).size().to_numpy()
    assert anon.estimate_population_uniques(sizes, 0.3).share <= 0.0005
    assert sizes.min() >= anon.KMap(20, sample_fraction=0.3).derived_k()


def test_mondrian_refused_before_counting(tmp_path: Path) -> None:
    h, _ = _home(tmp_path, {"max_risk": 0.05})
    s = h.session("alice", purpose=PURPOSE)
    with pytest.raises(pets.PolicyError, match=r"the policy requires average risk <= 0.05 of every extract, "
                                               r"which needs algorithm='optimal'") as e:
        s.release(s.table("adult").select(*QIS), pets.KAnonymity(k=5, algorithm="mondrian"))
    assert e.value.rule == "kanon"
    x = s.release(s.table("adult").select(*QIS), pets.KAnonymity(k=5, max_suppression=0.05))
    assert x.extracts_left == 9  # the refusal was not counted


def test_impossible_extract_fails_with_the_fixed_message(tmp_path: Path) -> None:
    h, _ = _home(tmp_path, {"max_risk": 0.00001})
    s = h.session("alice", purpose=PURPOSE)
    with pytest.raises(pets.QueryError, match=r"^no k=5 extract of these columns exists within max_suppression=0 ") as e:
        s.release(s.table("adult").select(*QIS), pets.KAnonymity(k=5))
    assert "entropy" not in str(e.value) and "rows would" not in str(e.value)


@pytest.mark.parametrize("section,key,message", [
    ({"max_risk": 0}, "kanon.max_risk", r"must be a number in \(0, 1\], not 0"),
    ({"max_uniqueness": 0.01}, "kanon.max_uniqueness", "needs sample_fraction"),
    ({"k_map": 5}, "kanon.k_map", "needs population .* or sample_fraction"),
    ({"k_map": 1, "sample_fraction": 0.1}, "kanon.k_map", "must be an integer >= 2"),
    ({"delta_presence": [0.5, 0.2], "population": "p.csv"}, "kanon.delta_presence", "0 <= dmin <= dmax <= 1"),
    ({"delta_presence": [0.0, 0.2]}, "kanon.delta_presence", "needs population"),
    ({"population": "p.csv"}, "kanon.population", "is used by k_map or delta_presence"),
    ({"uniqueness_model": "argus"}, "kanon.uniqueness_model", "must be one of dankar, pitman, zayatz, snb"),
    ({"max_rsk": 0.1}, "kanon.max_rsk", "unknown key; accepted keys in \\[kanon\\]"),
])
def test_bad_kanon_section(section, key, message) -> None:
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["kanon"] = section
    with pytest.raises(pets.PolicyFormatError, match=message) as e:
        pets.Policy.from_dict(pol)
    assert e.value.key == key


def test_kanon_section_round_trips(tmp_path: Path) -> None:
    pol = pets.Policy.load(pets.example_policy("adult")).to_dict()
    pol["kanon"] = {"max_risk": 0.05, "k_map": 5, "population": "register.csv", "sample_fraction": 0.2,
                    "max_uniqueness": 0.001, "uniqueness_model": "zayatz", "delta_presence": [0, 0.5]}
    p = pets.Policy.from_dict(pol, base_dir=tmp_path)
    assert isinstance(p.kanon, KanonPolicy) and p.kanon.population == str(tmp_path / "register.csv")
    assert pets.Policy.from_dict(p.to_dict()) == p
    text = Path(pets.example_policy("adult")).read_text()
    toml = tmp_path / "p.toml"
    toml.write_text(text.replace("hierarchies/", str(Path(pets.example_policy()).parent / "hierarchies") + "/")
                    + "\n[kanon]\nmax_risk = 2\n")
    line = len(toml.read_text().splitlines())
    with pytest.raises(pets.PolicyFormatError, match=rf"line {line}: kanon.max_risk: must be a number in \(0, 1\]"):
        pets.Policy.load(toml)
