"""The broker credentials are built once from the settings: FastStream's broker and every aiokafka
client get the same protocol, mechanism, user and TLS."""

from __future__ import annotations

from townflow_shared.kafka import _security, client_security
from townflow_shared.settings import ServiceSettings


def _settings(**kafka: str) -> ServiceSettings:
    return ServiceSettings(service_name="intake", **{f"kafka_{k}": v for k, v in kafka.items()})


def test_without_a_user_no_client_gets_credentials() -> None:
    assert _security(_settings()) is None
    assert client_security(_settings()) == {}


def test_scram_over_tls_reaches_the_clients_as_the_broker_has_it() -> None:
    settings = _settings(username="townflow", password="secret", security_protocol="SASL_SSL",
                         sasl_mechanism="SCRAM-SHA-512")
    args = client_security(settings)
    assert (args["security_protocol"], args["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (args["sasl_plain_username"], args["sasl_plain_password"]) == ("townflow", "secret")
    assert args["ssl_context"] is not None


def test_plain_without_tls_sends_no_tls() -> None:
    args = client_security(_settings(username="townflow", password="secret", security_protocol="SASL_PLAINTEXT"))
    assert (args["security_protocol"], args["sasl_mechanism"], args["ssl_context"]) == ("SASL_PLAINTEXT", "PLAIN", None)
