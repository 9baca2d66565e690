"""Protections: how an answer is released."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import QueryError

__all__ = ["Protection", "DP", "KAnonymity", "HE", "protection_from_dict", "NOISES"]

#: noise distributions a DP release can use
NOISES = ("laplace", "gaussian")

#: The range of ε one DP release may ask for. Below it the noise outgrows any 64-bit
#: answer; above it the Gaussian calibration overflows (exp of ε) and the noise is
#: nil anyway. Every (ε, δ) the constructor accepts compiles without an OpenDP error.
MIN_EPSILON = 1e-9
MAX_EPSILON = 1e9
#: Gaussian noise: the (ε, δ) → ρ conversion overflows a double beyond about ε = 1.4e5.
MAX_GAUSSIAN_EPSILON = 1e4
#: Largest k (and l) of a k-anonymous extract: far beyond any table a holder serves.
MAX_K = 10**9
#: the largest node budget of a governed heuristic search (KAnonymity(max_nodes=...))
MAX_NODES = 10**7
#: KAnonymity's search options: None means the policy's [kanon] default
_KANON_OPTIONS = ("gs_factor", "aggregation", "search", "max_nodes", "recoding", "t_distance")
#: A nonzero δ is at least this (smaller ones underflow when split across measurements).
MIN_DELTA = 1e-100


def _shown(v: object) -> str:
    """``repr(v)``, but a huge integer by its size (a message stays one short line)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**20:
        return f"an integer of {len(str(abs(v)))} digits"
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def check_epsilon(e: object, what: str, upper: float = MAX_EPSILON) -> float:
    """``e`` as a float in [MIN_EPSILON, upper], or QueryError naming ``what``.
    Compared before any conversion, so that a huge integer is no OverflowError."""
    if isinstance(e, bool) or not isinstance(e, (int, float)) or not e > 0 or e != e:
        raise QueryError(f"{what} must be a finite number > 0, got {_shown(e)}")
    if not MIN_EPSILON <= e <= upper:
        raise QueryError(
            f"{what} must be a finite number > 0 between {MIN_EPSILON:g} and {upper:g}, "
            f"got {_shown(e)}"
        )
    return float(e)


def check_delta(d: object, what: str) -> float:
    """``d`` as a float: 0, or in [MIN_DELTA, 1); QueryError naming ``what`` otherwise."""
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not (0 <= d < 1):
        raise QueryError(f"{what} must be a number in [0, 1), got {_shown(d)}")
    if 0 < d < MIN_DELTA:
        raise QueryError(
            f"{what} must be a number in [0, 1): 0, or at least {MIN_DELTA:g}, got {_shown(d)}"
        )
    return float(d)


class Protection:
    """Base class of the release protections."""

    form: str = ""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class DP(Protection):
    """Differential privacy with budget ``epsilon`` (and ``delta``) for one release.

    Guarantee: the released values are (ε, δ)-differentially private with respect to
    adding or removing one person (the policy's privacy unit; one row per person when
    it names none), with each person's contribution bounded as the policy says.

    ``noise="laplace"`` (default): discrete Laplace noise; counts, sums and means over
    public keys are pure ε-DP and spend δ = 0 whatever ``delta`` allows (apart from a
    sampler allowance of at most δ/100 on releases with many cells, see docs/dp.md).
    ``noise="gaussian"``: discrete Gaussian noise calibrated to the ρ-zCDP that implies
    (ε, δ)-DP (needs ``delta > 0``); better than Laplace for releases with many
    measurements or many groups per person, and composes in ρ on a grant with
    ``accounting="zcdp"``.

    Ranges: ``MIN_EPSILON`` (1e-9) ≤ ε ≤ ``MAX_EPSILON`` (1e9, as a grant; 1e4 with Gaussian noise,
    whose calibration overflows beyond); δ is 0 or ``MIN_DELTA`` (1e-100) ≤ δ < 1.
    """

    epsilon: float
    delta: float = 0.0
    noise: str = "laplace"
    form = "dp"

    def __post_init__(self) -> None:
        if not isinstance(self.noise, str) or self.noise not in NOISES:
            raise QueryError(
                f"DP(noise=...) must be one of {', '.join(map(repr, NOISES))}, got {_shown(self.noise)}"
            )
        upper = MAX_GAUSSIAN_EPSILON if self.noise == "gaussian" else MAX_EPSILON
        e = check_epsilon(self.epsilon, "DP(epsilon=...)", upper)
        d = check_delta(self.delta, "DP(delta=...)")
        if self.noise == "gaussian" and d == 0:
            raise QueryError(
                "Gaussian noise needs delta > 0: e.g. pets.DP(epsilon=1.0, delta=1e-6, "
                "noise='gaussian'); for pure DP (delta = 0) use the default Laplace noise"
            )
        object.__setattr__(self, "epsilon", float(e))
        object.__setattr__(self, "delta", float(d))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"form": "dp", "epsilon": self.epsilon, "delta": self.delta}
        if self.noise != "laplace":
            out["noise"] = self.noise
        return out


