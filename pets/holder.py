"""The data holder: datasets with their policies, grants, the ledger and the audit log.

>>> import pets, tempfile
>>> holder = pets.Holder(tempfile.mkdtemp())
>>> report = holder.register("adult", pets.example_data("adult"), pets.example_policy("adult"))
>>> holder.grant("alice", dataset="adult", purpose="labour-stats", epsilon=1.0)
>>> s = holder.session("alice", purpose="labour-stats")

All state lives in SQLite under ``home``: a second Holder on the same home (another
process, after a restart) sees the same datasets, grants, spent budget and audit log.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import unicodedata
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .cost import Cost
from .dp.aggregate import sum_factor
from .engines.base import AggregateRequest, Engine, Measure, Ordinals, Source
from .engines.config import engine_for_home
from .engines.hot import reads_once
from .errors import DataError, PolicyError, PolicyFormatError, QueryError
from .plan import RESERVED_PREFIX
from .policy import Policy
from .registration import RegistrationReport, RegistrationWarning
from .registration import build as build_report
from .protections import MAX_EPSILON, MAX_GAUSSIAN_EPSILON, check_delta, check_epsilon
from .store import Store
from .store.audit import policy_version as policy_digest

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Holder", "Dataset"]

# matched with fullmatch: "$" would also accept a trailing newline
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
#: Largest total ε of a grant with basic accounting (zcdp: MAX_GAUSSIAN_EPSILON, beyond
#: which the conversion to ρ overflows).
MAX_GRANT_EPSILON = MAX_EPSILON
#: Longest purpose a grant or a session may name (it is stored in every audit record).
MAX_PURPOSE = 200
#: Purposes that would read as "any purpose" (compared case-insensitively).
_WILDCARDS = frozenset({"*", "any", "all", "every", "everything", "anything", "any purpose",
                        "all purposes"})
#: Longest column name a source may have.
MAX_COLUMN_NAME = 255
_GRANT_COLUMNS = ["analyst", "dataset", "purpose", "accounting", "epsilon", "delta",
                  "spent_epsilon", "spent_delta", "remaining_epsilon", "remaining_delta"]
_RHO_COLUMNS = ["rho", "spent_rho", "remaining_rho"]
_CSV = (".csv", ".txt", ".tsv", ".csv.gz")
_PARQUET = (".parquet", ".pq")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise QueryError(
            f"{what} {name!r} is not valid: use letters, digits, '_' or '-', starting with a "
            "letter or '_' (at most 64 characters)"
        )
    return name


@dataclass(frozen=True)
class Dataset:
    """A registered dataset as the holder sees it (never shown to analysts)."""

    name: str
    source: Source
    policy: Policy
    schema: dict[str, str]
    version: str = ""  # changes whenever the data or the policy is registered anew
    policy_version: str = ""  # the digest audit records name (pets.store.policy_version)
    engine: str = "duckdb"  # the engine that runs its releases: "duckdb" or "spark"


class Holder:
    """A data holder's home: registered datasets, grants, ledger and audit log."""

    def __init__(self, home: str | os.PathLike[str], *, engine: Engine | None = None,
                 audit_key: str | os.PathLike[str] | None = None,
                 spark: Engine | None = None) -> None:
        """``audit_key``: the file of the key that signs the audit log (default
        ``$PETS_AUDIT_KEY``, else ``home/audit-key.pem``, created on first use); see
        :mod:`pets.store.keys` and docs/governance.md.

        ``spark``: the :class:`pets.engines.spark.SparkEngine` for datasets registered
        with ``engine="spark"``; without one, the holder starts one on first use, with
        the master and options of ``home/spark.toml`` (default ``local[2]``; see
        docs/scale-spark.md)."""
        self.home = Path(home).expanduser().resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self._store = Store(self.home, audit_key=audit_key)
        # the default engine spills inside the home, sized by home/engine.toml (if any)
        self._engine: Engine = engine if engine is not None else engine_for_home(self.home)
        self._spark: Engine | None = spark
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, Dataset]] = {}

    def __repr__(self) -> str:
        return f"Holder({str(self.home)!r}, datasets={self.datasets()})"

    # -- datasets --------------------------------------------------------------------
    @reads_once
    def register(
        self,
        name: str,
        source: str | os.PathLike[str] | pd.DataFrame,
        policy: str | os.PathLike[str] | dict[str, Any] | Policy,
        *,
        replace: bool = False,
        copy: bool = False,
        progress: bool = False,
        engine: str = "duckdb",
    ) -> RegistrationReport:
        """Register a dataset under a policy; returns what the data showed against it.

        ``source`` is a CSV or Parquet path, or a pandas DataFrame. ``policy`` is a TOML
        path, a dict or a :class:`pets.Policy`; it is checked against the data (every
        column it lists must exist, bounds only on numeric columns). Nothing is stored
        if anything is wrong.

        A path is referenced in place, and pets refuses to answer once the file changes
        after registration. With ``copy=True`` — always for a DataFrame — pets stores a
        typed Parquet copy inside the home instead (a snapshot: later changes to the
        original do not matter), with missing markers applied and each bounded numeric
        column also stored pre-encoded for DP sums. Queries on a copy are faster, much
        faster for CSV sources. When the policy names a ``privacy_unit``, the copy also
        stores per-person ordinals (hidden columns) for the person's rows overall and
        for each column with public keys, so that DP releases bound each person's
        contribution without sorting the table (see :class:`pets.engines.Ordinals`).

        Returns a :class:`pets.RegistrationReport` (for the holder only: it names values
        of the data): declared keys that never occur, rows outside the keys, values the
        bounds clip, undeclared missing markers. When it found any, a
        :class:`pets.RegistrationWarning` is also emitted. See docs/policy.md.

        ``progress=True`` shows a progress bar of the engine's scans with the elapsed
        time on a terminal (docs/scale.md).

        ``engine="spark"`` runs the dataset's releases on Spark (``pip install
        "pets[spark]"``): ``source`` is then a Parquet file, a folder of Parquet files
        (as Spark writes them) or the name of a table in the Spark session's catalog, read
        in place (no ``copy``). See docs/scale-spark.md.
        """
        if progress is not False:
            from .progress import bar

            with bar(f"registering {name!r}", progress):
                return self.register(name, source, policy, replace=replace, copy=copy, engine=engine)
        if engine not in ("duckdb", "spark"):
            raise QueryError(f"engine must be 'duckdb' or 'spark', got {engine!r}")
        if engine == "spark":
            return self._register_spark(name, source, policy, replace=replace, copy=copy)
        _check_name(name, "dataset name")
        if not replace and self._store.get_dataset(name) is not None:
            raise QueryError(
                f"dataset {name!r} is already registered; pass replace=True to replace it"
            )
        pol = Policy.load(policy)
        if isinstance(source, pd.DataFrame):
            if len(source.columns) == 0 or any(not isinstance(c, str) for c in source.columns):
                raise QueryError("a DataFrame source needs string column names")
            if source.columns.has_duplicates:
                dup = source.columns[source.columns.duplicated()][0]
                raise QueryError(f"the DataFrame has two columns named {dup!r}; rename one")
            _check_columns(list(source.columns), "the DataFrame")
            schema = self._engine.schema_of_frame(source)
            origin: dict[str, Any] = {"kind": "dataframe"}
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source).expanduser().resolve()
            if path.is_dir():
                raise DataError(
                    f"source {str(source)!r} is a folder ({path}); give the path of a CSV or "
                    "Parquet file, e.g. holder.register(name, 'data/table.csv', policy)"
                )
            if not path.is_file():
                raise DataError(f"source file {str(source)!r} does not exist ({path})")
            low = path.name.lower()
            if low.endswith(_CSV):
                kind = "csv"
            elif low.endswith(_PARQUET):
                kind = "parquet"
            else:
                raise DataError(
                    f"cannot tell the format of {path.name!r}: use a .csv or .parquet file, "
                    "or pass a pandas DataFrame"
                )
            src = Source(kind, str(path), tuple(pol.missing), trim=kind == "csv")
            if hasattr(self._engine, "forget"):
                self._engine.forget(src)
            # every name as the engine reads the file, hidden-looking ones included
            names = getattr(self._engine, "column_names", None)
            _check_columns(names(src) if names is not None else list(self._engine.schema(src)),
                           f"the source {path.name!r}")
            schema = self._engine.schema(src)
            origin = {"kind": "path", "path": str(path)}
        else:
            raise QueryError(
                "source must be a CSV/Parquet path or a pandas DataFrame, "
                f"got {type(source).__name__}"
            )
        _check_policy_against(pol, schema)
        # a declared type, not the one inferred from the rows, is what releases use
        schema = {c: (pol.columns[c].type if c in pol.columns and pol.columns[c].type else t)
                  for c, t in schema.items()}
        n_rows = len(source) if isinstance(source, pd.DataFrame) else _count_rows(self._engine, src)
        _check_rows(pol, n_rows)
        _check_hierarchies(pol, lambda c: source[c] if isinstance(source, pd.DataFrame)
                           else self._engine.fetch(src, (c,), ())[c])
        tmp: Path | None = None
        try:
            if isinstance(source, pd.DataFrame) or copy:
                data_dir = self.home / "data"
                data_dir.mkdir(exist_ok=True)
                final = data_dir / f"{name}.parquet"
                tmp = data_dir / f".{name}.{uuid.uuid4().hex}.parquet"
                encode = _encode_wanted(pol, schema)
                what = source if isinstance(source, pd.DataFrame) else src
                ordinals = _ordinals_wanted(pol, schema)
                if ordinals:
                    copied = self._engine.materialize(what, str(tmp), tuple(pol.missing), encode,
                                                      ordinals=ordinals)
                else:
                    copied = self._engine.materialize(what, str(tmp), tuple(pol.missing), encode)
                os.replace(tmp, final)
                tmp = None
                path = final
                stored = {"kind": "parquet", "path": str(final), "missing": [], "trim": False,
                          "encoded": [list(e) for e in encode],
                          "ordinals": [_ordinals_record(o) for o in copied.ordinals]}
            else:
                stored = {"kind": kind, "path": str(path), "missing": list(pol.missing),
                          "trim": kind == "csv", "encoded": []}
                # the stat and digest before the sidecar is built from the bytes: a file
                # changed meanwhile fails the digest check at release (never misaligned)
                st = path.stat()
                digest = _sha256(path)
                ordinals = _ordinals_wanted(pol, schema)
                if ordinals and kind == "parquet" and hasattr(self._engine, "store_ordinals"):
                    sidecar = _sidecar_path(self.home, name, digest)
                    sidecar.parent.mkdir(parents=True, exist_ok=True)
                    tmp = sidecar.with_name(f".{uuid.uuid4().hex}.tmp.parquet")
                    beside = self._engine.store_ordinals(src, str(tmp), ordinals, _encode_wanted(pol, schema))
                    if beside.sidecar:
                        os.replace(tmp, sidecar)
                        stored["sidecar"] = str(sidecar)
                        stored["encoded"] = [list(e) for e in beside.encoded]
                        stored["ordinals"] = [_ordinals_record(o) for o in beside.ordinals]
            if "sidecar" not in stored:
                st = path.stat()
                digest = _sha256(path)
            old = self._store.get_dataset(name) if replace else None
            record = {
                "name": name,
                "origin": origin,
                "source": stored,
                "sha256": digest,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "policy": pol.to_dict(),
                "schema": schema,
                "registered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "registration": uuid.uuid4().hex,
            }
            self._store.put_dataset(name, record, replace=replace)
            gone = (old or {}).get("source", {}).get("sidecar")
            if gone and gone != stored.get("sidecar"):  # the replaced registration's ordinals
                Path(gone).unlink(missing_ok=True)
        finally:
            if tmp is not None and tmp.exists():
                tmp.unlink()
        with self._lock:
            self._cache.pop(name, None)
        report = build_report(self._engine, self._dataset(name).source, name, pol, schema, n_rows)
        if not report.ok:
            warnings.warn(RegistrationWarning(str(report), report), stacklevel=2)
        return report

    def _register_spark(self, name: str, source: Any, policy: Any, *, replace: bool,
                        copy: bool) -> RegistrationReport:
        from .engines.sparkreg import register_spark

        n_rows = register_spark(self, name, source, policy, replace=replace, copy=copy)
        with self._lock:
            self._cache.pop(name, None)
        ds = self._dataset(name)
        report = build_report(self._spark_engine(), ds.source, name, ds.policy, ds.schema, n_rows)
        if not report.ok:
            warnings.warn(RegistrationWarning(str(report), report), stacklevel=3)
        return report

    def _spark_engine(self) -> Engine:
        """The Spark engine (started from ``home/spark.toml`` on first use)."""
        with self._lock:
            if self._spark is None:
                from .engines.sparkreg import engine_from_home

                self._spark = engine_from_home(self.home)
            return self._spark

    def _engine_for(self, ds: Dataset) -> Engine:
        """The engine that runs releases on ``ds``."""
        return self._spark_engine() if ds.engine == "spark" else self._engine

    def datasets(self) -> list[str]:
        """Names of the registered datasets."""
        return self._store.list_datasets()

    def policy(self, name: str) -> Policy:
        """The policy a dataset was registered with."""
        return self._dataset(name).policy

    def _dataset(self, name: str, record: dict[str, Any] | None = None) -> Dataset:
        """The dataset, after checking its source has not changed since registration
        (``record``: its store record, when the caller has just read it)."""
        rec = self._store.get_dataset(name) if record is None else record
        if rec is None:
            raise QueryError(f"unknown dataset {name!r}; registered: {', '.join(self.datasets()) or 'none'}")
        path = Path(rec["source"]["path"])
        if rec.get("engine") == "spark":
            from .engines.spark import _pyspark

            _pyspark()  # before anything is charged: pyspark missing → how to install it
        if rec.get("engine") == "spark" and (rec["source"]["kind"] == "table" or path.is_dir()):
            # a Spark table or Parquet folder: pinned by the list of its data files
            from .engines.sparkreg import folder_fingerprint, table_fingerprint

            fp = (table_fingerprint(self._spark_engine(), rec["source"]["path"])  # type: ignore[arg-type]
                  if rec["source"]["kind"] == "table" else folder_fingerprint(path))
            if fp != (rec["sha256"], rec["size"], rec["mtime_ns"]):
                raise DataError(
                    f"the source of dataset {name!r} has changed since it was registered; "
                    "re-register it with holder.register(..., replace=True)"
                )
        else:
            try:
                st = path.stat()
            except OSError:
                raise DataError(
                    f"the source of dataset {name!r} is gone; re-register it with "
                    "holder.register(..., replace=True)"
                ) from None
            if st.st_size != rec["size"] or st.st_mtime_ns != rec["mtime_ns"]:
                if st.st_size != rec["size"] or _sha256(path) != rec["sha256"]:
                    raise DataError(
                        f"the source of dataset {name!r} has changed since it was registered; "
                        "re-register it with holder.register(..., replace=True)"
                    )
        stamp = f"{rec['sha256']}:{rec.get('registration', rec['registered_at'])}:{rec['size']}"
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        # a dataset registered before reserved names were refused: a data column must
        # never shadow the engine's hidden columns
        try:
            _check_columns(list(rec["schema"]), f"the source of dataset {name!r}", reserved_only=True)
        except DataError as e:
            raise DataError(f"{e}, then re-register it with holder.register(..., replace=True)") from None
        s = rec["source"]
        if s.get("sidecar") and not Path(s["sidecar"]).is_file():
            # the ordinals beside a file read in place are a cache: without them, the
            # engine bounds with window functions (slower, the same guarantee)
            s = {**s, "sidecar": "", "ordinals": [], "encoded": []}
        ds = Dataset(
            name=name,
            source=Source(
                s["kind"], s["path"], tuple(s.get("missing", ())), trim=s.get("trim", False),
                encoded=tuple((e[0], float(e[1]), float(e[2]), int(e[3])) for e in s.get("encoded", ())),
                ordinals=tuple(Ordinals(o[0], o[1], tuple(o[2]), tuple(o[3]),
                                        tuple(o[4]) if len(o) > 4 and o[4] else None,  # type: ignore[arg-type]
                                        o[5] if len(o) > 5 else "")
                               for o in s.get("ordinals", ())),
                version=stamp,
                sidecar=s.get("sidecar", ""),
            ),
            policy=Policy.from_dict(rec["policy"]),
            schema=dict(rec["schema"]),
            version=stamp,
            policy_version=policy_digest(rec["policy"]),
            engine=rec.get("engine", "duckdb"),
        )
        with self._lock:
            self._cache[name] = (stamp, ds)
        return ds

    # -- grants and keys -------------------------------------------------------------
    def grant(
        self, analyst: str, *, dataset: str, purpose: str, epsilon: float, delta: float = 0.0,
        accounting: str = "basic",
    ) -> None:
        """Give ``analyst`` a privacy budget on ``dataset`` for one ``purpose``.

        Sets the total budget of that (analyst, dataset, purpose); what was already
        spent stays spent. There is no wildcard purpose. ``accounting`` is how releases
        compose: ``"basic"`` sums their (ε, δ); ``"zcdp"`` (needs δ > 0) sums their ρ —
        much cheaper for many Gaussian releases (see :mod:`pets.dp.accountant`). It
        cannot change once budget was spent under the grant. ``epsilon`` is at most 1e9
        (1e4 with ``"zcdp"``); ``delta`` is 0 or in [1e-100, 1).

        A new grant or a change of terms is an audit record (kind ``"grant"``, status
        ``"recorded"``, with the new and the ``previous`` terms), written in the same
        transaction; a refused grant, or the terms the grant already has, write nothing.
        """
        _check_name(analyst, "analyst name")
        _check_purpose(purpose)
        if self._store.get_dataset(dataset) is None:
            raise QueryError(f"unknown dataset {dataset!r}; register it first")
        upper = MAX_GAUSSIAN_EPSILON if accounting == "zcdp" else MAX_GRANT_EPSILON
        epsilon = check_epsilon(epsilon, "a grant's epsilon", upper)
        delta = check_delta(delta, "a grant's delta")
        self._store.set_grant(analyst, dataset, purpose, float(epsilon), float(delta), accounting)

    def revoke(self, analyst: str, *, dataset: str, purpose: str) -> None:
        """Withdraw a grant (spent budget stays on the ledger); audited as a ``"revoke"``
        record with the ``previous`` terms. Revoking a grant that does not exist does nothing."""
        self._store.revoke(analyst, dataset, purpose)

    def grants(self, analyst: str | None = None) -> pd.DataFrame:
        """Every grant (or ``analyst``'s) as a DataFrame, one row per (analyst, dataset,
        purpose): ``accounting``, the granted ``epsilon`` and ``delta``, what was spent
        and what is left (``spent_*``, ``remaining_*``), and ``rho`` / ``spent_rho`` /
        ``remaining_rho`` (NaN for grants with basic accounting). Like
        ``holder.audit().to_dataframe()``; ``.to_dict("records")`` gives plain dicts."""
        rows = self._store.list_grants(analyst)
        df = pd.DataFrame(rows, columns=_GRANT_COLUMNS + [c for c in _RHO_COLUMNS
                                                          if any(c in r for r in rows)])
        return df

    def remaining(self, analyst: str, *, dataset: str, purpose: str) -> Cost:
        return self._store.remaining(analyst, dataset, purpose)

    def issue_key(self, analyst: str) -> str:
        """A new API key for ``analyst`` (server mode); only a salted hash is stored. Audited as a
        ``"key"`` record naming the analyst — never the key or its hash."""
        _check_name(analyst, "analyst name")
        return self._store.issue_key(analyst)

    # -- sessions and audit ----------------------------------------------------------
    def session(self, analyst: str, *, purpose: str) -> "Session":
        """A local session for ``analyst`` asking for one ``purpose``."""
        from .session import Session

        _check_name(analyst, "analyst name")
        _check_purpose(purpose)
        return Session(self, analyst, purpose)

    def audit(self) -> Any:
        """The hash-chained audit log: ``.verify()``, ``.records()``, ``.to_dataframe()``."""
        return self._store.audit()


