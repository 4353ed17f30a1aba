"""The citizen's personal data at rest (personal_data.py): AES-256-GCM and SM4-GCM for real, what
does not open, rotation, the phone's lookup hash, the keys intake will not start without; and the
command handlers on the fake: a filing keeps no plaintext, reads open it, re-encrypt moves every
matter to the current key, erasure blanks only old closed matters."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from intake import flows, personal_data
from intake.personal_data import Keyring, KeysMissing, UnreadableValue
from intake.settings import IntakeSettings
from services.intake.tests.fakes import DATA_KEYS, KEYRING, FakeDatabase, deps
from services.intake.tests.test_flows import (
    HOLDER,
    NOW,
    TASK,
    event,
    file,
    follow,
    household_dispatched,
    matter,
    minutes,
    request,
)
from townflow_shared import events

ROW = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER_ROW = uuid.UUID("00000000-0000-4000-8000-000000000002")
LOOKUP = b"unit-test-lookup-key"


def keyring(current: str = "k1", **extra: str) -> Keyring:
    return Keyring(DATA_KEYS | extra, current, LOOKUP)


@pytest.mark.parametrize("key_id", ["k1", "sm4"])
def test_a_value_round_trips_and_names_its_key_and_algorithm(key_id: str) -> None:
    ring = keyring(key_id)
    sealed = ring.seal("张三 13800000000", ROW, "citizen_name")
    version, kid, algorithm, encoded = sealed.split(":")
    assert (version, kid, algorithm) == ("v1", key_id, DATA_KEYS[key_id].split(":")[0])
    # 12 bytes of nonce, the ciphertext (as long as the UTF-8 plaintext: GCM is a stream), 16 of tag
    assert len(base64.b64decode(encoded)) == 12 + len("张三 13800000000".encode()) + 16
    assert "张三" not in sealed and "13800000000" not in sealed
    assert ring.open(sealed, ROW, "citizen_name") == "张三 13800000000"
    assert ring.seal("张三 13800000000", ROW, "citizen_name") != sealed  # a fresh nonce each time


def test_sm4_gcm_is_the_national_algorithm_itself() -> None:
    """Not AES under another name: the same key bytes and nonce give another ciphertext, and a
    known SM4 block (GB/T 32907 appendix A, via CTR's first block) comes out as the standard says."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    block = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # noqa: S305 - one block, the standard's test vector
    assert (encryptor.update(block) + encryptor.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"
    ring = keyring("sm4")
    assert ring.open(ring.seal("李四", ROW, "citizen_name"), ROW, "citizen_name") == "李四"


@pytest.mark.parametrize("key_id", ["k1", "sm4"])
def test_a_value_does_not_open_in_another_row_or_column_or_under_another_key(key_id: str) -> None:
    ring = keyring(key_id)
    sealed = ring.seal("13800000000", ROW, "citizen_phone")
    with pytest.raises(UnreadableValue):
        ring.open(sealed, OTHER_ROW, "citizen_phone")  # copied into another matter
    with pytest.raises(UnreadableValue):
        ring.open(sealed, ROW, "citizen_id_number")  # or another column
    spec = DATA_KEYS[key_id]
    algorithm, secret = spec.split(":")
    other_secret = base64.b64encode(bytes(len(base64.b64decode(secret)))).decode()
    with pytest.raises(UnreadableValue):
        Keyring({key_id: f"{algorithm}:{other_secret}"}, key_id, LOOKUP).open(sealed, ROW, "citizen_phone")
    with pytest.raises(UnreadableValue):
        Keyring({"k9": DATA_KEYS["k1"]}, "k9", LOOKUP).open(sealed, ROW, "citizen_phone")  # a key not configured
    head, encoded = sealed.rsplit(":", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[14] ^= 1  # one bit of the ciphertext
    with pytest.raises(UnreadableValue):
        ring.open(f"{head}:{base64.b64encode(bytes(raw)).decode()}", ROW, "citizen_phone")
    with pytest.raises(UnreadableValue):
        ring.open("13800000000", ROW, "citizen_phone")


def test_a_header_rewritten_to_another_key_of_the_same_algorithm_does_not_open() -> None:
    """The key id is bound in the associated data: relabelling a value never makes it open."""
    same_secret = keyring("k1", k2=DATA_KEYS["k1"])
    sealed = same_secret.seal("王五", ROW, "citizen_name")
    relabelled = sealed.replace(":k1:", ":k2:", 1)
    with pytest.raises(UnreadableValue):
        same_secret.open(relabelled, ROW, "citizen_name")


def test_new_values_go_under_the_current_key_and_old_ones_still_open() -> None:
    old = keyring("k1")
    sealed_before = old.seal("赵六", ROW, "citizen_name")
    rotated = keyring("k2", k2="aes-256-gcm:" + base64.b64encode(b"\x07" * 32).decode())
    sealed_after = rotated.seal("赵六", ROW, "citizen_name")
    assert Keyring.key_id_of(sealed_before) == "k1" and Keyring.key_id_of(sealed_after) == "k2"
    assert rotated.open(sealed_before, ROW, "citizen_name") == rotated.open(sealed_after, ROW, "citizen_name") == "赵六"
    request = {"request_id": ROW, "town_code": "321003104", **personal_data.BLANK}
    citizen = old.citizen_row(ROW, "321003104", "赵六", "13800000000", None)
    moved = rotated.resealed(request, citizen)
    assert moved is not None and moved["key_id"] == "k2" and Keyring.key_id_of(moved["name_enc"]) == "k2"
    assert rotated.citizen_of(request, moved) == personal_data.Citizen("赵六", "13800000000", None)


@pytest.mark.parametrize("typed", ["13800000000", "138 0000 0000", "138-0000-0000", "+86 138 0000 0000", "8613800000000"])
def test_the_phones_lookup_hash_is_the_same_however_it_is_typed(typed: str) -> None:
    assert KEYRING.phone_hash(typed) == KEYRING.phone_hash("13800000000")
    assert KEYRING.phone_hash(typed) != KEYRING.phone_hash("13800000001")
    assert KEYRING.phone_hash(typed) != Keyring(DATA_KEYS, "k1", b"another-lookup-key!").phone_hash(typed)
    assert "13800000000" not in str(KEYRING.phone_hash(typed))


def test_a_matters_columns_hold_no_plaintext_and_a_legacy_or_erased_row_reads_as_it_is() -> None:
    in_requests, citizen = KEYRING.sealed(ROW, "321003104", "测试群众", "13800000000", "32100319900101123X")
    assert in_requests == {"citizen_name": "", "citizen_phone": None, "citizen_id_number": None}
    assert citizen is not None and citizen["key_id"] == "k1" and citizen["phone_hash"] == KEYRING.phone_hash("13800000000")
    assert not any(secret in str(v) for v in citizen.values() for secret in ("测试群众", "13800000000", "1123X"))
    request = {"request_id": ROW, **in_requests}
    assert KEYRING.citizen_of(request, citizen) == personal_data.Citizen("测试群众", "13800000000", "32100319900101123X")
    legacy = {"request_id": ROW, "citizen_name": "老群众", "citizen_phone": None, "citizen_id_number": "X"}
    assert KEYRING.citizen_of(legacy, None) == personal_data.Citizen("老群众", None, "X")
    assert KEYRING.citizen_of(request, {**citizen, "erased_at": NOW}) is None


@pytest.mark.parametrize(("settings", "named"), [
    ({}, "TOWNFLOW_INTAKE_DATA_KEYS, TOWNFLOW_INTAKE_DATA_KEY_ID, TOWNFLOW_INTAKE_LOOKUP_KEY"),
    ({"intake_data_keys": '{"k1": "aes-256-gcm:AAAA"}', "intake_data_key_id": "k1",
      "intake_lookup_key": "x" * 32}, "aes-256-gcm takes a 32-byte key"),
    ({"intake_data_keys": '{"k1": "rot13:AAAA"}', "intake_data_key_id": "k1", "intake_lookup_key": "x" * 32},
     "algorithm one of aes-256-gcm, sm4-gcm"),
    ({"intake_data_keys": '{"k1": "' + DATA_KEYS["k1"] + '"}', "intake_data_key_id": "k2",
      "intake_lookup_key": "x" * 32}, "TOWNFLOW_INTAKE_DATA_KEY_ID='k2' names no key"),
    ({"intake_data_keys": "not json", "intake_data_key_id": "k1", "intake_lookup_key": "x" * 32}, "a JSON object"),
])
def test_intake_does_not_start_without_its_keys_and_says_which(settings: dict[str, Any], named: str) -> None:
    values = {k: SecretStr(v) if k != "intake_data_key_id" else v for k, v in settings.items()}
    with pytest.raises(KeysMissing, match=named.replace("(", r"\(").replace(")", r"\)")):
        Keyring.from_settings(IntakeSettings(**values))


def test_the_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNFLOW_INTAKE_DATA_KEYS", '{"2027-1": "' + personal_data.new_key_spec("sm4-gcm") + '"}')
    monkeypatch.setenv("TOWNFLOW_INTAKE_DATA_KEY_ID", "2027-1")
    monkeypatch.setenv("TOWNFLOW_INTAKE_LOOKUP_KEY", "l" * 32)
    ring = Keyring.from_settings(IntakeSettings())
    assert (ring.current.key_id, ring.current.algorithm) == ("2027-1", "sm4-gcm")
    assert "sm4-gcm" not in repr(IntakeSettings())  # the keys are secrets: never in a repr or a log line


# --- the command handlers, on the fake ------------------------------------------------------------
async def test_a_filing_keeps_no_plaintext_and_its_reader_sees_the_citizen() -> None:
    db = FakeDatabase()
    ticket = await file(db, citizen={"name": "测试群众", "phone": "+86 138-0000-0000", "id_number": "32100319900101123X"})
    row, citizen = request(db, ticket), db.tables.citizens[uuid.UUID(ticket["request_id"])]
    assert not any(s in str(v) for v in [*row.values(), *citizen.values()]
                   for s in ("测试群众", "138-0000", "13800000000", "1123X"))
    assert citizen["phone_hash"] == KEYRING.phone_hash("13800000000") and citizen["key_id"] == "k1"
    await follow(db, flows.follow_task_dispatched, household_dispatched(ticket["request_id"], minutes(1)))
    assert (await matter(db, HOLDER)).citizen is not None
    assert (await matter(db, HOLDER)).citizen.phone == "+86 138-0000-0000"  # type: ignore[union-attr]  # as typed


def _closed(request_id: str, at: datetime) -> events.TaskVerified:
    return event(events.TaskVerified, events.TaskVerifiedData(
        task_id=TASK, request_id=request_id, passed=True, note="", by="s030", at=at), at=at)


async def test_erasure_blanks_old_closed_matters_only_and_keeps_them() -> None:
    db = FakeDatabase()
    retention = IntakeSettings().intake_personal_data_retention_days
    long_ago = NOW - timedelta(days=retention + 30)
    old = await file(db, description="联系电话 13912345678", now=long_ago)
    recent = await file(db, now=long_ago)
    still_open = await file(db, now=long_ago)
    await follow(db, flows.follow_task_verified, _closed(old["request_id"], NOW - timedelta(days=retention + 1)))
    await follow(db, flows.follow_task_verified, _closed(recent["request_id"], NOW - timedelta(days=retention - 1)))
    assert await flows.erase_expired_personal_data(deps(db, NOW)) == 1
    erased, erased_citizen = request(db, old), db.tables.citizens[uuid.UUID(old["request_id"])]
    assert erased_citizen["erased_at"] == NOW and erased["status"] == "closed"
    assert (erased["citizen_name"], erased_citizen["name_enc"], erased_citizen["phone_hash"]) == ("", None, None)
    assert "13912345678" not in erased["description"]
    assert KEYRING.citizen_of(erased, erased_citizen) is None
    for kept in (recent, still_open):
        assert KEYRING.citizen_of(request(db, kept), db.tables.citizens[uuid.UUID(kept["request_id"])]) is not None
    assert await flows.erase_expired_personal_data(deps(db, NOW)) == 0


async def test_re_encrypt_moves_every_matter_to_the_current_key_the_clear_ones_too() -> None:
    db = FakeDatabase()
    sealed, legacy = await file(db), await file(db)
    request(db, legacy).update({"citizen_name": "老群众", "citizen_phone": "13700000000", "citizen_id_number": None})
    del db.tables.citizens[uuid.UUID(legacy["request_id"])]  # as the previous release filed it: in the clear
    rotated = keyring("k2", k2="aes-256-gcm:" + base64.b64encode(b"\x07" * 32).decode())
    lines: list[str] = []
    done = await flows.reseal(db.unit_of_work, rotated, 1, report=lines.append)
    assert (done.moved, done.unreadable, len(lines)) == (2, set(), 2)
    for ticket, name in ((sealed, "测试群众"), (legacy, "老群众")):
        row, citizen = request(db, ticket), db.tables.citizens[uuid.UUID(ticket["request_id"])]
        assert citizen["key_id"] == "k2" and row["citizen_name"] == ""
        opened = rotated.citizen_of(row, citizen)
        assert opened is not None and opened.name == name
    assert (await flows.reseal(db.unit_of_work, rotated, 10)).moved == 0  # nothing left: a second run is a no-op
    without_k1 = Keyring({"k2": rotated.keys["k2"].algorithm + ":" + base64.b64encode(b"\x07" * 32).decode()}, "k2", LOOKUP)
    assert (await flows.reseal(db.unit_of_work, without_k1, 10)).moved == 0


def test_the_service_refuses_to_start_without_its_keys_before_it_opens_anything() -> None:
    from intake.app import create_runtime

    with pytest.raises(KeysMissing, match="TOWNFLOW_INTAKE_DATA_KEYS"):
        create_runtime(IntakeSettings(intake_data_keys=None, intake_data_key_id=None, intake_lookup_key=None))


@pytest.mark.parametrize("algorithm", ["aes-256-gcm", "sm4-gcm"])
def test_a_new_key_is_one_the_keyring_takes(algorithm: personal_data.Algorithm) -> None:
    spec = personal_data.new_key_spec(algorithm)
    ring = Keyring({"n": spec}, "n", LOOKUP)
    assert ring.current.algorithm == algorithm and spec != personal_data.new_key_spec(algorithm)
    assert repr(ring.current) == f"DataKey(key_id='n', algorithm='{algorithm}')"  # a key is never in a log line
