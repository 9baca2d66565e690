"""``import pets`` (and using it) changes no global state of other libraries.

The check runs in a fresh interpreter: the libraries pets uses are imported first, their
process-wide settings are recorded, then ``import pets``, then a whole DP release (which
builds OpenDP measurements), and the settings are compared. In particular OpenDP's
``contrib`` switch, which pets turns on only for the duration of each of its own
constructor calls (pets/dp/samplers.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import copy, decimal, json, locale, logging, os, socket, sys, warnings
import numpy as np, pandas as pd, opendp.prelude as dp, duckdb, sqlglot
from opendp.mod import GLOBAL_FEATURES

def state():
    return {
        "opendp_features": sorted(GLOBAL_FEATURES),
        "pandas_options": repr(sorted((k, repr(v)) for k, v in pd._config.config._global_config.items())),
        "numpy_print": repr(np.get_printoptions()),
        "numpy_err": repr(np.geterr()),
        "warnings_filters": repr(warnings.filters),
        "logging_root": [logging.getLogger().level, len(logging.getLogger().handlers)],
        "logging_disabled": logging.root.manager.disable,
        "decimal": repr(decimal.getcontext()),
        "recursion": sys.getrecursionlimit(),
        "environ": sorted(os.environ.items()),
        "socket_timeout": socket.getdefaulttimeout(),
        "locale": repr(locale.setlocale(locale.LC_ALL)),
        "cwd": os.getcwd(),
    }

before = state()
import pets
after_import = state()
import tempfile
home = tempfile.mkdtemp()
h = pets.Holder(home)
h.register("adult", pets.example_data(), pets.example_policy())
h.grant("a", dataset="adult", purpose="p", epsilon=1.0, delta=1e-6)
s = h.session("a", purpose="p")
q = s.table("adult").group_by("sex").agg(n=pets.count(), m=pets.mean("age", bounds=(17, 90)))
s.release(q, pets.DP(epsilon=0.2))
s.release(q, pets.DP(epsilon=0.2, delta=1e-7, noise="gaussian"))
after_use = state()
# and when the caller had switched contrib on, it stays on
dp.enable_features("contrib")
s.release(s.table("adult").group_by("race").agg(n=pets.count()), pets.DP(epsilon=0.1))
on = sorted(GLOBAL_FEATURES)
print(json.dumps({"before": before, "after_import": after_import, "after_use": after_use, "on": on}))
'''


def test_import_pets_changes_no_global_state_of_other_libraries() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    before = got["before"]
    assert before["opendp_features"] == []
    for stage in ("after_import", "after_use"):
        changed = {k: (before[k], got[stage][k]) for k in before if before[k] != got[stage][k]}
        assert changed == {}, f"{stage}: {changed}"
    assert got["on"] == ["contrib"]  # a caller's own switch is left as it was
