"""Cell suppression against full-domain (global) and local recoding on Adult.

Run from the repository root (not part of the test suite)::

    python benchmarks/compare_anon_cells.py --rounds 3

Data: ``tests/data/adult-arx`` (30,162 rows, the nine benchmark quasi-identifiers and
their hierarchies). For each setting, ``anonymize()`` with ``recoding="global"``,
``"local"`` and ``"cells"`` in one run: median time of ``--rounds`` runs after a warm-up,
rows suppressed, cells suppressed (``*``: cell suppression only), ARX's Loss (a ``*``
counted as the column's top level) and the loss ratio cells / global. Also the number
of the nine QIs (five with ``--qis 5``). Results go to stdout as a Markdown table
(pasted into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pets import anon  # noqa: E402

sys.path.insert(0, str(HERE))
from compare_anon_search import QIS9, adult9, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}\n")
    df, H = adult9()
    print("| QIs | k | max supp. | recoding | time (s) | rows suppressed | cells suppressed | Loss | loss / global |")
    print("|---|---|---|---|---|---|---|---|---|")
    for qis in (QIS9[:5], QIS9):
        for k, ms in ((2, 0.0), (5, 0.05), (10, 0.1), (50, 0.05)):
            base = None
            for rec in ("global", "local", "cells"):
                kw = {"max_suppression": ms, "recoding": rec}
                if rec == "cells":
                    kw["max_suppression"] = 0.0  # cells removes no rows
                sec, r = timed(lambda: anon.anonymize(df, qis, H, k=k, **kw), a.rounds)
                loss = r.metrics["loss"]
                base = loss if rec == "global" else base
                cells = f"{int(r.metrics['cells_suppressed']):,} ({r.metrics['cells_share']:.1%})" \
                    if rec == "cells" else "–"
                print(f"| {len(qis)} | {k} | {kw['max_suppression']:.0%} | {rec} | {sec:.3f} | "
                      f"{r.suppressed:,} | {cells} | {loss:.4f} | {loss / base:.2f} |")


if __name__ == "__main__":
    main()
