from pydantic import SecretStr, field_validator

from townflow_shared.settings import PhotoTakingSettings


class IntakeSettings(PhotoTakingSettings):
    service_name: str = "intake"
    http_port: int = 8001
    # Key of the HMAC that turns a citizen's id number (or phone) into `citizen_ref`.
    citizen_ref_key: SecretStr | None = None
    # How long new access codes are: 9 (the odds in docs/security-sessions.md), or 6 while a release
    # before v1.2 still runs beside this one, since it refuses a 9-character code as malformed. Codes
    # of either length are accepted whatever this says.
    intake_access_code_length: int = 9
    # The citizen's personal data at rest (personal_data.py, docs/security-encryption.md): every key
    # values may be sealed under, as JSON {"<key id>": "<algorithm>:<base64 key>"}; the id of the one
    # new values are sealed under; the HMAC key of the phone's lookup hash. Intake does not start
    # without all three.
    intake_data_keys: SecretStr | None = None
    intake_data_key_id: str | None = None
    intake_lookup_key: SecretStr | None = None
    # A matter's personal data is erased this many days after it closed (the matter itself is kept);
    # the erasure wakes every `intake_erasure_seconds`, a batch per transaction.
    intake_personal_data_retention_days: int = 365
    intake_erasure_seconds: float = 3600.0
    intake_erasure_batch_size: int = 500

    @field_validator("intake_access_code_length")
    @classmethod
    def _a_length_codes_are_read_in(cls, length: int) -> int:
        if length not in (6, 9):
            raise ValueError("TOWNFLOW_INTAKE_ACCESS_CODE_LENGTH is 9, or 6 while a v1.1 replica runs beside this release")
        return length
