"""The JSON wire forms the server sends and the client reads: tables, costs, releases,
explanations, extracts and errors.

Only plain JSON crosses the wire — never pickles or code. A table travels column by
column with its dtype so that the client rebuilds a DataFrame with the same dtypes:

    {"columns": [{"name": "sex", "dtype": "object"}, {"name": "n", "dtype": "int64"}],
     "data": [["Female", "Male"], [10783, 21794]]}

Float NaN travels as ``null`` and ±inf as the strings ``"inf"`` / ``"-inf"``;
categoricals carry their ``categories`` and ``ordered``. The index is not sent (pets
results use a plain RangeIndex).

Errors travel as ``{"error": {"type": "BudgetExceeded", "message": ..., <fields>}}``;
:func:`error_from_json` rebuilds the same :mod:`pets.errors` class with its fields.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import errors as E
from .cost import Cost

__all__ = [
    "STATUS", "frame_to_json", "frame_from_json", "cost_to_json", "cost_from_json",
    "release_to_json", "extract_to_json", "explanation_to_json", "explanation_from_json",
    "error_to_json", "error_from_json", "status_of",
]

#: HTTP status of each pets error class (first match in MRO order wins).
STATUS: dict[type[BaseException], int] = {
    E.AuthError: 401,
    E.PolicyError: 403,
    E.BudgetExceeded: 409,
    E.PolicyFormatError: 422,
    E.QueryError: 422,
    E.DataError: 422,
    E.ServerError: 503,
    E.AuditError: 503,
    E.InternalError: 500,
}


def status_of(e: BaseException) -> int:
    if isinstance(e, E.ServerError) and e.status:
        return int(e.status)
    for cls in type(e).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


# --------------------------------------------------------------------------- values

def _enc_float(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _dec_float(x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        return float(x)  # "inf", "-inf"
    return float(x)


def _enc_obj(x: Any) -> Any:
    if x is None or x is pd.NA or x is pd.NaT:
        return None
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return _enc_float(x)
    if isinstance(x, np.generic):
        return _enc_obj(x.item())
    if isinstance(x, (tuple, list)):
        return [_enc_obj(v) for v in x]
    return str(x)


def frame_to_json(df: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as ``{"columns": [{name, dtype, ...}], "data": [[...], ...]}``."""
    cols: list[dict[str, Any]] = []
    data: list[list[Any]] = []
    for name, s in df.items():
        meta, values = column_to_json(name, s)
        cols.append(meta)
        data.append(values)
    return {"columns": cols, "data": data}


def column_to_json(name: Any, s: "pd.Series | np.ndarray") -> tuple[dict[str, Any], list[Any]]:
    """One column of :func:`frame_to_json`: its description and its values. ``s`` is a
    Series, or a NumPy array of numbers or booleans (as the Series it would become)."""
    dtype = s.dtype
    meta: dict[str, Any] = {"name": str(name), "dtype": str(dtype)}
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        # plain NumPy columns (most of a release): whole-array conversion; a float
        # column's NaN and infinities are encoded as below, element by element
        arr = s if isinstance(s, np.ndarray) else s.to_numpy()
        values = arr.tolist()
        if dtype.kind == "f" and not np.isfinite(arr).all():
            values = [_enc_float(v) for v in values]
        return meta, values
    if isinstance(s, np.ndarray):
        s = pd.Series(s)
    if isinstance(dtype, pd.CategoricalDtype):
        meta["dtype"] = "category"
        meta["categories"] = [_enc_obj(c) for c in dtype.categories.tolist()]
        meta["ordered"] = bool(dtype.ordered)
        values = [_enc_obj(v) for v in s.astype(object).tolist()]
    elif pd.api.types.is_bool_dtype(dtype) and not pd.api.types.is_extension_array_dtype(dtype):
        values = [bool(v) for v in s.tolist()]
    elif pd.api.types.is_float_dtype(dtype):
        values = [_enc_float(v) if v is not pd.NA else None for v in s.tolist()]
    elif pd.api.types.is_integer_dtype(dtype):
        values = [None if v is pd.NA or v is None else int(v) for v in s.tolist()]
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        values = [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in s.tolist()]
    else:
        raw = s.tolist()
        values = [_enc_obj(v) for v in raw]
        if any(isinstance(v, tuple) for v in raw):
            meta["cells"] = "tuple"  # e.g. bounds: rebuilt as tuples
    return meta, values


