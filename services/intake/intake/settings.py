from __future__ import annotations

from pydantic import SecretStr, field_validator, model_validator

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

    # Citizens' SMS (issue #31, docs/notify.md "Citizens' SMS"): the provider's gateway, the key pair
    # its requests are signed with, the sign name (签名) and a template code per kind of message. All
    # four of the gateway's settings, or none: none sends nothing (no message is even queued). A kind
    # without its template is not sent.
    sms_url: str | None = None
    sms_access_key_id: str | None = None
    sms_access_key_secret: SecretStr | None = None
    sms_sign_name: str | None = None
    sms_template_filed: str | None = None
    sms_template_completed: str | None = None
    sms_template_callback: str | None = None
    # The citizen's status page (the console's /status), put in the filing's and the callback's SMS.
    sms_status_url: str = "http://localhost:8000/status"
    # The callback invitation (回访) goes this long after the completion (quiet hours apart).
    sms_callback_after_hours: float = 24.0
    sms_poll_seconds: float = 1.0
    sms_lease_seconds: float = 60.0
    sms_retry_base_seconds: float = 2.0
    sms_retry_max_seconds: float = 300.0
    sms_timeout_seconds: float = 10.0
    sms_batch_size: int = 50

    @property
    def sms_enabled(self) -> bool:
        return self.sms_url is not None

    def sms_template(self, kind: str) -> str | None:
        """The template code of a kind of message (filed, completed, callback); None: not sent."""
        if not self.sms_enabled:
            return None
        return {"filed": self.sms_template_filed, "completed": self.sms_template_completed,
                "callback": self.sms_template_callback}.get(kind)

    @model_validator(mode="after")
    def _sms_whole_or_none(self) -> IntakeSettings:
        gateway = {"TOWNFLOW_SMS_URL": self.sms_url, "TOWNFLOW_SMS_ACCESS_KEY_ID": self.sms_access_key_id,
                   "TOWNFLOW_SMS_ACCESS_KEY_SECRET": self.sms_access_key_secret,
                   "TOWNFLOW_SMS_SIGN_NAME": self.sms_sign_name}
        missing = [name for name, value in gateway.items() if not value]
        if 0 < len(missing) < len(gateway):
            raise ValueError(f"the SMS gateway needs {', '.join(missing)} too (or none of its settings)")
        return self

    @field_validator("intake_access_code_length")
    @classmethod
    def _a_length_codes_are_read_in(cls, length: int) -> int:
        if length not in (6, 9):
            raise ValueError("TOWNFLOW_INTAKE_ACCESS_CODE_LENGTH is 9, or 6 while a v1.1 replica runs beside this release")
        return length