def _control_chars(text: str) -> list[str]:
    """The control, format, surrogate, private-use and unassigned characters of ``text``
    (Unicode category C), as escapes such as ``'\\x1b'`` or ``'\\u202e'``."""
    out = []
    for ch in text:
        if unicodedata.category(ch).startswith("C"):
            esc = ch.encode("unicode_escape").decode("ascii")
            if esc == ch:  # unicode_escape leaves some format characters as they are
                esc = f"\\u{ord(ch):04x}"
            if esc not in out:
                out.append(esc)
    return out


def _check_purpose(purpose: Any) -> str:
    """A purpose names what the data is used for: printable text of at most
    :data:`MAX_PURPOSE` characters, no surrounding whitespace, and no wildcard."""
    if not isinstance(purpose, str) or not purpose.strip():
        raise QueryError("purpose must be a non-empty string naming what the data is used for")
    if len(purpose) > MAX_PURPOSE:
        raise QueryError(
            f"purpose is {len(purpose):,} characters long; name it in at most {MAX_PURPOSE} "
            "characters (it is stored with every audit record)"
        )
    bad = _control_chars(purpose)
    if bad:
        raise QueryError(
            f"purpose must be printable text; remove its control characters ({', '.join(bad[:5])})"
        )
    if " ".join(purpose.split()).casefold() in _WILDCARDS or "*" in purpose:
        raise PolicyError(
            f"purpose {purpose!r} is a wildcard; a grant and a session are for one named purpose",
            rule="purpose",
        )
    if purpose != purpose.strip():
        raise QueryError(
            f"purpose {purpose!r} begins or ends with whitespace; remove it, or grants and "
            "sessions would differ by invisible characters"
        )
    return purpose


