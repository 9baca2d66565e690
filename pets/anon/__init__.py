"""Anonymisation: hierarchies, privacy models, optimal full-domain search, Mondrian,
utility and risk metrics — usable on their own, and behind ``pets.KAnonymity``.

>>> import pets.anon as anon                                             # doctest: +SKIP
>>> h = anon.load_hierarchies("hierarchies/", ["age", "sex", "zip"])      # doctest: +SKIP
>>> r = anon.anonymize(df, ["age", "sex", "zip"], h, k=5, max_suppression=0.05)  # doctest: +SKIP
>>> r.df, r.transformation, r.suppressed, r.metrics                       # doctest: +SKIP
>>> anon.risk(df, ["age", "sex", "zip"], sample_fraction=0.01)          # doctest: +SKIP
>>> anon.anonymize(df, qis, h, k=2, models=[anon.KMap(5, sample_fraction=0.01)])  # doctest: +SKIP
>>> r.metrics_table                                  # every metric per QI   # doctest: +SKIP
"""

from .anonymize import AnonymizationResult, anonymize, load_hierarchies
from .hierarchy import EncodedHierarchy, Hierarchy
from .heuristic import heuristic_full_domain
from .lattice import SearchResult, optimal_full_domain
from .local import LocalResult, local_recoding
from .metrics import (
    aecs,
    arx_aecs,
    class_sizes,
    classes,
    discernibility,
    dm_star,
    entropy,
    height,
    loss,
    metrics_table,
    monotonic_precision,
    precision,
    size_distribution,
    summary,
)
from .models import (
    AverageReidentificationRisk,
    DeltaPresence,
    DistinctLDiversity,
    EntropyLDiversity,
    KAnonymity,
    KMap,
    PopulationUniqueness,
    PrivacyModel,
    RecursiveCLDiversity,
    SampleUniques,
    TCloseness,
)
from .risk import UniquenessEstimate, estimate_population_uniques, population_uniqueness, risk
from .mondrian import MondrianResult, mondrian
from .order import shuffled

__all__ = [
    "AnonymizationResult",
    "shuffled",
    "AverageReidentificationRisk",
    "DeltaPresence",
    "KMap",
    "PopulationUniqueness",
    "SampleUniques",
    "UniquenessEstimate",
    "estimate_population_uniques",
    "population_uniqueness",
    "DistinctLDiversity",
    "EncodedHierarchy",
    "EntropyLDiversity",
    "Hierarchy",
    "KAnonymity",
    "LocalResult",
    "MondrianResult",
    "PrivacyModel",
    "RecursiveCLDiversity",
    "SearchResult",
    "TCloseness",
    "aecs",
    "anonymize",
    "arx_aecs",
    "class_sizes",
    "classes",
    "discernibility",
    "dm_star",
    "entropy",
    "height",
    "heuristic_full_domain",
    "load_hierarchies",
    "local_recoding",
    "loss",
    "metrics_table",
    "mondrian",
    "monotonic_precision",
    "optimal_full_domain",
    "precision",
    "risk",
    "size_distribution",
    "summary",
]
