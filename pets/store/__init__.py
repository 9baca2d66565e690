"""The holder's persistent state: datasets, grants, the budget ledger, the hash-chained
audit log and API keys, in one SQLite file (``home/pets.db``).

>>> from pets.store import Store
>>> store = Store("./pets-home")                # doctest: +SKIP
>>> store.audit().verify()                      # doctest: +SKIP
True
"""

from pets.store.audit import GENESIS_HASH, AuditLog, canonical_json, record_hash
from pets.store.sqlite import SCHEMA_VERSION, Store

__all__ = ["Store", "AuditLog", "SCHEMA_VERSION", "GENESIS_HASH", "canonical_json", "record_hash"]