def _check_columns(names: list[str] | tuple[str, ...], where: str, *, reserved_only: bool = False) -> None:
    """Column names a source may have: strings, none reserved (:data:`RESERVED_PREFIX`,
    in any case), printable, at most :data:`MAX_COLUMN_NAME` characters, and no two
    equal but for case (DuckDB does not tell them apart)."""
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name:
            raise QueryError(f"{where} needs non-empty string column names, got {name!r}")
        folded = unicodedata.normalize("NFKC", name).casefold()
        if folded.startswith(RESERVED_PREFIX) or name.lower().startswith(RESERVED_PREFIX):
            raise DataError(
                f"{where} has a column named {name!r}: pets reserves names starting with "
                f"{RESERVED_PREFIX!r} (in any case) for its hidden columns; rename it"
            )
        if reserved_only:
            continue
        bad = _control_chars(name)
        if bad:
            raise DataError(
                f"{where} has a column name with control characters ({', '.join(bad[:5])}) in "
                f"{name!r}; rename the column"
            )
        if len(name) > MAX_COLUMN_NAME:
            raise DataError(
                f"{where} has a column name of {len(name)} characters; rename it to at most "
                f"{MAX_COLUMN_NAME}"
            )
        other = seen.get(name.lower())
        if other is not None:
            raise DataError(
                f"{where} has columns {other!r} and {name!r}, which differ only by case; the "
                "engine does not tell them apart: rename one"
            )
        seen[name.lower()] = name


