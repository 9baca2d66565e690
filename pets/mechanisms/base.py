"""The mechanism protocol: what every release form implements for the one pipeline.

A release goes one way, whatever protects it (:mod:`pets.pipeline`)::

    grant check                    the analyst may ask this dataset for this purpose
    check_plan(policy, plan, form) negative list, columns, grades, identifiers, ε cap
    mechanism.compile(context)     → Compiled: its Charge (cost, quota), its explain()
    budget / quota check           refusals are audited
    compiled.run(engine, source)   exact work inside the holder's domain
    compiled.finish(exact)         noise, generalisation, encryption → the payload
    store: charge + audit          atomic; before anything leaves
    compiled.result(payload, ...)  the Release / Extract the analyst gets

A mechanism knows its protection; the session knows no mechanism by name. Two rules
make the side doors close for every form at once:

* everything ``compile`` and ``explanation`` say depends only on the plan, the
  protection, the policy and the schema — never on the rows (``compile`` must not call
  the engine);
* whatever ``run`` and ``finish`` raise is data-dependent: the pipeline charges the
  release anyway and raises :meth:`Compiled.failure` instead — a message fixed by the
  request, never by the data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..cost import Cost
from ..errors import DataError, PetsError
from ..plan import Plan
from ..protections import Protection

if TYPE_CHECKING:  # pragma: no cover
    from ..engines.base import Engine
    from ..holder import Dataset
    from ..release import Explanation
    from ..store.sqlite import Budget

__all__ = ["Charge", "Compiled", "Context", "Mechanism"]


@dataclass(frozen=True)
class Charge:
    """What a release costs, stated before the data is touched.

    ``cost`` is debited from the analyst's grant (``zdelta``: the approximate-zCDP δ of
    a Gaussian release); ``quota`` = ``(kind, limit)`` counts the release against a
    per-analyst limit of releases of that kind (``limit`` None: counted, unlimited);
    ``recall``: a repeated identical request gets the recorded answer at no cost (fresh
    noise would let the analyst average it away).
    """

    cost: Cost = field(default_factory=Cost)
    zdelta: float | None = None
    quota: tuple[str, int | None] | None = None
    recall: bool = False

    @property
    def spends(self) -> bool:
        return self.cost.epsilon > 0 or self.cost.delta > 0 or self.cost.rho > 0


@dataclass(frozen=True)
class Context:
    """What a mechanism compiles against: the request and the holder's side of it."""

    analyst: str
    purpose: str
    dataset: "Dataset"
    plan: Plan
    protection: Protection
    grant: "Budget"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def policy(self) -> Any:
        return self.dataset.policy

    @property
    def schema(self) -> dict[str, str]:
        return self.dataset.schema


class Compiled(ABC):
    """A compiled release: its charge, what explain says, and how to compute it."""

    charge: Charge
    #: after a counted release (``Charge.quota``): how many more the limit allows
    quota_left: int | None = None

    @abstractmethod
    def explanation(self, charged: Cost, remaining: Cost) -> "Explanation":
        """What ``explain`` reports when the release is allowed (data-independent)."""

    @abstractmethod
    def record(self) -> dict[str, Any]:
        """Audit fields describing the release (kind, plan, protection, ...; no raw values)."""

    @abstractmethod
    def run(self, engine: "Engine", source: Any) -> Any:
        """The exact part, inside the holder's domain (engine aggregates or columns)."""

    @abstractmethod
    def finish(self, exact: Any) -> Any:
        """The protected payload: noise, generalisation, encryption. Runs before the
        charge is committed but nothing of it leaves before the commit."""

    def check_ledger(self, store: Any) -> None:
        """Ledger checks of a form with its own quotas, before anything runs (explain
        reports them); PolicyError. Nothing here may read the rows."""

    def commit(self, store: Any, record: dict[str, Any]) -> int | None:
        """A form with its own quotas appends its audit record and counts itself here,
        in one store transaction, and returns the audit id; None: the pipeline's own
        commit (budget charge, or ``Charge.quota``)."""
        return None

    def record_result(self, payload: Any) -> dict[str, Any]:
        """Audit fields describing the released payload (sizes, levels; no raw values)."""
        return {}

    def encode(self, payload: Any) -> str:
        """The payload as stored for repeats (``Charge.recall``)."""
        raise NotImplementedError

    def decode(self, text: str) -> Any:
        raise NotImplementedError

    @abstractmethod
    def result(self, payload: Any, audit_id: int, spent: Cost, repeat_of: int | None) -> Any:
        """What the analyst gets."""

    def failure(self, audit_id: int) -> PetsError:
        """The error the analyst sees when ``run`` or ``finish`` failed: fixed by the
        request, never by the data (the cause goes to the holder's log)."""
        return DataError(
            f"this release could not be computed on the holder's data; it was charged and "
            f"nothing was released (audit record {audit_id}). The holder's log has the cause."
        )


class Mechanism(ABC):
    """A release form: compiles a plan under a protection into a :class:`Compiled`."""

    #: the Protection subclass this mechanism releases under
    protection_type: ClassVar[type]

    @abstractmethod
    def form(self, protection: Any) -> str:
        """The policy form the release needs (``allow`` in the grade rules)."""

    def epsilon(self, protection: Any) -> float | None:
        """The per-release ε the policy's ``max_epsilon`` caps (None: no ε)."""
        return None

    def check_request(self, plan: Plan, protection: Any) -> None:
        """Shape checks of the request alone (no policy, no data); QueryError."""

    @abstractmethod
    def compile(self, ctx: Context) -> Compiled:
        """Compile the release; PolicyError / QueryError, never touching the data."""
