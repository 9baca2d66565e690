"""A federation's key material in a holder's home, and the signed contributions.

Setup of a federation over HTTP (docs/homomorphic.md, "Over HTTP"):

1. Each member runs ``pets serve``; ``GET /v1/federation/identity`` publishes its
   Ed25519 public key (the home's audit key, :mod:`pets.store.keys`). Operators should
   confirm each fingerprint out of band: the dealer trusts what it fetched.
2. A trusted one-off dealer (:func:`deal` / ``pets federation deal``) generates the
   threshold Paillier key (:func:`pets.he.threshold.deal`) and writes one *share file*
   per member: the federation id, the public threshold key, every member's name, URL
   and verify key, and that member's own :class:`~pets.he.threshold.KeyShare`.
3. Each holder installs its own file into its own home (:func:`join` / ``pets
   federation join``): ``home/federation/<id>/config.json`` (public) and
   ``home/federation/<id>/share.json`` (mode 0600). There is no HTTP endpoint that
   installs or reads a share. The dealer's files are then deleted.

Each server reads only its own home's share, and only to partially decrypt an
aggregate all members signed (pets/server/federation.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import PolicyError, QueryError

__all__ = ["FederationConfig", "deal", "join", "load", "contribution_digest", "sign",
           "verify", "verify_key_of", "ID_PATTERN", "RELEASE_PATTERN"]

#: federation ids and member names: short, safe as folder names
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: release ids the client chooses (random, e.g. secrets.token_urlsafe(24))
RELEASE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
#: domain separation: what a member signs is never a bare hash
_CONTEXT = b"pets-he-contribution-v1\x00"
_DIR = "federation"


@dataclass(frozen=True)
class FederationConfig:
    """One federation as this home knows it (public information only)."""

    id: str
    member: str  # this home's name in the federation
    key: Any  # pets.he.threshold.ThresholdKey (public)
    members: dict[str, dict[str, str]]  # name → {"url", "verify_key" (hex, raw Ed25519)}
    home: Path

    @property
    def folder(self) -> Path:
        return self.home / _DIR / self.id

    def share(self) -> Any:
        """This home's own key share (read from disk when needed, never cached)."""
        from .he.threshold import KeyShare

        return KeyShare.from_dict(json.loads((self.folder / "share.json").read_text()))

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "member": self.member, "threshold": self.key.t,
                "bits": self.key.n.bit_length(), "n": str(self.key.n),
                "key": self.key.to_dict(),
                "members": {m: dict(v) for m, v in sorted(self.members.items())}}


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise QueryError(f"{what} must be 1-64 letters, digits, '_', '.' or '-' (starting "
                         f"with a letter or digit), got {value!r}")
    return value


def verify_key_of(holder: Any) -> str:
    """The hex of the raw Ed25519 public key this holder signs contributions with."""
    from cryptography.hazmat.primitives import serialization

    pub = holder._store.audit_key(create=True).public
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def deal(members: Mapping[str, str], threshold: int, *, out: str | os.PathLike[str],
         bits: int = 3072, federation_id: str | None = None,
         verify_keys: Mapping[str, str] | None = None, timeout: float = 10.0) -> str:
    """The trusted dealer: generate a threshold key for ``members`` (name → server URL)
    and write ``out/<name>.share.json`` for each (mode 0600). ``verify_keys`` (name →
    hex Ed25519 public key) default to what each server's ``GET /v1/federation/identity``
    says. Returns the federation id. Deliver each file to its holder only; delete all."""
    from .he.threshold import deal as deal_key

    if not isinstance(members, Mapping) or len(members) < 2:
        raise QueryError("a federation needs at least two members: {'north': URL, ...}")
    for name, url in members.items():
        _check_id(name, "a member name")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise QueryError(f"member {name!r}: the URL must start with http:// or https://, "
                             f"got {url!r}")
    fid = _check_id(federation_id or "fed-" + secrets.token_hex(8), "the federation id")
    vks = dict(verify_keys or {})
    for name, url in members.items():
        if name not in vks:
            vks[name] = _fetch_identity(url, timeout)["verify_key"]
        if not re.fullmatch(r"[0-9a-f]{64}", str(vks[name])):
            raise QueryError(f"member {name!r}: the verify key must be 64 hex digits")
    key, shares = deal_key(len(members), threshold, bits=bits)
    directory = {name: {"url": url.rstrip("/"), "verify_key": vks[name]}
                 for name, url in members.items()}
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    for (name, _), share in zip(members.items(), shares):
        doc = {"pets": "federation-share-v1", "federation": fid, "member": name,
               "key": key.to_dict(), "members": directory, "share": share.to_dict()}
        _write_private(outdir / f"{name}.share.json", json.dumps(doc, indent=1))
    del shares
    return fid