def _ordinals_wanted(pol: Policy, schema: dict[str, str]) -> tuple[Ordinals, ...]:
    """With a privacy unit: ordinals for a person's rows overall (no group-by) and for
    each other column a DP release may group by on its public keys (keys of the
    column's type; not an identifier, not on the negative list, a grade that allows DP)."""
    unit = pol.privacy_unit
    if unit is None:
        return ()
    # the policy's bounds: the engine precomputes its choices of kept rows under them
    bounds = (pol.max_groups or 1, pol.max_rows_per_group or 1)
    out = [Ordinals(unit, None, (), (), bounds)]
    for name, cp in pol.columns.items():
        if name == unit or cp.keys is None or name in pol.negative_list or cp.role == "identifier":
            continue
        rule = pol.grades.get(cp.grade)
        if rule is None or "dp" not in rule.allow:
            continue
        t = schema.get(name)
        if t == "str":
            fits = all(isinstance(k, str) for k in cp.keys)
        elif t in ("int", "float"):
            fits = all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in cp.keys)
        elif t == "bool":
            fits = all(isinstance(k, bool) for k in cp.keys)
        else:
            fits = False
        if fits:
            out.append(Ordinals(unit, name, tuple(cp.keys), (), bounds))
    return tuple(out)


def _encode_wanted(pol: Policy, schema: dict[str, str]) -> tuple[tuple[str, float, float, int], ...]:
    """The bounded numeric columns stored pre-encoded for DP sums: (column, lower, upper,
    fixed-point factor)."""
    return tuple(
        (c, cp.bounds[0], cp.bounds[1], sum_factor(cp.bounds[0], cp.bounds[1], schema[c], pol.row_limit))
        for c, cp in pol.columns.items()
        if cp.bounds is not None and schema.get(c) in ("int", "float")
    )