@dataclass(frozen=True)
class KAnonymity(Protection):
    """A k-anonymous extract of the selected columns.

    Guarantee: every released row shares its quasi-identifier values (the selected
    columns the policy marks ``quasi_identifier``) with at least ``k - 1`` other released
    rows; with ``l`` every class holds at least l distinct (or entropy-, recursive-)
    values of each ``sensitive`` column; with ``t`` each class's distribution of it is
    within Earth Mover's Distance t of the whole table's. Up to ``max_suppression`` of
    the rows may be left out. ``algorithm="optimal"`` searches full-domain
    generalisations of the policy's hierarchies for the least ``metric`` loss;
    ``"mondrian"`` recodes locally (ranges per class). The guarantee holds for one
    extract; several extracts of the same people can be linked, so the policy limits
    how many an analyst may take.

    The search options (None: the policy's ``[kanon]`` default, else the library's):
    ``gs_factor`` and ``aggregation`` shape the ``metric``; ``search`` is ``"optimal"``,
    ``"heuristic"`` or ``"auto"``, the heuristic bounded by ``max_nodes`` lattice nodes
    (never by time, so the extract does not depend on the machine's speed);
    ``recoding`` is ``"global"``, ``"local"`` or ``"cells"`` (cell suppression);
    ``t_distance`` is ``"equal"``, ``"ordered"`` or ``"hierarchical"``. The policy's
    ``[kanon]`` section says which values an analyst may choose
    (docs/policy.md#kanon).
    """

    k: int
    l: float | None = None
    t: float | None = None
    sensitive: str | tuple[str, ...] | None = None
    max_suppression: float = 0.0
    algorithm: str = "optimal"
    metric: str = "loss"
    l_kind: str = "distinct"
    gs_factor: float | None = None
    aggregation: str | None = None
    search: str | None = None
    max_nodes: int | None = None
    recoding: str | None = None
    t_distance: str | None = None
    form = "kanon"

    def __post_init__(self) -> None:
        from .anon.anonymize import L_KINDS, RECODINGS, SEARCHES
        from .anon.lattice import METRICS
        from .anon.metrics import AGGREGATIONS
        from .anon.models import T_DISTANCES

        for name, allowed in (("aggregation", AGGREGATIONS), ("search", SEARCHES),
                              ("recoding", RECODINGS), ("t_distance", T_DISTANCES)):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or v not in allowed):
                raise QueryError(
                    f"KAnonymity({name}=...) must be one of {', '.join(map(repr, allowed))}, got {_shown(v)}"
                )
        gs = self.gs_factor
        if gs is not None and (isinstance(gs, bool) or not isinstance(gs, (int, float)) or not 0 <= gs <= 1):
            raise QueryError(f"KAnonymity(gs_factor=...) must be a number in [0, 1], got {_shown(gs)}")
        mn = self.max_nodes
        if mn is not None and (isinstance(mn, bool) or not isinstance(mn, int) or not 1 <= mn <= MAX_NODES):
            raise QueryError(
                f"KAnonymity(max_nodes=...) must be an integer from 1 to {MAX_NODES:,}, got {_shown(mn)}"
            )
        if self.algorithm == "mondrian" and any(
                getattr(self, a) is not None for a in ("gs_factor", "aggregation", "search", "max_nodes", "recoding")):
            raise QueryError(
                "KAnonymity(gs_factor, aggregation, search, max_nodes, recoding) apply to "
                "algorithm='optimal' (Mondrian recodes locally by itself)"
            )
        if self.t_distance is not None and self.t is None:
            raise QueryError("KAnonymity(t_distance=...) needs t=<threshold>")
        if self.recoding == "cells" and (self.search not in (None, "optimal") or self.max_nodes is not None):
            raise QueryError(
                "KAnonymity(search=..., max_nodes=...) choose the lattice search of recoding='global' "
                "or 'local'; recoding='cells' searches no lattice"
            )
        if self.aggregation is not None and self.algorithm == "optimal":
            from .anon.metrics import PER_QI_METRICS

            if self.metric not in PER_QI_METRICS:
                raise QueryError(
                    f"KAnonymity(aggregation=...) applies only to the per-quasi-identifier metrics "
                    f"({', '.join(map(repr, PER_QI_METRICS))}); metric={self.metric!r} is one number "
                    "for the whole table"
                )

        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise QueryError(f"KAnonymity(k=...) must be an integer >= 2, got {_shown(self.k)}")
        if self.k > MAX_K:
            raise QueryError(f"KAnonymity(k=...) must be an integer from 2 to {MAX_K:,}, got {_shown(self.k)}")
        if self.l is not None and (isinstance(self.l, bool) or not isinstance(self.l, (int, float))
                                   or not 1 <= self.l <= MAX_K):
            raise QueryError(f"KAnonymity(l=...) must be a number from 1 to {MAX_K:,}, got {_shown(self.l)}")
        if self.t is not None and (isinstance(self.t, bool) or not isinstance(self.t, (int, float))
                                   or not 0 <= self.t <= 1):
            raise QueryError(f"KAnonymity(t=...) must be a number in [0, 1], got {_shown(self.t)}")
        ms = self.max_suppression
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= 1:
            raise QueryError(f"KAnonymity(max_suppression=...) must be a share in [0, 1], got {_shown(ms)}")
        if not isinstance(self.algorithm, str) or self.algorithm not in ("optimal", "mondrian"):
            raise QueryError(
                f"KAnonymity(algorithm=...) must be 'optimal' or 'mondrian', got {_shown(self.algorithm)}"
            )
        if not isinstance(self.metric, str) or self.metric not in METRICS:
            raise QueryError(
                f"KAnonymity(metric=...) must be one of {', '.join(map(repr, METRICS))}, "
                f"got {_shown(self.metric)}"
            )
        if not isinstance(self.l_kind, str) or self.l_kind not in L_KINDS:
            raise QueryError(
                f"KAnonymity(l_kind=...) must be one of {', '.join(map(repr, L_KINDS))}, "
                f"got {_shown(self.l_kind)}"
            )
        if isinstance(self.sensitive, list):
            object.__setattr__(self, "sensitive", tuple(self.sensitive))
        sens = self.sensitive
        if sens is not None and not (
            (isinstance(sens, str) and sens)
            or (isinstance(sens, tuple) and sens and all(isinstance(c, str) and c for c in sens))
        ):
            raise QueryError(
                "KAnonymity(sensitive=...) must be a column name or a list of column names, "
                f"got {_shown(sens)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "form": "kanon", "k": self.k, "l": self.l, "t": self.t,
            "sensitive": list(self.sensitive) if isinstance(self.sensitive, tuple) else self.sensitive,
            "max_suppression": self.max_suppression, "algorithm": self.algorithm,
            "metric": self.metric, "l_kind": self.l_kind,
            # the search options only when chosen (a server without them reads the rest)
            **{a: getattr(self, a) for a in _KANON_OPTIONS if getattr(self, a) is not None},
        }