@functools.lru_cache(maxsize=256)
def _dtype(name: str) -> Any:
    """A dtype by its string form, looked up once (pandas' lookup tries every extension
    dtype in turn: the slowest part of rebuilding a small frame)."""
    try:
        return pd.api.types.pandas_dtype(name)
    except (TypeError, ValueError):  # a dtype this pandas lacks: keep the values
        return None


def frame_from_json(d: dict[str, Any]) -> pd.DataFrame:
    """The DataFrame :func:`frame_to_json` wrote, with its dtypes."""
    out: dict[str, Any] = {}
    n = len(d["data"][0]) if d.get("data") else 0
    for meta, values in zip(d["columns"], d["data"]):
        name = meta["dtype"]
        if name == "category":
            cat = pd.CategoricalDtype(meta.get("categories", []), ordered=meta.get("ordered", False))
            s: Any = pd.Series(values, dtype=object).astype(cat)
        elif name.startswith("float"):
            if any(v is None or isinstance(v, str) for v in values):
                values = [_dec_float(v) for v in values]
            s = np.asarray(values, dtype=_dtype(name) if name in ("float64", "float32") else None)
            if name not in ("float64", "float32"):
                s = pd.Series(s, dtype=_dtype(name) or object)
        elif name.startswith("datetime64"):
            s = pd.Series(pd.to_datetime(values, utc="UTC" in name or "+" in name)).astype(name)
        elif meta.get("cells") == "tuple":
            s = pd.Series([tuple(v) if isinstance(v, list) else v for v in values], dtype=object)
        else:
            dt = _dtype(name)
            try:
                if isinstance(dt, np.dtype) and dt.kind in "iub" and None not in values:
                    s = np.asarray(values, dtype=dt)
                else:
                    s = pd.Series(values, dtype=dt if dt is not None else object)
            except (TypeError, ValueError, OverflowError):  # values this dtype cannot hold
                s = pd.Series(values, dtype=object)
        out[meta["name"]] = s
    if not out:
        return pd.DataFrame(index=pd.RangeIndex(n))
    return pd.DataFrame(out, copy=False)


# --------------------------------------------------------------------------- costs

def cost_to_json(c: Cost | None) -> dict[str, float] | None:
    if c is None:
        return None
    return {"epsilon": c.epsilon, "delta": c.delta, "rho": c.rho}


def cost_from_json(d: dict[str, Any] | None) -> Cost | None:
    if d is None:
        return None
    return Cost(float(d.get("epsilon", 0.0)), float(d.get("delta", 0.0)), float(d.get("rho", 0.0)))


def _floats(d: dict[str, Any]) -> dict[str, Any]:
    return {str(k): _enc_float(v) for k, v in d.items()}


# --------------------------------------------------------------------------- results

def release_to_json(r: Any, ci_levels: list[float]) -> dict[str, Any]:
    """A :class:`pets.Release` with its intervals at ``ci_levels``."""
    ci: dict[str, Any] = {}
    if getattr(r, "_ci", None) is not None:
        for level in ci_levels:
            ci[repr(float(level))] = _ci_to_json(r, level)
    return {
        "type": "release", "df": frame_to_json(r.df), "spent": cost_to_json(r.spent),
        "audit_id": int(r.audit_id), "scale": _floats(r.scale), "suppressed": int(r.suppressed),
        "repeat_of": r.repeat_of, "audit_ids": r.audit_ids, "ci": ci,
        "dummy": bool(getattr(r, "dummy", False)),
    }