def _fetch_identity(url: str, timeout: float) -> dict[str, Any]:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/v1/federation/identity", timeout=timeout)
    except httpx.HTTPError as e:
        raise QueryError(f"cannot reach {url} for its identity: {type(e).__name__}") from None
    if r.status_code != 200:
        raise QueryError(f"{url} answered HTTP {r.status_code} for its identity")
    return dict(r.json())


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def join(holder: Any, share_file: str | os.PathLike[str]) -> FederationConfig:
    """Install this holder's share file (from :func:`deal`) into its home. Refuses a file
    made for another member (its verify key is not this home's), and a second share for
    a federation this home already belongs to. The share file itself is not modified:
    delete it once installed."""
    from .he.threshold import KeyShare, ThresholdKey

    try:
        doc = json.loads(Path(share_file).read_text())
        fid = _check_id(doc["federation"], "the federation id")
        member = _check_id(doc["member"], "the member name")
        key = ThresholdKey.from_dict(doc["key"])
        share = KeyShare.from_dict(doc["share"])
        members = {_check_id(m, "a member name"): {"url": str(v["url"]),
                                                  "verify_key": str(v["verify_key"])}
                   for m, v in doc["members"].items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise QueryError(f"not a pets federation share file: {type(e).__name__}: {e}") from None
    if doc.get("pets") != "federation-share-v1":
        raise QueryError("not a pets federation share file (pets: federation-share-v1)")
    if member not in members or share.n != key.n or key.n_parties != len(members):
        raise QueryError("the share file is inconsistent (member, key or members differ)")
    if members[member]["verify_key"] != verify_key_of(holder):
        raise QueryError(f"this share file is for member {member!r}, whose verify key is not "
                         "this home's: install each member's file in its own home")
    folder = Path(holder.home) / _DIR / fid
    if (folder / "share.json").exists():
        raise QueryError(f"this home already holds a share of federation {fid!r}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "releases").mkdir(exist_ok=True)
    _write_private(folder / "share.json", json.dumps(share.to_dict()))
    cfg = {"federation": fid, "member": member, "key": key.to_dict(), "members": members}
    _write_private(folder / "config.json", json.dumps(cfg, indent=1))
    return load(holder.home, fid)


def load(home: str | os.PathLike[str], federation_id: str) -> FederationConfig:
    """The federation ``federation_id`` of this home (QueryError if it has not joined)."""
    from .he.threshold import ThresholdKey

    fid = _check_id(federation_id, "the federation id")
    path = Path(home) / _DIR / fid / "config.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise QueryError(f"this server is not a member of federation {fid!r}") from None
    return FederationConfig(fid, doc["member"], ThresholdKey.from_dict(doc["key"]),
                            doc["members"], Path(home))


def all_federations(home: str | os.PathLike[str]) -> list[FederationConfig]:
    base = Path(home) / _DIR
    if not base.is_dir():
        return []
    return [load(home, p.name) for p in sorted(base.iterdir())
            if (p / "config.json").is_file() and ID_PATTERN.match(p.name)]


# --------------------------------------------------------------------------- signatures

def contribution_digest(federation: str, release: str, member: str, plan_digest: str,
                        protection: dict[str, Any], ciphertexts: list[str]) -> bytes:
    """SHA-256 of the canonical JSON of one member's contribution."""
    from .store.audit import canonical_json

    doc = {"federation": federation, "release": release, "member": member,
           "plan": plan_digest, "protection": protection, "ciphertexts": ciphertexts}
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).digest()


def plan_digest(plan: Any) -> str:
    from .store.audit import canonical_json

    return hashlib.sha256(canonical_json(plan.to_dict()).encode("utf-8")).hexdigest()


def sign(holder: Any, digest: bytes) -> str:
    return str(holder._store.audit_key().private.sign(_CONTEXT + digest).hex())


def verify(verify_key_hex: str, digest: bytes, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(verify_key_hex))
        pub.verify(bytes.fromhex(signature_hex), _CONTEXT + digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def refuse(rule: str, message: str) -> PolicyError:
    return PolicyError(message, rule=rule)