@dataclass(frozen=True)
class HE(Protection):
    """Totals aggregated under Paillier encryption across the holders of a federation.

    Each holder computes its partial aggregates inside its own domain, through its own
    release pipeline under the same rules as a DP release (grades, identifiers, the
    ``max_epsilon`` cap, its own budget), encrypts them (packed) under the federation's
    threshold key and hands over only ciphertexts; the product of the ciphertexts is
    decrypted by ``threshold`` (≥ 2) holders together.

    With ``dp=pets.DP(epsilon)`` (policy form ``he``) every holder adds its own discrete
    Laplace noise of the full scale before encrypting, so the released total is
    ε-differentially private for the people of every holder even against a coalition of
    all other holders and the decryptors (the total carries the sum of the holders'
    noises: a wider interval than central DP, reported by ``ci()``).

    Without ``dp`` (policy form ``he_exact``, which a policy must allow explicitly) the
    totals are exact: no DP guarantee; each such release is counted against the
    policy's ``max_exact_totals`` and small groups are withheld.

    Threat model: honest-but-curious parties; fewer than ``threshold`` colluding
    decryptors learn nothing; a dealer makes the key shares and must forget them. The
    in-process :class:`pets.Federation` is its own dealer and keeps every share and every
    holder in one process, so it simulates the split of trust rather than providing it
    (see :mod:`pets.federation`). ``key_bits`` is the Paillier modulus size (3072:
    128-bit security; 2048: 112-bit).
    """

    key_bits: int = 3072
    dp: DP | None = None
    form = "he"

    def __post_init__(self) -> None:
        if self.key_bits not in (2048, 3072, 4096):
            raise QueryError(f"HE(key_bits=...) must be 2048, 3072 or 4096, got {self.key_bits!r}")
        if self.dp is not None and not isinstance(self.dp, DP):
            raise QueryError("HE(dp=...) takes pets.DP(epsilon=...)")
        if self.dp is not None and self.dp.noise != "laplace":
            raise QueryError(
                "HE(dp=...) adds discrete Laplace noise at each holder; Gaussian noise is not "
                "supported in federated releases yet: use pets.DP(epsilon=...) without noise="
            )

    def to_dict(self) -> dict[str, Any]:
        return {"form": "he", "key_bits": self.key_bits,
                "dp": self.dp.to_dict() if self.dp is not None else None}


