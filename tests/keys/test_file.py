"""The keys file: parsing, validation, the atomic 0600 save, the re-reading ring."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from codex_proxy.keys.file import (
    Key,
    KeyRing,
    KeysFileError,
    Policy,
    dump,
    load,
    new_token,
    parse,
    save,
    token_hash,
)

HASH = "a" * 64


def test_round_trip_keeps_every_policy_field(tmp_path: Path) -> None:
    policy = Policy(
        models=("gpt-5.1*",),
        images="deny",
        rpm=2,
        images_per_day=5,
        expires=datetime(2027, 1, 1, tzinfo=timezone.utc),
    )
    keys = {"bob": Key("bob", HASH, policy, "2026-12-03T00:00:00+00:00")}
    path = tmp_path / "sub" / "keys.json"
    save(path, keys)
    assert load(path) == keys
    assert path.stat().st_mode & 0o777 == 0o600


def test_missing_file_is_no_keys(tmp_path: Path) -> None:
    assert load(tmp_path / "none.json") == {}


def test_token_and_hash() -> None:
    token = new_token()
    assert token.startswith("sk-cp-") and len(token) == len("sk-cp-") + 43
    assert new_token() != token
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_date_only_expiry_is_midnight_utc() -> None:
    keys = parse(
        b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'","policy":{"expires":"2027-01-01"}}]}'
    )
    assert keys["a"].policy.expires == datetime(2027, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"garbage", "not JSON"),
        (b"[]", 'must be a JSON object with a "keys" list'),
        (b'{"keys":[1]}', "keys[0] must be an object"),
        (b'{"keys":[{"name":"a b","hash":"' + HASH.encode() + b'"}]}', "keys[0].name must be"),
        (b'{"keys":[{"name":"a","hash":"xyz"}]}', "keys[0].hash must be the 64-digit"),
        (
            b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'"},'
            b'{"name":"a","hash":"' + b"b" * 64 + b'"}]}',
            "keys[1].name 'a' is used twice",
        ),
        (
            b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'"},'
            b'{"name":"b","hash":"' + HASH.encode() + b'"}]}',
            "keys[1].hash is the same as another key's",
        ),
        (
            b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'","policy":{"rpm":-1}}]}',
            "keys[0].policy.rpm must be a whole number >= 0",
        ),
        (
            b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'","policy":{"images":"x"}}]}',
            "keys[0].policy.images must be allow or deny, not 'x'",
        ),
        (
            b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'","policy":{"models":"g*"}}]}',
            "keys[0].policy.models must be a list of model name patterns",
        ),
        (
            b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'","policy":{"expires":"soon"}}]}',
            "keys[0].policy.expires must be an ISO date or date-time, not 'soon'",
        ),
        (
            b'{"keys":[{"name":"a","hash":"' + HASH.encode() + b'","policy":{"rmp":1}}]}',
            "keys[0].policy has unknown fields: rmp",
        ),
    ],
)
def test_bad_files_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(KeysFileError) as caught:
        parse(data)
    assert message in str(caught.value)


def test_ring_rereads_on_change_and_keeps_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path)
    assert ring.keys() == {} and not ring.required
    first = {"a": Key("a", HASH)}
    save(path, first)
    assert ring.keys() == first and ring.required
    assert ring.by_hash() == {HASH: first["a"]}
    second = {"b": Key("b", "b" * 64)}
    save(path, second)
    assert ring.keys() == second
    with caplog.at_level(logging.WARNING, logger="codex_proxy"):
        path.write_bytes(b"{not json")
        assert ring.keys() == second
        assert ring.keys() == second  # the same bad file is reported once
    reports = [r.getMessage() for r in caplog.records if "keys file unusable" in r.getMessage()]
    assert len(reports) == 1 and "not JSON" in reports[0]
    assert ring.error is not None
    os.unlink(path)
    assert ring.keys() == {} and ring.required  # once it existed, keys stay required


def test_dump_never_holds_a_token() -> None:
    token = new_token()
    data = dump({"a": Key("a", token_hash(token))})
    assert token.encode() not in data and token_hash(token).encode() in data