def _ordinals_record(o: Ordinals) -> list[Any]:
    """Stored ordinals as the dataset record keeps them (JSON)."""
    return [o.unit, o.column, list(o.keys), list(o.columns),
            list(o.mask_bounds) if o.mask_bounds else None, o.mask]


def _sidecar_path(home: Path, name: str, digest: str) -> Path:
    """Where the bounding ordinals of a dataset read in place live: inside the home,
    named by the dataset and the digest of the bytes they were computed from."""
    return home / "data" / "ordinals" / f"{name}.{digest[:32]}.parquet"


def _count_rows(engine: Engine, source: Source) -> int:
    exact = engine.aggregate(source, AggregateRequest((), (), (), (Measure("n", "rows"),)))
    return int(exact["n"].iloc[0]) if len(exact) else 0


def _check_rows(pol: Policy, rows: int) -> None:
    """A table may have at most ``[dataset] max_rows`` rows: DP releases rely on it to
    decide overflow before looking at the data. (An in-place source is pinned by its
    hash, so its rows cannot grow after registration.) Told to the holder only."""
    if rows > pol.row_limit:
        set_ = "sets" if pol.max_rows is not None else "defaults to"
        raise DataError(
            f"the table has {rows:,} rows, more than the policy allows: [dataset] max_rows "
            f"{set_} {pol.row_limit:,}. Set max_rows = {rows} or more in the policy's "
            "[dataset] table (large sums and variances then need narrower bounds), or "
            "register a smaller table"
        )


