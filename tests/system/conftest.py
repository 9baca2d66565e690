"""Fixtures for the system tests: real holders on temporary homes, the bundled Adult
data (and an independent pandas reading of it for exact answers).

Nothing is mocked: DuckDB reads the files, SQLite keeps the ledger and audit log, and
OpenDP draws the noise (which cannot be seeded, so statistical tests state their
false-failure rate instead).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # spawned worker processes inherit this sys.path
    sys.path.insert(0, str(ROOT))

import pets  # noqa: E402

from ._util import ANALYST, PURPOSE  # noqa: E402


@pytest.fixture(scope="session")
def adult_df() -> pd.DataFrame:
    """The bundled Adult CSV read independently of pets (pandas), for exact answers."""
    return pd.read_csv(pets.example_data(), skipinitialspace=True, na_values=["?"])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def holder(home: Path) -> pets.Holder:
    """A holder with Adult registered under the example policy and alice granted ε = 2."""
    h = pets.Holder(home)
    h.register("adult", pets.example_data(), pets.example_policy())
    h.grant(ANALYST, dataset="adult", purpose=PURPOSE, epsilon=2.0)
    return h


@pytest.fixture
def session(holder: pets.Holder) -> pets.Session:
    return holder.session(ANALYST, purpose=PURPOSE)


@pytest.fixture
def rng() -> np.random.Generator:
    # Only the *data* is seeded; the privacy noise comes from OpenDP's CSPRNG.
    return np.random.default_rng(20240611)
