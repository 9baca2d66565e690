"""The order in which anonymised rows leave.

Released in the source's order, the rows of two extracts of one table can be paired by
position (Sweeney's "unsorted matching attack"): an analyst holding extracts that
generalise different quasi-identifiers re-joins them row by row and undoes both
generalisations, and a source sorted by a name, an identifier or a date says whose row
each is. Every governed extract is shuffled with :func:`shuffled`; so is
``pets anonymize``'s output file, unless asked otherwise.
"""

from __future__ import annotations

import secrets

import numpy as np
import pandas as pd

__all__ = ["shuffled"]


def shuffled(df: pd.DataFrame) -> pd.DataFrame:
    """``df``'s rows in a uniformly random order drawn from the operating system's
    CSPRNG (64 random bits per row, sorted; ties, of probability below n²/2⁶⁵, keep
    their order), with a fresh 0 … n−1 index.

    >>> import pandas as pd
    >>> sorted(shuffled(pd.DataFrame({"a": [1, 2, 3]}))["a"])
    [1, 2, 3]
    """
    n = len(df)
    if n < 2:
        return df.reset_index(drop=True)
    keys = np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64)
    return df.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)
