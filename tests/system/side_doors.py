"""The side-door harness: run one request on neighbouring datasets and compare
everything the analyst can observe.

pets promises that nothing an analyst can observe depends on the data unless it came
out of a charged mechanism. An observation here is what an analyst sees when sending
one request to a holder: the outcome (released, or which exception), the exception's
message, ``rule`` and ``column``, what ``explain`` says for the same request, the
metadata of a release (its cost, noise scales, columns) and whether the request was
charged (budget spent on any holder's ledger, or an extract counted against a quota).

:func:`check_case` builds D and each neighbour D' (one person added or removed) in
fresh holder homes with the same grants, observes the same request on each, and lists
every way the observations break the promise:

1. ``explain`` is identical on D and D' (it must not look at the data);
2. an exception's class, message, ``rule`` and ``column`` are identical on D and D';
3. where the outcomes differ (one released, the other refused or crashed), both runs
   were charged (the success/failure bit came out of a charged mechanism);
4. every release was charged (budget spent, or an extract counted);
5. the release metadata that is not mechanism output (cost, noise scales, columns —
   and the rows, for releases over public keys) is identical on D and D';
6. the outcome is the expected kind (released / refused, with the expected rule).

Everything goes through the public API. A new release form is one more :class:`Case`
in ``test_side_doors.py``: how to build its neighbours, the request as a function of a
:class:`World`, and the expected outcome.
"""

from __future__ import annotations

import pickle
import resource
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

import pets

ROOT = Path(__file__).resolve().parents[2]

ANALYST = "alice"
STRANGER = "mallory"  # an analyst with no grant at all
PURPOSE = "side-doors"

#: audit kinds whose releases are counted against a quota instead of spending ε
#: (k-anonymous extracts; exact HE totals once the policy can opt columns into them;
#: verification answers, counted per analyst and per subject)
COUNTED_KINDS = ("kanon", "he_exact", "verify")

#: a dataset as the holders keep it: one table per holder (name → table)
Data = dict[str, pd.DataFrame]


# --------------------------------------------------------------------------- worlds
@dataclass
class World:
    """One run: fresh holder homes holding one version of the data, with the grants."""

    dir: Path
    holders: dict[str, pets.Holder]
    dataset: str
    session: Any = None  # pets.Session or pets.FederatedSession, for ANALYST
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def holder(self) -> pets.Holder:
        return next(iter(self.holders.values()))

    def local(self, analyst: str = ANALYST) -> pets.Session:
        return self.holder.session(analyst, purpose=PURPOSE)


Setup = Callable[[Path, Data], World]


@dataclass(frozen=True)
class Neighbour:
    """How D' is made from D: ``change`` gets a copy of the table of the first holder."""

    name: str
    change: Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class Expect:
    """The expected outcome on every version of the data: ``"released"``,
    ``"refused"`` (a :class:`pets.PetsError`, optionally of class ``error`` with
    ``rule``) or ``"any"`` (only the neighbour invariants are checked)."""

    kind: str
    error: type[BaseException] | None = None
    rule: str | None = None
    base_only: bool = False  # expected on D only; the neighbours are held to the invariants

    def __str__(self) -> str:
        if self.kind != "refused":
            return self.kind + (" on D" if self.base_only else "")
        what = self.error.__name__ if self.error else "PetsError"
        return f"refused ({what}{', rule ' + self.rule if self.rule else ''})"


RELEASED = Expect("released")
#: released on D; on a neighbour any outcome the invariants allow (e.g. an extract
#: whose data leaves a hierarchy: refused, but then charged like the release)
RELEASED_ON_D = Expect("released", base_only=True)
REFUSED = Expect("refused")
ANY = Expect("any")


def refused(error: type[BaseException] = pets.PetsError, rule: str | None = None) -> Expect:
    return Expect("refused", error, rule)


@dataclass(frozen=True)
class Case:
    """One request, run on D and on each neighbour.

    ``data`` builds D (one table per holder); ``setup`` registers a version of it in
    fresh homes under ``dir`` with the grants and returns the :class:`World`;
    ``request`` is what the analyst does (returns the release); ``explain`` what
    ``explain`` says for the same request (None when the form has none, e.g. SQL text
    or a registration). ``release_form=False`` for requests that are not releases (a
    holder's registration): the charge checks do not apply. ``public_shape``: the
    release is over public keys, so its rows must not depend on the data either.
    ``isolate`` runs each world in a child process with a memory and time limit (a
    request that may crash the holder must not take pytest down with it).
    """

    name: str
    data: Callable[[], Data]
    setup: Setup
    request: Callable[[World], Any]
    expect: Expect
    neighbours: tuple[Neighbour, ...]
    explain: Callable[[World], Any] | None = None
    release_form: bool = True
    public_shape: bool = False
    isolate: bool = False
    why: str = ""  # what this case is about, for the report