def _ci_to_json(r: Any, level: float) -> dict[str, Any]:
    """``frame_to_json(r.ci(level))``, written from the interval table's columns when
    the release's intervals are a DP result's own (no frame built: the same JSON)."""
    from .dp.aggregate import NoisyResult

    fn = r._ci
    res = getattr(fn, "__self__", None)
    parts = (res.ci_parts(level) if isinstance(res, NoisyResult)
             and getattr(fn, "__func__", None) is NoisyResult.ci else None)
    if parts is None:
        return frame_to_json(r.ci(level))
    cells, k, columns = parts
    cols: list[dict[str, Any]] = []
    data: list[list[Any]] = []
    for name, s in cells.items():
        meta, values = column_to_json(name, s)
        cols.append(meta)
        data.append(values * k)  # the cells once per output
    for name, s in columns.items():
        meta, values = column_to_json(name, s)
        cols.append(meta)
        data.append(values)
    return {"columns": cols, "data": data}


def extract_to_json(x: Any) -> dict[str, Any]:
    """A :class:`pets.Extract`."""
    t = x.transformation
    if isinstance(t, dict):
        t = {str(k): int(v) if isinstance(v, (int, np.integer)) else str(v) for k, v in t.items()}
    elif t is not None:
        t = str(t)
    return {
        "type": "extract", "df": frame_to_json(x.df), "transformation": t,
        "suppressed": int(x.suppressed), "metrics": _floats(x.metrics), "classes": int(x.classes),
        "audit_id": int(x.audit_id), "models": [str(m) for m in x.models],
        "extracts_left": x.extracts_left, "spent": cost_to_json(x.spent),
        "dummy": bool(getattr(x, "dummy", False)),
    }


def explanation_to_json(e: Any) -> dict[str, Any]:
    return {
        "type": "explanation", "allowed": bool(e.allowed), "cost": cost_to_json(e.cost),
        "rule": e.rule, "message": e.message, "column": e.column, "scale": _floats(e.scale),
        "ci_width": _floats(e.ci_width), "remaining": cost_to_json(e.remaining),
        "details": frame_to_json(e.details) if e.details is not None else None,
    }


def explanation_from_json(d: dict[str, Any]) -> Any:
    from .release import Explanation

    return Explanation(
        allowed=d["allowed"], cost=cost_from_json(d["cost"]) or Cost(), rule=d.get("rule"),
        message=d.get("message"), column=d.get("column"),
        scale={k: _dec_float(v) for k, v in (d.get("scale") or {}).items()},
        ci_width={k: (None if v is None else _dec_float(v)) for k, v in (d.get("ci_width") or {}).items()},
        remaining=cost_from_json(d.get("remaining")),
        details=frame_from_json(d["details"]) if d.get("details") is not None else None,
    )


def release_from_json(d: dict[str, Any], plan: Any, protection: Any,
                      fetch_ci: Callable[[float], pd.DataFrame] | None) -> Any:
    """A :class:`pets.Release`; ``fetch_ci(level)`` answers levels the server did not send."""
    from .release import Release

    sent = {float(k): v for k, v in (d.get("ci") or {}).items()}  # decoded when asked for
    cached: dict[float, pd.DataFrame] = {}

    def ci(level: float) -> pd.DataFrame:
        level = float(level)
        if level not in cached:
            if level in sent:
                cached[level] = frame_from_json(sent[level])
            elif fetch_ci is None:
                raise TypeError("this release has no confidence intervals")
            else:
                cached[level] = fetch_ci(level)
        return cached[level].copy()

    return Release(
        df=frame_from_json(d["df"]), spent=cost_from_json(d["spent"]) or Cost(),
        audit_id=int(d["audit_id"]), plan=plan, protection=protection,
        scale={k: _dec_float(v) for k, v in (d.get("scale") or {}).items()},
        suppressed=int(d.get("suppressed", 0)), _ci=ci, audit_ids=d.get("audit_ids"),
        repeat_of=d.get("repeat_of"), dummy=bool(d.get("dummy", False)),
    )