class HierarchyWarning(UserWarning):
    """A registered quasi-identifier has values its hierarchy lacks (holder-side)."""


def _check_hierarchies(pol: Policy, column: Any) -> None:
    """Every value of a quasi-identifier must have a leaf in its hierarchy (when the file
    is there): otherwise every extract with the column would fail, and since that
    failure depends on the rows an analyst is told only that no extract exists. The
    holder, who owns the data, is warned here instead (without the values); DP and the
    other forms do not use hierarchies, so the registration goes ahead."""
    import warnings

    from .anon.hierarchy import Hierarchy

    for name, cp in pol.columns.items():
        if cp.role != "quasi_identifier" or cp.hierarchy is None or not Path(cp.hierarchy).is_file():
            continue
        try:
            h = Hierarchy.from_csv(cp.hierarchy, name=name)
        except (QueryError, PolicyFormatError) as e:
            raise PolicyFormatError(f"columns.{name}.hierarchy: {e}", key=f"columns.{name}.hierarchy") from None
        values = pd.Series(column(name)).dropna()
        values = values[values.astype(str).str.strip() != ""].drop_duplicates()
        try:
            h.encode(values.reset_index(drop=True))
        except QueryError:
            warnings.warn(
                f"columns.{name}.hierarchy: some values of column {name!r} in the data have no "
                f"leaf in {cp.hierarchy}, so every k-anonymous extract with the column will "
                "fail (analysts are told only that no extract exists); add them "
                "(pets.anon.Hierarchy.from_csv(path).encode(column) names them)",
                HierarchyWarning, stacklevel=3,
            )