# --------------------------------------------------------------------------- observing
@dataclass(frozen=True)
class Observation:
    """What the analyst observes from one request on one version of the data (plain
    values only, so it can cross a process boundary)."""

    outcome: str  # "released", an exception class name, "crashed: ...", "setup failed: ..."
    message: str | None = None
    rule: str | None = None
    column: str | None = None
    is_pets_error: bool = False
    explain: Any = None
    charged: bool = False
    spent: tuple[Any, ...] = ()
    counted: int = 0
    meta: Any = None

    @property
    def released(self) -> bool:
        return self.outcome == "released"

    def error_view(self) -> tuple[Any, ...]:
        return (self.outcome, self.message, self.rule, self.column)

    def brief(self) -> str:
        if self.released:
            return f"released (charged={self.charged}, spent={self.spent}, counted={self.counted})"
        rule = f" rule={self.rule!r}" if self.rule else ""
        col = f" column={self.column!r}" if self.column else ""
        return f"{self.outcome}{rule}{col}: {self.message!r} (charged={self.charged})"


def _cost_tuple(c: Any) -> tuple[float, float, float]:
    return (float(c.epsilon), float(c.delta), float(getattr(c, "rho", 0.0)))


def _ledger(world: World, analyst: str) -> tuple[tuple[tuple[float, float, float], ...], int]:
    """Each holder's remaining budget for ``analyst`` and the releases counted against
    a quota (status "released" of a counted kind) in the holders' audit logs."""
    rem, counted = [], 0
    for h in world.holders.values():
        try:
            rem.append(_cost_tuple(h.remaining(analyst, dataset=world.dataset, purpose=PURPOSE)))
        except Exception:  # noqa: BLE001 — no dataset yet (a registration case)
            rem.append((0.0, 0.0, 0.0))
        try:
            recs = h.audit().records(analyst=analyst, status="released")
        except Exception:  # noqa: BLE001
            recs = []
        counted += sum(1 for r in recs if r.get("kind") in COUNTED_KINDS and not r.get("repeat_of"))
    return tuple(rem), counted


