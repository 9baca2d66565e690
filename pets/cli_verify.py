"""The ``pets verify`` and ``pets deid`` commands, as plain functions.

Each takes plain arguments and returns an exit code (0 success; 3 refused by the
policy; 5 bad input or query), printing errors in the terms of the command line. The
typer commands (pets/cli/verify_cmds.py) are thin adapters, so another front end can call
the functions directly::

    pets verify --home DIR --analyst A --purpose P --dataset D --subject person_id=P-00042 \\
                --claim "age >= 30 AND education = 'Bachelors'" [--explain]
    pets verify --home DIR --analyst A --purpose P --dataset D --subjects ids.csv \\
                --claim "age >= 30" -o answers.csv
    pets deid in.csv -o out.csv [--secret-file KEY] [--pseudonymize person_id] \\
              [--mask phone:0:4] [--shift-dates admitted:person_id:30] [--top-code age:90] \\
              [--bottom-code age:17] [--generalize zip:hierarchies/zip.csv:2] [--drop name]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

import pandas as pd

from .errors import PetsError

__all__ = ["deid", "verify"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_POLICY, EXIT_BUDGET, EXIT_INPUT = 0, 1, 2, 3, 4, 5


def _err(message: str) -> None:
    print(f"pets: error: {message}", file=sys.stderr)


def _code(e: PetsError) -> int:
    from .cli._app import exit_code_of  # the one mapping of errors to exit codes (API.md)

    return exit_code_of(e)


def _claim(dataset: str, text: str) -> Any:
    """``--claim`` text (a SQL WHERE condition) as an expression."""
    from . import plan as P
    from .sql import parse_sql

    q = '"' + dataset.replace('"', '""') + '"'
    filters = parse_sql(f"SELECT COUNT(*) FROM {q} WHERE {text}").filters
    out = filters[0]
    for f in filters[1:]:
        out = P.And(out, f)
    return out


def _subject(pairs: Sequence[str]) -> dict[str, Any]:
    """``--subject col=value`` (repeatable); a value that reads as an integer is one
    unless quoted (``person_id='00042'``)."""
    out: dict[str, Any] = {}
    for p in pairs:
        col, sep, value = p.partition("=")
        if not sep or not col:
            raise ValueError(f"--subject {p!r}: write --subject COLUMN=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            out[col] = value[1:-1]
        else:
            try:
                out[col] = int(value)
            except ValueError:
                out[col] = value
    return out


def verify(home: str | None, analyst: str, purpose: str, dataset: str, claim: str, *,
           subject: Sequence[str] = (), subjects: str | None = None, explain: bool = False,
           output: str | None = None, fmt: str = "table") -> int:
    """Verify ``claim`` about one subject (``subject``: ``["person_id=P-00042"]``) or
    about every row of the CSV file ``subjects`` (its columns are subject keys)."""
    import pets

    home = home or os.environ.get("PETS_HOME")
    if not home:
        _err("--home is required (or set PETS_HOME)")
        return EXIT_USAGE
    if bool(subject) == bool(subjects):
        _err("give --subject COLUMN=VALUE (one subject) or --subjects FILE.csv (a batch)")
        return EXIT_USAGE
    try:
        s = pets.Holder(home).session(analyst, purpose=purpose)
        expr = pets.query.Expression(_claim(dataset, claim))
        if subject:
            r = s.verify(dataset, _subject(subject), expr, explain=explain)
        else:
            frame = pd.read_csv(subjects, dtype=str, keep_default_na=False)  # type: ignore[arg-type]
            for c in frame.columns:  # integer keys stay integers
                if frame[c].str.fullmatch(r"-?\d{1,18}").all():
                    frame[c] = frame[c].astype("int64")
            r = s.verify_batch(dataset, frame, expr, explain=explain)
    except ValueError as e:
        if isinstance(e, PetsError):
            _err(f"{type(e).__name__}: {e}")
            return _code(e)
        _err(str(e))
        return EXIT_USAGE
    except PetsError as e:
        _err(f"{type(e).__name__}{' (rule ' + e.rule + ')' if getattr(e, 'rule', None) else ''}: {e}")
        return _code(e)
    except OSError as e:
        _err(f"{e.strerror or e}: {getattr(e, 'filename', '')}")
        return EXIT_INPUT
    if explain:
        if not r.allowed:
            print(f"refused by rule {r.rule}: {r.message}")
            return EXIT_POLICY
        print(f"allowed: {r.message}")
        return EXIT_OK
    if subject:
        if fmt == "json":
            print(json.dumps({"match": r.match, "answer": r.answer, "audit_id": r.audit_id,
                              "answers_left": r.answers_left}))
        else:
            print(f"{r.answer} (audit record {r.audit_id}; {r.answers_left} answers left)")
        return EXIT_OK
    if output:
        r.df.to_csv(output, index=False)
        print(f"{len(r.df)} answers ({int(r.match.sum())} match) written to {output} "
              f"(audit record {r.audit_id}; {r.answers_left} answers left)")
    elif fmt == "json":
        print(r.df.to_json(orient="records"))
    elif fmt == "csv":
        print(r.df.to_csv(index=False), end="")
    else:
        print(r.df.to_string(index=False))
    return EXIT_OK


def _split(spec: str, what: str, n_min: int, n_max: int) -> list[str]:
    parts = spec.split(":")
    if not n_min <= len(parts) <= n_max or not parts[0]:
        raise ValueError(f"--{what} {spec!r}: see `pets deid --help` for the form")
    return parts


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--{what}: {text!r} is not an integer") from None


def _num(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"--{what}: {text!r} is not a number") from None
    return int(v) if v.is_integer() else v


def deid(input: str, output: str, *, secret_file: str | None = None, new_secret: bool = False,
         pseudonymize: Sequence[str] = (), mask: Sequence[str] = (),
         shift_dates: Sequence[str] = (), top_code: Sequence[str] = (),
         bottom_code: Sequence[str] = (), generalize: Sequence[str] = (),
         drop: Sequence[str] = (), sep: str = ",", length: int = 16) -> int:
    """De-identify the CSV file ``input`` into ``output`` (see :mod:`pets.deid`)."""
    from . import deid as D

    plan: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def add(col: str, op: str, params: dict[str, Any]) -> None:
        plan.setdefault(col, []).append((op, params))

    try:
        for c in pseudonymize:
            add(c, "pseudonymize", {"length": length})
        for m in mask:
            p = _split(m, "mask", 1, 3)
            add(p[0], "mask", {"keep_first": _int(p[1], "mask") if len(p) > 1 else 0,
                               "keep_last": _int(p[2], "mask") if len(p) > 2 else 0})
        for sd in shift_dates:
            p = _split(sd, "shift-dates", 2, 3)
            try:
                add(p[0], "shift_dates", {"days": int(p[1])})
            except ValueError:
                add(p[0], "shift_dates", {"by": p[1], "max_days": _int(p[2], "shift-dates")
                                          if len(p) > 2 else 30})
        for t in top_code:
            p = _split(t, "top-code", 2, 2)
            add(p[0], "top_code", {"upper": _num(p[1], "top-code")})
        for b in bottom_code:
            p = _split(b, "bottom-code", 2, 2)
            add(p[0], "bottom_code", {"lower": _num(p[1], "bottom-code")})
        for g in generalize:
            p = _split(g, "generalize", 3, 3)
            add(p[0], "generalize", {"hierarchy": p[1], "level": _int(p[2], "generalize")})
        for c in drop:
            add(c, "drop", {})
        if not plan:
            raise ValueError("nothing to do: give at least one of --pseudonymize, --mask, "
                             "--shift-dates, --top-code, --bottom-code, --generalize, --drop")
        needs = any(op == "pseudonymize" or (op == "shift_dates" and "by" in prm)
                    for steps in plan.values() for op, prm in steps)
        secret = None
        if needs:
            if not secret_file:
                raise ValueError("--pseudonymize and --shift-dates COLUMN:BY need "
                                 "--secret-file FILE (add --new-secret to create it)")
            secret = D.load_secret(secret_file, create=new_secret)
        df = pd.read_csv(input, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
        for c in df.columns:  # numbers stay numbers for top/bottom coding
            conv = pd.to_numeric(df[c], errors="coerce")
            if conv.notna().sum() == df[c].notna().sum():
                df[c] = conv
        out = D.deidentify(df, plan, secret=secret)
        out.to_csv(output, sep=sep, index=False)
    except PetsError as e:
        _err(f"{type(e).__name__}: {e}")
        return _code(e)
    except ValueError as e:
        _err(str(e))
        return EXIT_USAGE
    except OSError as e:
        _err(f"{e.strerror or e}: {getattr(e, 'filename', '')}")
        return EXIT_INPUT
    print(f"{len(out)} rows, {len(out.columns)} columns written to {output}")
    return EXIT_OK