def _check_policy_against(pol: Policy, schema: dict[str, str]) -> None:
    for name, cp in pol.columns.items():
        if name not in schema:
            raise PolicyFormatError(
                f"columns.{name}: the policy lists column {name!r}, which is not in the data",
                key=f"columns.{name}",
            )
        if cp.bounds is not None and schema[name] not in ("int", "float"):
            raise PolicyFormatError(
                f"columns.{name}.bounds: column {name!r} is not numeric; remove its bounds",
                key=f"columns.{name}.bounds",
            )
        if cp.type is not None:
            if schema[name] not in ("int", "float"):
                raise PolicyFormatError(
                    f"columns.{name}.type: column {name!r} is not numeric in the data; remove "
                    "its type (types are declared for numeric columns)",
                    key=f"columns.{name}.type",
                )
            if cp.type == "int" and schema[name] == "float":
                raise PolicyFormatError(
                    f"columns.{name}.type: column {name!r} holds fractional values; declare "
                    'type = "float"',
                    key=f"columns.{name}.type",
                )
    if pol.privacy_unit is not None and pol.privacy_unit not in schema:
        raise PolicyFormatError(
            f"dataset.privacy_unit: column {pol.privacy_unit!r} is not in the data",
            key="dataset.privacy_unit",
        )