def protection_from_dict(d: dict[str, Any]) -> Protection:
    """A protection from its JSON form (what ``to_dict`` writes); QueryError when malformed."""
    if not isinstance(d, dict):
        raise QueryError(f"a protection must be a JSON object, got {type(d).__name__}")
    form = d.get("form")
    try:
        if form == "dp":
            extra = set(d) - {"form", "epsilon", "delta", "noise"}
            if extra:
                raise TypeError(f"unexpected keys {sorted(map(str, extra))}")
            return DP(epsilon=d["epsilon"], delta=d.get("delta", 0.0), noise=d.get("noise", "laplace"))
        if form == "kanon":
            return KAnonymity(**{k: v for k, v in d.items() if k != "form"})
        if form == "he":
            extra = set(d) - {"form", "key_bits", "dp"}
            if extra:
                raise TypeError(f"unexpected keys {sorted(map(str, extra))}")
            dp = d.get("dp")
            return HE(key_bits=d.get("key_bits", 3072), dp=protection_from_dict(dp) if dp else None)  # type: ignore[arg-type]
    except (KeyError, TypeError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise QueryError(f"malformed {form} protection: {what[:120]}") from None
    raise QueryError(f"unknown protection {_shown(form)}; use one of 'dp', 'kanon', 'he'")