def extract_from_json(d: dict[str, Any], plan: Any, protection: Any) -> Any:
    from .release import Extract

    return Extract(
        df=frame_from_json(d["df"]), transformation=d.get("transformation"),
        suppressed=int(d["suppressed"]),
        metrics={k: _dec_float(v) for k, v in (d.get("metrics") or {}).items()},
        classes=int(d["classes"]), audit_id=int(d["audit_id"]), plan=plan, protection=protection,
        models=list(d.get("models") or []), extracts_left=d.get("extracts_left"),
        spent=cost_from_json(d.get("spent")) or Cost(), dummy=bool(d.get("dummy", False)),
    )


# --------------------------------------------------------------------------- errors

def _jsonable(v: Any) -> Any:
    if isinstance(v, Cost):
        return cost_to_json(v)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return _enc_float(v)
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


#: the fields each error class carries on the wire
_FIELDS = {
    "PolicyError": ("rule", "column", "allowed"),
    "BudgetExceeded": ("asked", "left"),
    "PolicyFormatError": ("key", "line"),
    "AuditError": ("record",),
    "ServerError": ("status", "retry_after"),
}


def error_to_json(e: BaseException) -> dict[str, Any]:
    """``{"error": {"type", "message", <the class's fields>}}``; a non-pets exception
    becomes an InternalError whose message names only its class."""
    if not isinstance(e, E.PetsError):
        return {"error": {"type": "InternalError",
                          "message": f"the server failed ({type(e).__name__}); this is a bug"}}
    name = type(e).__name__
    if not hasattr(E, name):  # a subclass outside pets.errors: the nearest public class
        name = next(c.__name__ for c in type(e).__mro__ if hasattr(E, c.__name__))
    body: dict[str, Any] = {"type": name, "message": str(e)}
    for f in _FIELDS.get(name, ()):
        body[f] = _jsonable(getattr(e, f, None))
    return {"error": body}


def error_from_json(body: Any, status: int) -> E.PetsError:
    """The pets exception an error body describes (the same class, message and fields)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("type"), str):
        return E.ServerError(f"the server answered HTTP {status} without a pets error body",
                             status=status)
    name, msg = err["type"], str(err.get("message", ""))
    if name == "PolicyError":
        return E.PolicyError(msg, rule=err.get("rule") or "unknown", column=err.get("column"),
                             allowed=err.get("allowed"))
    if name == "BudgetExceeded":
        return E.BudgetExceeded(msg, asked=cost_from_json(err.get("asked")),
                                left=cost_from_json(err.get("left")))
    if name == "PolicyFormatError":
        return E.PolicyFormatError(msg, key=err.get("key"), line=err.get("line"))
    if name == "AuditError":
        return E.AuditError(msg, record=err.get("record"))
    if name == "ServerError":
        return E.ServerError(msg, status=err.get("status") or status,
                             retry_after=err.get("retry_after"))
    cls = getattr(E, name, None)
    if isinstance(cls, type) and issubclass(cls, E.PetsError):
        try:
            return cls(msg)
        except TypeError:
            pass
    return E.ServerError(f"{name}: {msg}", status=status)


def answer_of(resp: Any, where: str = "") -> Any:
    """The JSON body of an httpx response from a pets server, or the pets error it
    carries raised again (``where`` prefixes the message, e.g. a federation member)."""
    from .errors import ServerError

    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code >= 400:
        err = error_from_json(body, resp.status_code)
        if isinstance(err, ServerError) and err.retry_after is None:
            ra = resp.headers.get("Retry-After")
            if ra is not None and ra.isdigit():
                err.retry_after = float(ra)
        if where:
            err.args = (f"{where}: {err.args[0] if err.args else ''}",) + err.args[1:]
        raise err from None
    if body is None:
        raise ServerError(f"the server answered HTTP {resp.status_code} without JSON",
                          status=resp.status_code)
    return body
