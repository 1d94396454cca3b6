"""The keys file (``CODEX_KEYS_FILE``): load, validate, save, and re-read when it changes.

The file holds, per key, its name, the sha256 of its token (the token itself is shown once by
``codex-proxy keys add`` and never stored) and an optional policy. It is written atomically
with mode 0600, so a gateway reading it mid-write sees the old file or the new one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from codex_proxy._files import write_atomic

log = logging.getLogger("codex_proxy")

TOKEN_PREFIX = "sk-cp-"
IMAGES_CHOICES = ("allow", "deny")
VERSION = 1
_POLICY_FIELDS = {"models", "images", "rpm", "images_per_day", "expires"}


class KeysFileError(ValueError):
    """The keys file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Policy:
    """What a key may do. Empty ``models`` and None limits mean no restriction."""

    models: tuple[str, ...] = ()
    images: str = "allow"
    rpm: int | None = None
    images_per_day: int | None = None
    expires: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.models:
            out["models"] = list(self.models)
        if self.images != "allow":
            out["images"] = self.images
        if self.rpm is not None:
            out["rpm"] = self.rpm
        if self.images_per_day is not None:
            out["images_per_day"] = self.images_per_day
        if self.expires is not None:
            out["expires"] = self.expires.isoformat()
        return out


@dataclass(frozen=True)
class Key:
    """One client key. ``admin`` is the ``CODEX_GATEWAY_TOKEN`` holder: no limits, sees all."""

    name: str
    hash: str
    policy: Policy = field(default_factory=Policy)
    created: str | None = None
    admin: bool = False


ADMIN = Key(name="admin", hash="", admin=True)


def new_token() -> str:
    """A fresh client token: the prefix and 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str | bytes) -> str:
    """What the file stores of a token: its sha256, hex."""
    data = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(data).hexdigest()


def parse_expiry(text: str) -> datetime:
    """An ISO date (the key expires at the start of that day, UTC) or date-time (naive: UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise KeysFileError(f"expires must be an ISO date or date-time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_policy(raw: Any, where: str) -> Policy:
    """A policy object, checked field by field."""
    if raw is None:
        return Policy()
    if not isinstance(raw, dict):
        raise KeysFileError(f"{where}.policy must be an object")
    unknown = set(raw) - _POLICY_FIELDS
    if unknown:
        raise KeysFileError(f"{where}.policy has unknown fields: {', '.join(sorted(unknown))}")
    models = raw.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise KeysFileError(f"{where}.policy.models must be a list of model name patterns")
    images = raw.get("images", "allow")
    if images not in IMAGES_CHOICES:
        raise KeysFileError(f"{where}.policy.images must be allow or deny, not {images!r}")
    limits = {}
    for name in ("rpm", "images_per_day"):
        value = raw.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise KeysFileError(f"{where}.policy.{name} must be a whole number >= 0")
        limits[name] = value
    expires = raw.get("expires")
    if expires is not None and not isinstance(expires, str):
        raise KeysFileError(f"{where}.policy.expires must be an ISO date or date-time")
    try:
        moment = parse_expiry(expires) if expires else None
    except KeysFileError as exc:
        raise KeysFileError(f"{where}.policy.{exc}") from None
    return Policy(tuple(models), images, limits["rpm"], limits["images_per_day"], moment)


def parse(data: bytes) -> dict[str, Key]:
    """The keys of a file's bytes, by name; :class:`KeysFileError` for anything malformed."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise KeysFileError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeysFileError('must be a JSON object with a "keys" list')
    keys: dict[str, Key] = {}
    hashes: set[str] = set()
    for index, item in enumerate(doc["keys"]):
        where = f"keys[{index}]"
        if not isinstance(item, dict):
            raise KeysFileError(f"{where} must be an object")
        name, digest = item.get("name"), item.get("hash")
        if not isinstance(name, str) or not valid_name(name):
            raise KeysFileError(f"{where}.name must be 1-64 letters, digits, '.', '_' or '-'")
        if name in keys:
            raise KeysFileError(f"{where}.name {name!r} is used twice")
        if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
            raise KeysFileError(f"{where}.hash must be the 64-digit sha256 hex of the token")
        if digest in hashes:
            raise KeysFileError(f"{where}.hash is the same as another key's")
        hashes.add(digest)
        created = item.get("created")
        keys[name] = Key(
            name=name,
            hash=digest,
            policy=parse_policy(item.get("policy"), where),
            created=created if isinstance(created, str) else None,
        )
    return keys


def dump(keys: dict[str, Key]) -> bytes:
    """The file's bytes for these keys."""
    items = []
    for key in keys.values():
        item: dict[str, Any] = {"name": key.name, "hash": key.hash}
        if key.created:
            item["created"] = key.created
        policy = key.policy.to_json()
        if policy:
            item["policy"] = policy
        items.append(item)
    return orjson.dumps({"version": VERSION, "keys": items}, option=orjson.OPT_INDENT_2) + b"\n"


def load(path: Path) -> dict[str, Key]:
    """The keys in ``path``; none when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise KeysFileError(f"cannot read {path}: {exc}") from None
    try:
        return parse(data)
    except KeysFileError as exc:
        raise KeysFileError(f"{path}: {exc}") from None


def save(path: Path, keys: dict[str, Key]) -> None:
    """Write the keys atomically, readable by the owner only."""
    write_atomic(path, dump(keys), mode=0o600)


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


class KeyRing:
    """The keys of one file, re-read when its size, mtime or inode change (one ``stat`` per
    call). A file that turns bad keeps the last good keys and logs why, once per version.

    ``required`` becomes true once the file has existed: deleting or emptying it later must not
    turn a gateway that needed keys into an open one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, Key] = {}
        self._by_hash: dict[str, Key] = {}
        self.required = False
        self.error: str | None = None

    def keys(self) -> dict[str, Key]:
        self._refresh()
        return self._keys

    def by_hash(self) -> dict[str, Key]:
        self._refresh()
        return self._by_hash

    def _refresh(self) -> None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            if self._stamp != (-1, -1, -1):  # report an unreadable folder once, not per request
                self._stamp = (-1, -1, -1)
                self._fail(str(exc))
            return
        else:
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp is None:
            if self._keys:
                log.warning("keys file %s is gone: no client key is accepted", self.path)
            self._set({})
            return
        self.required = True
        try:
            self._set(load(self.path))
        except KeysFileError as exc:
            self._fail(str(exc))
        else:
            self.error = None

    def _fail(self, reason: str) -> None:
        self.required = True
        self.error = reason
        log.warning("keys file unusable, keeping the last good keys: %s", reason)

    def _set(self, keys: dict[str, Key]) -> None:
        self._keys = keys
        self._by_hash = {key.hash: key for key in keys.values()}
