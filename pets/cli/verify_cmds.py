"""``pets verify`` and ``pets deid`` on the typer app: the logic is in
:mod:`pets.cli_verify` (plain functions returning the exit code)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from ._app import Home, command, open_home
from .analyst_cmds import Analyst, Explain, Purpose
from .holder_cmds import Format, FormatOpt


@command()
def verify(
    analyst: Analyst,
    purpose: Purpose,
    dataset: Annotated[str, typer.Option("--dataset", help="The registered dataset to ask.")],
    claim: Annotated[str, typer.Option(
        "--claim", help="A SQL condition: \"age >= 30 AND education = 'Bachelors'\".")],
    home: Home = None,
    subject: Annotated[Optional[List[str]], typer.Option(
        "--subject", help="COLUMN=VALUE naming the subject (repeat for a composite key).")] = None,
    subjects: Annotated[Optional[str], typer.Option(
        "--subjects", help="CSV file of subject keys: one answer per row (a batch).")] = None,
    explain: Explain = False,
    output: Annotated[Optional[str], typer.Option(
        "-o", "--output", help="Write a batch's answers to this CSV file.")] = None,
    format: FormatOpt = Format.table,
) -> int:
    """Verify a claim about a subject (or a batch): match / no match, nothing else
    (counted against the policy's [verify] quotas, audited)."""
    from ..cli_verify import verify as run

    h = open_home(home)
    code = run(str(h.home), analyst, purpose, dataset, claim, subject=subject or (),
               subjects=subjects, explain=explain, output=output, fmt=format.value)
    return code  # the exit code (0, or what pets.cli_* chose)


Many = Optional[List[str]]


@command()
def deid(
    input: Annotated[str, typer.Argument(metavar="INPUT", help="The CSV file to de-identify.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Where to write the result (CSV).")],
    secret_file: Annotated[Optional[str], typer.Option(
        "--secret-file", help="The holder secret for pseudonyms and per-subject date shifts.")] = None,
    new_secret: Annotated[bool, typer.Option(
        "--new-secret", help="Create --secret-file if it does not exist.")] = False,
    pseudonymize: Annotated[Many, typer.Option(
        "--pseudonymize", metavar="COLUMN", help="Replace with keyed HMAC-SHA256 pseudonyms.")] = None,
    length: Annotated[int, typer.Option("--length", help="Hex digits of a pseudonym (8…64).")] = 16,
    mask: Annotated[Many, typer.Option(
        "--mask", metavar="COLUMN[:FIRST[:LAST]]", help="Keep only the first/last characters.")] = None,
    shift_dates: Annotated[Many, typer.Option(
        "--shift-dates", metavar="COLUMN:DAYS|COLUMN:BY[:MAX_DAYS]",
        help="Shift dates by DAYS, or per subject of column BY by up to MAX_DAYS.")] = None,
    top_code: Annotated[Many, typer.Option(
        "--top-code", metavar="COLUMN:UPPER", help="Cap values above UPPER at UPPER.")] = None,
    bottom_code: Annotated[Many, typer.Option(
        "--bottom-code", metavar="COLUMN:LOWER", help="Raise values below LOWER to LOWER.")] = None,
    generalize: Annotated[Many, typer.Option(
        "--generalize", metavar="COLUMN:HIERARCHY.csv:LEVEL",
        help="Replace values by their ancestor at LEVEL of a hierarchy.")] = None,
    drop: Annotated[Many, typer.Option("--drop", metavar="COLUMN", help="Leave this column out.")] = None,
    sep: Annotated[str, typer.Option("--sep", help="Field separator of the CSV files.")] = ",",
) -> int:
    """De-identify a CSV file before registering it (offline; see docs/deid.md)."""
    from ..cli_verify import deid as run

    code = run(input, output, secret_file=secret_file, new_secret=new_secret,
               pseudonymize=pseudonymize or (), mask=mask or (), shift_dates=shift_dates or (),
               top_code=top_code or (), bottom_code=bottom_code or (),
               generalize=generalize or (), drop=drop or (), sep=sep, length=length)
    return code  # the exit code (0, or what pets.cli_* chose)
