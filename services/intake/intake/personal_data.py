"""The citizen's personal data at rest (issue #28 item 7, docs/security-encryption.md): the name,
phone and id number of a matter are sealed field by field with an AEAD cipher under a key named by
its id, so keys rotate without downtime; a keyed hash of the phone stands in for it where intake
looks a citizen up. No I/O: the bootstrap builds the `Keyring` from settings once, the command
handlers seal and open with it, store.py moves the sealed text.

A sealed value is text, `v1:<key id>:<algorithm>:<base64 of nonce, ciphertext and tag>`: it names
what opens it, so values under several keys and both algorithms live side by side. Its associated
data binds it to its matter (the request id) and field (`citizen_name`, `citizen_phone`,
`citizen_id_number`), and to the key id and algorithm it names, so a value copied into another
matter or field does not open.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .rules import normalise_phone
from .settings import IntakeSettings

Algorithm = Literal["aes-256-gcm", "sm4-gcm"]
# AES-256-GCM by default; SM4 (GB/T 32907) in GCM mode, as RFC 8998 uses it, where the county's 密评
# (commercial cryptography assessment) asks for the national algorithm. A key is of one algorithm.
KEY_BYTES: dict[str, int] = {"aes-256-gcm": 32, "sm4-gcm": 16}
NONCE_BYTES = 12  # 96 bits, random per value: far below GCM's 2^32 values per key at a town's scale
TAG_BYTES = 16
VERSION = "v1"
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")  # no ':' — it separates the parts of a sealed value

# The plaintext columns of `requests` the releases before wrote, and the sealed ones of
# `request_citizens` (migration 011) that replace them; a row of `requests` this release writes
# holds BLANK in them (`citizen_name` is NOT NULL: '' there, which the previous release shows as an
# empty name).
NAME, PHONE, ID_NUMBER = "citizen_name", "citizen_phone", "citizen_id_number"
PLAINTEXT_COLUMNS = (NAME, PHONE, ID_NUMBER)
BLANK: dict[str, Any] = {NAME: "", PHONE: None, ID_NUMBER: None}
SEALED_COLUMNS = {NAME: "name_enc", PHONE: "phone_enc", ID_NUMBER: "id_number_enc"}


class KeysMissing(RuntimeError):
    """Intake does not start without its keys: it would have to write a citizen's data in the clear."""


class UnreadableValue(ValueError):
    """A sealed value that does not open: a key not configured, the wrong key, another row's value."""


@dataclass(frozen=True)
class Citizen:
    """A matter's citizen, opened."""

    name: str
    phone: str | None
    id_number: str | None


class CitizenSealer(Protocol):
    """What the filing writer needs: a new matter's personal columns in `requests`, and its row of
    `request_citizens` (None: none, as the release before wrote it)."""

    def sealed(self, request_id: uuid.UUID, town_code: str, name: str, phone: str | None,
               id_number: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]: ...


def associated_data(request_id: uuid.UUID | str, column: str, key_id: str, algorithm: str) -> bytes:
    return f"townflow.intake|requests|{request_id}|{column}|{key_id}|{algorithm}".encode()


