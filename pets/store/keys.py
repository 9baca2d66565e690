"""The holder's audit key and the head file: what anchors the audit log outside SQLite.

Every audit record's hash is signed with an Ed25519 key (``cryptography``) that is kept
*outside* the SQLite store, so that someone who can write ``pets.db`` but cannot read
the key cannot forge, rewrite or append records unnoticed. Verification needs only the
public key: an auditor can verify without the secret.

Where the key lives (first that applies):

1. ``Store(home, audit_key=path)`` / ``pets.Holder(home, audit_key=path)``;
2. the environment variable ``PETS_AUDIT_KEY``;
3. ``home/audit-key.pem`` (the zero-config default: in the home, outside the database).

The file is a PKCS#8 PEM private key, created with mode 0600 when a store is created (or
migrated) and no key exists; its public half is written next to it (``<key>.pub``, e.g.
``audit-key.pub``). A path holding only a public key (``-----BEGIN PUBLIC KEY-----``)
opens the store for verification only: appending records then fails.

The *head file* (``<key>.head``, e.g. ``audit-key.head``) sits next to the key and holds
the id and hash of the newest record this key signed for this store. It is written (and
flushed with fdatasync) after each commit, before the caller gets its result, and only ever moves
forward; verification compares the log with it, and appending refuses to extend a log
that is behind it. It detects truncation and rollback (including a lost ``-wal`` file)
without a head pinned elsewhere — as long as whoever rolled back the database could not
also write the head file. One key (and so one head file) serves one home.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pets.errors import AuditError

try:  # POSIX: serialise head-file updates across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per home
    fcntl = None  # type: ignore[assignment]

__all__ = ["AuditKey", "ENV_VAR", "DEFAULT_KEY_NAME", "key_path", "HeadFile"]

#: Environment variable naming the audit key file.
ENV_VAR = "PETS_AUDIT_KEY"
#: The key's file name inside the home when neither ``audit_key=`` nor the variable is set.
DEFAULT_KEY_NAME = "audit-key.pem"
#: Domain separation for what is signed: never a bare hash.
_CONTEXT = b"pets-audit-record-v1\x00"

_thread_lock = threading.Lock()
#: The head file is one block of this many bytes (JSON padded with spaces).
_HEAD_BLOCK = 256


def key_path(home: Path, audit_key: str | os.PathLike[str] | None) -> Path:
    """Where the audit key of ``home`` is: ``audit_key``, else ``$PETS_AUDIT_KEY``, else
    ``home/audit-key.pem``."""
    if audit_key is not None:
        if not isinstance(audit_key, (str, os.PathLike)) or not str(audit_key):
            from pets.errors import QueryError

            raise QueryError(
                f"audit_key must be the path of the audit key file, got {audit_key!r}"
            )
        return Path(audit_key).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return home / DEFAULT_KEY_NAME


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class AuditKey:
    """An Ed25519 audit key: the private key (can sign) or only the public key (verifies).

    ``fingerprint`` is the SHA-256 (hex) of the raw 32-byte public key.
    """

    def __init__(self, path: Path, public: Ed25519PublicKey,
                 private: Ed25519PrivateKey | None = None) -> None:
        self.path = path
        self.public = public
        self.private = private
        self.fingerprint = hashlib.sha256(_raw_public(public)).hexdigest()
        self.head_path = path.with_suffix(".head")  # the head file next to the key

    @property
    def can_sign(self) -> bool:
        return self.private is not None

    def __repr__(self) -> str:
        what = "private" if self.can_sign else "public"
        return f"AuditKey({str(self.path)!r}, {what}, fingerprint={self.fingerprint[:16]}…)"

    # ------------------------------------------------------------------ files

    @classmethod
    def load(cls, path: Path) -> "AuditKey":
        """Read a PEM private or public Ed25519 key; :class:`AuditError` if it is missing
        or not an Ed25519 key."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise AuditError(
                f"the audit key {str(path)!r} does not exist; restore it, or point "
                f"audit_key= (or {ENV_VAR}) at it"
            ) from None
        except OSError as e:
            raise AuditError(f"cannot read the audit key {str(path)!r}: {e.strerror or e}") from None
        try:
            if b"PRIVATE KEY" in data:
                priv = serialization.load_pem_private_key(data, password=None)
                if isinstance(priv, Ed25519PrivateKey):
                    return cls(path, priv.public_key(), priv)
            elif b"PUBLIC KEY" in data:
                pub = serialization.load_pem_public_key(data)
                if isinstance(pub, Ed25519PublicKey):
                    return cls(path, pub)
        except (ValueError, TypeError):
            pass
        raise AuditError(
            f"{str(path)!r} is not an Ed25519 audit key (a PEM private or public key as pets "
            "writes it)"
        )

    @classmethod
    def load_or_create(cls, path: Path) -> "AuditKey":
        """The key at ``path``, created (mode 0600, with ``<key>.pub`` next to it) if no
        file is there. Safe when several processes create it at once: one key wins."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        priv = Ed25519PrivateKey.generate()
        pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        key = cls.load(path)
        pub_path = path.with_suffix(".pub")
        if key.can_sign and pub_path != path and not pub_path.exists():
            pub_pem = key.public.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
            tmp_pub = pub_path.with_name(f".{pub_path.name}.{os.getpid()}.tmp")
            tmp_pub.write_bytes(pub_pem)
            os.replace(tmp_pub, pub_path)
        return key

    # ------------------------------------------------------------------ signatures

    @staticmethod
    def _message(store_id: str, record_hash: str) -> bytes:
        return _CONTEXT + store_id.encode("ascii") + b"\x00" + record_hash.encode("ascii")

    def sign(self, store_id: str, record_hash: str) -> str:
        """The hex Ed25519 signature of a record hash of store ``store_id``."""
        if self.private is None:
            raise AuditError(
                f"the audit key {str(self.path)!r} is a public key: it verifies the log but "
                "cannot sign new records; open the store with the private key"
            )
        return self.private.sign(self._message(store_id, record_hash)).hex()

    def verify(self, store_id: str, record_hash: str, signature: Any) -> bool:
        """Whether ``signature`` (hex) signs ``record_hash`` of store ``store_id``."""
        if not isinstance(signature, str) or not isinstance(record_hash, str):
            return False
        try:
            self.public.verify(bytes.fromhex(signature), self._message(store_id, record_hash))
        except (InvalidSignature, ValueError, UnicodeError):
            return False
        return True


class HeadFile:
    """``<key>.head``: ``{"store", "id", "hash"}`` of the newest record signed for a store.

    Written in place as one small block, flushed to disk, and only forwards.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        """The head file's content, ``None`` if there is none; :class:`AuditError` if it
        cannot be read or parsed."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._unreadable(e) from None
        try:
            return self._parse(self._read_fd(fd))
        finally:
            os.close(fd)

    def _read_fd(self, fd: int) -> bytes:
        try:
            return os.pread(fd, 4 * _HEAD_BLOCK, 0)  # one block: a head file is one
        except OSError as e:
            raise self._unreadable(e) from None

    def _unreadable(self, e: OSError) -> AuditError:
        return AuditError(f"cannot read the audit head file {str(self.path)!r}: "
                          f"{e.strerror or e}")

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw.decode("utf-8"))
            ok = (isinstance(data, dict) and isinstance(data.get("store"), str)
                  and isinstance(data.get("id"), int) and isinstance(data.get("hash"), str))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            ok = False
        if not ok:
            raise AuditError(f"the audit head file {str(self.path)!r} is malformed")
        return data

    @contextmanager
    def _locked(self, lock_path: Path) -> Iterator[None]:
        with _thread_lock:
            if fcntl is None:  # pragma: no cover
                yield
                return
            fd = os.open(lock_path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def write(self, store_id: str, rid: int, rhash: str, lock_path: Path,
              force: bool = False) -> None:
        """Move the head to ``(rid, rhash)`` of ``store_id`` unless it already names a
        newer record of that store (``force``: write regardless — a new store).

        One write of a fixed-size block at offset 0 (smaller than a disk sector, so it is
        not torn), then ``fdatasync``: one flush per record, as SQLite's own commit."""
        text = json.dumps({"store": store_id, "id": rid, "hash": rhash}, sort_keys=True)
        block = text.encode("ascii").ljust(_HEAD_BLOCK, b" ")
        if len(block) > _HEAD_BLOCK:  # pragma: no cover - ids below 10**18
            raise AuditError("audit head too large for its file block")
        with self._locked(lock_path):
            try:  # one descriptor: read the head, then write it in place
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                force = True  # a head file made just now holds nothing to compare
            try:
                if not force:
                    cur = self._parse(self._read_fd(fd))
                    if cur["store"] == store_id and cur["id"] >= rid:
                        return
                os.pwrite(fd, block, 0)
                os.ftruncate(fd, _HEAD_BLOCK)
                (getattr(os, "fdatasync", None) or os.fsync)(fd)
            finally:
                os.close(fd)
