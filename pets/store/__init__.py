"""The holder's persistent state: datasets, grants, the budget ledger, the hash-chained
and signed audit log and API keys, in one SQLite file (``home/pets.db``); the audit key
that signs the log and the head file live outside it (:mod:`pets.store.keys`).

>>> from pets.store import Store
>>> store = Store("./pets-home")                # doctest: +SKIP
>>> store.audit().verify()                      # doctest: +SKIP
True
"""

from pets.store.audit import (
    GENESIS_HASH,
    AuditLog,
    Head,
    answer_digest,
    api_key_id,
    canonical_json,
    policy_version,
    record_hash,
)
from pets.store.keys import AuditKey
from pets.store.sqlite import SCHEMA_VERSION, Store

__all__ = ["Store", "AuditLog", "AuditKey", "Head", "SCHEMA_VERSION", "GENESIS_HASH",
           "answer_digest", "api_key_id", "canonical_json", "policy_version", "record_hash"]