@dataclass(frozen=True)
class DataKey:
    key_id: str
    algorithm: Algorithm
    secret: bytes = field(repr=False)
    # AES-GCM's context is made once per key (it cost as much as sealing a value: 14 -> 7 us a filing's
    # three); SM4's mode object takes the nonce, so one is made per value.
    _aes: AESGCM | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_aes", AESGCM(self.secret) if self.algorithm == "aes-256-gcm" else None)

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Ciphertext and tag."""
        if self._aes is not None:
            return self._aes.encrypt(nonce, plaintext, aad)
        encryptor = Cipher(algorithms.SM4(self.secret), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag

    def decrypt(self, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        if self._aes is not None:
            return self._aes.decrypt(nonce, sealed, aad)
        if len(sealed) < TAG_BYTES:
            raise InvalidTag
        decryptor = Cipher(algorithms.SM4(self.secret), modes.GCM(nonce, sealed[-TAG_BYTES:])).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(sealed[:-TAG_BYTES]) + decryptor.finalize()


def parse_key(key_id: str, spec: str) -> DataKey:
    """`<algorithm>:<base64 key>` (standard or URL-safe base64) as TOWNFLOW_INTAKE_DATA_KEYS holds it."""
    if not KEY_ID.fullmatch(key_id):
        raise KeysMissing(f"TOWNFLOW_INTAKE_DATA_KEYS: key id {key_id!r} must be 1-32 of A-Z a-z 0-9 _ . -")
    algorithm, _, encoded = spec.partition(":")
    if algorithm not in KEY_BYTES:
        raise KeysMissing(f"TOWNFLOW_INTAKE_DATA_KEYS[{key_id!r}]: '<algorithm>:<base64 key>' with "
                          f"algorithm one of {', '.join(KEY_BYTES)}")
    try:
        secret = base64.b64decode(encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4),
                                  validate=True)
    except (binascii.Error, ValueError):
        raise KeysMissing(f"TOWNFLOW_INTAKE_DATA_KEYS[{key_id!r}]: the key is not base64") from None
    if len(secret) != KEY_BYTES[algorithm]:
        raise KeysMissing(f"TOWNFLOW_INTAKE_DATA_KEYS[{key_id!r}]: {algorithm} takes a {KEY_BYTES[algorithm]}-byte "
                          f"key, this one has {len(secret)}")
    return DataKey(key_id, algorithm, secret)  # type: ignore[arg-type]  # checked against KEY_BYTES


def new_key_spec(algorithm: Algorithm = "aes-256-gcm") -> str:
    """A fresh key as TOWNFLOW_INTAKE_DATA_KEYS takes it (devstack's per-stack keys, the docs' recipe)."""
    return f"{algorithm}:{base64.b64encode(os.urandom(KEY_BYTES[algorithm])).decode()}"


class Keyring:
    """Every data key intake may open values with; new values are sealed under the current one.
    The lookup key keys the phone's hash (a key of its own: see docs/security-encryption.md)."""

    def __init__(self, keys: Mapping[str, str], current: str | None, lookup_key: bytes | None) -> None:
        if not keys or current is None or lookup_key is None:
            missing = [name for name, unset in (("TOWNFLOW_INTAKE_DATA_KEYS", not keys),
                                                ("TOWNFLOW_INTAKE_DATA_KEY_ID", current is None),
                                                ("TOWNFLOW_INTAKE_LOOKUP_KEY", lookup_key is None)) if unset]
            raise KeysMissing(f"intake will not store a citizen's data in the clear: set {', '.join(missing)} "
                              "(docs/security-encryption.md)")
        self.keys = {key_id: parse_key(key_id, spec) for key_id, spec in keys.items()}
        if current not in self.keys:
            raise KeysMissing(f"TOWNFLOW_INTAKE_DATA_KEY_ID={current!r} names no key of TOWNFLOW_INTAKE_DATA_KEYS "
                              f"({', '.join(sorted(self.keys))})")
        if len(lookup_key) < 16:
            raise KeysMissing("TOWNFLOW_INTAKE_LOOKUP_KEY: at least 16 bytes")
        self.current = self.keys[current]
        self.lookup_key = lookup_key

    @classmethod
    def from_settings(cls, settings: IntakeSettings) -> Keyring:
        """The keyring of TOWNFLOW_INTAKE_DATA_KEYS, _DATA_KEY_ID and _LOOKUP_KEY; `KeysMissing` naming
        the setting at fault."""
        keys_json = settings.intake_data_keys.get_secret_value() if settings.intake_data_keys else None
        lookup_key = settings.intake_lookup_key.get_secret_value() if settings.intake_lookup_key else None
        current = settings.intake_data_key_id
        try:
            keys = json.loads(keys_json) if keys_json else {}
        except json.JSONDecodeError:
            raise KeysMissing('TOWNFLOW_INTAKE_DATA_KEYS: a JSON object, {"<key id>": "<algorithm>:<base64 key>"}') from None
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise KeysMissing('TOWNFLOW_INTAKE_DATA_KEYS: a JSON object, {"<key id>": "<algorithm>:<base64 key>"}')
        return cls(keys, current, lookup_key.encode() if lookup_key else None)

    # --- one value ---------------------------------------------------------------------------
    def seal(self, plaintext: str, request_id: uuid.UUID | str, column: str) -> str:
        key = self.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.encrypt(nonce, plaintext.encode(), associated_data(request_id, column, key.key_id, key.algorithm))
        return f"{VERSION}:{key.key_id}:{key.algorithm}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, stored: str, request_id: uuid.UUID, column: str) -> str:
        try:
            version, key_id, algorithm, encoded = stored.split(":")
        except ValueError:
            raise UnreadableValue(f"{column} of {request_id}: not a sealed value") from None
        key = self.keys.get(key_id)
        if version != VERSION or key is None or key.algorithm != algorithm:
            raise UnreadableValue(f"{column} of {request_id}: sealed under {key_id!r} ({algorithm}), "
                                  "not a key of TOWNFLOW_INTAKE_DATA_KEYS")
        try:
            raw = base64.b64decode(encoded, validate=True)
            return key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                               associated_data(request_id, column, key_id, algorithm)).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise UnreadableValue(f"{column} of {request_id}: does not open under {key_id!r}") from None

    @staticmethod
    def key_id_of(stored: str) -> str:
        return stored.split(":", 2)[1]

    # --- a matter's citizen ---------------------------------------------------------------------
    def phone_hash(self, phone: str | None) -> str | None:
        """HMAC-SHA256 of the normalised phone (the `+86` prefix, spaces and dashes dropped): what a lookup
        by phone compares, so the phone itself need never be opened or indexed."""
        if not phone:
            return None
        return hmac.digest(self.lookup_key, b"phone:" + normalise_phone(phone).encode(), "sha256").hex()

    def citizen_row(self, request_id: uuid.UUID, town_code: str, name: str, phone: str | None,
                    id_number: str | None) -> dict[str, Any]:
        """A matter's row of `request_citizens`: its values sealed, its phone's hash, the key."""
        rid = str(request_id)
        values = {NAME: name, PHONE: phone, ID_NUMBER: id_number}
        return {"request_id": request_id, "town_code": town_code,
                **{SEALED_COLUMNS[c]: self.seal(v, rid, c) if v is not None else None for c, v in values.items()},
                "phone_hash": self.phone_hash(phone), "key_id": self.current.key_id, "erased_at": None}

    def sealed(self, request_id: uuid.UUID, town_code: str, name: str, phone: str | None,
               id_number: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The filing writer's: the plaintext columns blank, the citizen sealed beside them."""
        return BLANK, self.citizen_row(request_id, town_code, name, phone, id_number)

    def citizen_of(self, request: Mapping[str, Any], sealed: Mapping[str, Any] | None) -> Citizen | None:
        """The citizen of a stored matter (`request`, its `request_citizens` row or None): opened from
        the sealed row, or the plaintext of a matter the previous release filed (until `python -m
        intake data re-encrypt` seals it); None once erased after the retention period."""
        if sealed is None:  # filed by the previous release: still in the clear
            return Citizen(request[NAME], request[PHONE], request[ID_NUMBER])
        if sealed["erased_at"] is not None:
            return None
        opened = {c: self.open(sealed[s], request["request_id"], c) if sealed[s] is not None else None
                  for c, s in SEALED_COLUMNS.items()}
        return Citizen(opened[NAME] or "", opened[PHONE], opened[ID_NUMBER])

    def resealed(self, request: Mapping[str, Any], sealed: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A stored matter's `request_citizens` row under the current key (and lookup key), for
        `re-encrypt`; None for an erased one."""
        citizen = self.citizen_of(request, sealed)
        if citizen is None:
            return None
        return self.citizen_row(request["request_id"], request["town_code"], citizen.name, citizen.phone,
                                citizen.id_number)