def plain(x: Any) -> Any:
    """``x`` with NaN made comparable (NaN != NaN would make equal views differ) and
    containers made tuples."""
    if isinstance(x, float) and x != x:
        return "NaN"
    if isinstance(x, dict):
        return tuple((str(k), plain(v)) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return tuple(plain(v) for v in x)
    if isinstance(x, pd.DataFrame):
        return plain(x.to_dict("records"))
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        try:
            return plain(x.item())
        except (TypeError, ValueError):
            return repr(x)
    return x


def _frame_view(df: Any) -> Any:
    return plain(df)


def explain_view(e: Any) -> Any:
    """What ``explain`` shows, as plain values."""
    if isinstance(e, pets.Explanation):
        return plain((
            ("str", str(e)),
            ("allowed", e.allowed),
            ("rule", e.rule),
            ("message", e.message),
            ("column", e.column),
            ("cost", _cost_tuple(e.cost)),
            ("scale", sorted(e.scale.items())),
            ("ci_width", sorted(e.ci_width.items())),
            ("details", _frame_view(e.details)),
        ))
    if isinstance(e, Mapping):  # a federated explain: per holder
        return tuple(sorted((str(k), repr(v)) for k, v in e.items()))
    return repr(e)


def _error_fields(e: BaseException) -> dict[str, Any]:
    return dict(
        outcome=type(e).__name__,
        message=str(e),
        rule=getattr(e, "rule", None),
        column=getattr(e, "column", None),
        is_pets_error=isinstance(e, pets.PetsError),
    )


def release_meta(r: Any, public_shape: bool) -> Any:
    """What a release shows besides the mechanism's output (a DataFrame — a dummy
    table, which no mechanism made — is shown whole, with its dtypes)."""
    if isinstance(r, pd.DataFrame):
        return ("DataFrame", tuple(map(str, r.columns)), tuple(map(str, r.dtypes)),
                _frame_view(r))
    if type(r).__name__ in ("Verification", "BatchVerification"):  # the answers are its output
        rows = len(r.df) if hasattr(r, "df") else 1
        return (type(r).__name__, _cost_tuple(r.spent), r.answers_left, rows)
    if isinstance(r, pets.Extract):
        return ("Extract", _cost_tuple(r.spent), r.extracts_left, tuple(map(str, r.df.columns)))
    if isinstance(r, pets.Release):
        keys = [c for c in r.df.columns if c in {g.column for g in r.plan.group_by}]
        rows = _frame_view(r.df[keys]) if public_shape and keys else (len(r.df) if public_shape else None)
        return plain(("Release", _cost_tuple(r.spent), sorted(r.scale.items()),
                tuple(map(str, r.df.columns)), rows,
                tuple(sorted(r.audit_ids)) if r.audit_ids else None))
    return (type(r).__name__,)


def observe_world(case: Case, world: World, analyst: str = ANALYST) -> Observation:
    """Run ``case``'s explain and request on ``world``; what the analyst observes."""
    if case.explain is None:
        expl = None
    else:
        try:
            expl = explain_view(case.explain(world))
        except BaseException as e:  # noqa: BLE001 — an exception is an observation
            f = _error_fields(e)
            expl = ("raised", f["outcome"], f["message"], f["rule"], f["column"])
    before, counted0 = _ledger(world, analyst)
    fields: dict[str, Any]
    meta = None
    try:
        r = case.request(world)
        fields = dict(outcome="released")
        meta = release_meta(r, case.public_shape)
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        fields = _error_fields(e)
    after, counted1 = _ledger(world, analyst)
    spent = tuple(
        tuple(round(b - a, 12) for b, a in zip(x, y)) for x, y in zip(before, after)
    )
    charged = any(any(v > 0 for v in s) for s in spent) or counted1 > counted0
    return Observation(**fields, explain=expl, charged=charged, spent=spent,
                       counted=counted1 - counted0, meta=meta)


def worlds_data(case: Case) -> list[tuple[str, Data]]:
    """D and each neighbour D' (the change applies to the first holder's table)."""
    base = case.data()
    out = [("D", base)]
    first = next(iter(base))
    for nb in case.neighbours:
        d = {k: v.copy() for k, v in base.items()}
        d[first] = nb.change(d[first].copy()).reset_index(drop=True)
        out.append((nb.name, d))
    return out


def observe(case: Case, name: str, data: Data, root: Path) -> Observation:
    """Build one world in a fresh directory and observe the case on it."""
    d = root / f"{case.name}-{name}".replace("/", "_")
    d.mkdir(parents=True, exist_ok=True)
    if case.isolate:
        return _observe_isolated(case, name, data, d)
    try:
        world = case.setup(d, data)
    except Exception as e:  # noqa: BLE001
        return Observation(outcome=f"setup failed: {type(e).__name__}", message=str(e)[:300])
    return observe_world(case, world)


#: limits of a child process running an isolated world
CHILD_MEMORY = 3 * 2**30
CHILD_SECONDS = 90


def _observe_isolated(case: Case, name: str, data: Data, d: Path) -> Observation:
    """Run one world in a child process: a crash (SIGSEGV, out of memory) is an
    observation — the analyst sees the holder die — not the end of the test run."""
    data_file = d / "data.pkl"
    out_file = d / "observation.pkl"
    with open(data_file, "wb") as f:
        pickle.dump(data, f)
    module = sys.modules[case.request.__module__].__name__
    code = textwrap.dedent(f"""
        import pickle, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        from pathlib import Path
        import importlib
        mod = importlib.import_module({module!r})
        sd = importlib.import_module({module.rsplit(".", 1)[0] + ".side_doors"!r})
        case = next(c for c in mod.CASES if c.name == {case.name!r})
        data = pickle.load(open({str(data_file)!r}, "rb"))
        try:
            world = case.setup(Path({str(d)!r}), data)
        except Exception as e:
            obs = sd.Observation(outcome="setup failed: " + type(e).__name__, message=str(e)[:300])
        else:
            obs = sd.observe_world(case, world)
        pickle.dump(obs, open({str(out_file)!r}, "wb"))
    """)

    def limit() -> None:  # pragma: no cover — runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    try:
        p = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True,
                           text=True, timeout=CHILD_SECONDS, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return Observation(outcome="crashed: timeout", message=f"no answer in {CHILD_SECONDS} s")
    if p.returncode != 0 or not out_file.exists():
        sig = -p.returncode if p.returncode < 0 else None
        what = f"signal {sig}" if sig else f"exit {p.returncode}"
        tail = (p.stderr or "").strip().splitlines()[-1:] or [""]
        return Observation(outcome=f"crashed: {what}", message=tail[0][:300])
    with open(out_file, "rb") as f:
        return pickle.load(f)


# --------------------------------------------------------------------------- checking
def violations(case: Case, obs: list[tuple[str, Observation]]) -> list[str]:
    """Every way the observations break the promise (empty: the case passes); the same
    finding on several worlds is listed once, naming them."""
    merged: dict[str, list[str]] = {}
    for line in _violations(case, obs):
        where, _, text = line.partition("] ")
        merged.setdefault(text, []).append(where.lstrip("["))
    return [f"[{', '.join(w)}] {text}" for text, w in merged.items()]


def _violations(case: Case, obs: list[tuple[str, Observation]]) -> list[str]:
    out: list[str] = []
    (_, base), others = obs[0], obs[1:]
    for name, o in obs:
        if o.outcome.startswith("setup failed"):
            out.append(f"[{name}] {o.outcome}: {o.message}")
            continue
        if case.release_form and o.released and not o.charged:
            out.append(f"[{name}] released without a charge: {o.brief()}")
        e = case.expect
        if e.base_only and name != "D":
            pass
        elif e.kind == "released" and not o.released:
            out.append(f"[{name}] expected a release, got {o.brief()}")
        elif e.kind == "refused":
            if o.released:
                out.append(f"[{name}] expected {e}, got {o.brief()}")
            elif not o.is_pets_error:
                out.append(f"[{name}] expected {e}, got a non-pets error {o.brief()}")
            elif e.error is not None and not _is_class(o.outcome, e.error):
                out.append(f"[{name}] expected {e}, got {o.brief()}")
            elif e.rule is not None and o.rule != e.rule:
                out.append(f"[{name}] expected {e}, got {o.brief()}")
        elif e.kind == "any" and not o.released and not o.is_pets_error:
            out.append(f"[{name}] not a pets error: {o.brief()}")
    for name, o in others:
        if base.outcome.startswith("setup failed") or o.outcome.startswith("setup failed"):
            continue
        if base.explain != o.explain:
            a, b = _first_difference(base.explain, o.explain)
            out.append(f"[D vs {name}] explain differs:\n    D:  {_short(a)}\n"
                       f"    D': {_short(b)}")
        if not base.released and not o.released and base.error_view() != o.error_view():
            out.append(f"[D vs {name}] the refusal differs:\n    D:  {base.brief()}\n"
                       f"    D': {o.brief()}")
        if base.released != o.released and case.release_form and not (base.charged and o.charged):
            out.append(f"[D vs {name}] outcome differs and not both were charged:\n"
                       f"    D:  {base.brief()}\n    D': {o.brief()}")
        if base.released and o.released and base.meta != o.meta:
            a, b = _first_difference(base.meta, o.meta)
            out.append(f"[D vs {name}] release metadata differs:\n    D:  {_short(a)}\n"
                       f"    D': {_short(b)}")
    return out


def _first_difference(a: Any, b: Any) -> tuple[Any, Any]:
    """The first differing parts of two equal-shaped views (for readable reports)."""
    while isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if i is None:
            break
        a, b = a[i], b[i]
    return a, b


def _is_class(name: str, cls: type[BaseException]) -> bool:
    return any(c.__name__ == name for c in _subclasses(cls))


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for s in cls.__subclasses__():
        out += _subclasses(s)
    return out


def _short(x: Any, n: int = 400) -> str:
    s = repr(x)
    return s if len(s) <= n else s[:n] + "…"


def run_case(case: Case, root: Path) -> list[tuple[str, Observation]]:
    return [(name, observe(case, name, data, root)) for name, data in worlds_data(case)]


def check_case(case: Case, root: Path) -> list[tuple[str, Observation]]:
    """Observe ``case`` on D and its neighbours; fail with every violation found."""
    obs = run_case(case, root)
    bad = violations(case, obs)
    if bad:
        lines = [f"side door in case {case.name!r} ({case.why or 'no description'}); "
                 f"expected {case.expect}:"] + bad
        lines.append("observations:")
        lines += [f"  {name}: {o.brief()}" for name, o in obs]
        raise AssertionError("\n".join(lines))
    return obs


def tmpdir(prefix: str = "side-doors-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


__all__ = [
    "ANALYST", "ANY", "Case", "Data", "Expect", "Neighbour", "Observation", "PURPOSE",
    "RELEASED", "RELEASED_ON_D", "REFUSED", "STRANGER", "World", "check_case", "explain_view", "observe",
    "observe_world", "refused", "run_case", "violations", "worlds_data",
]
