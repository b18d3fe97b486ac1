"""Settings: defaults that run a development machine, refusals that never print a secret."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from faststream.security import SASLScram512
from pydantic import ValidationError

from shared.auth import InvalidToken, mint
from shared.bearer import Authenticator
from shared.kafka_security import PLAINTEXT, SecurityProtocol
from shared.settings import (
    DEV_ID_HASH_KEY,
    DEV_TOKEN_KEY,
    Environment,
    ServiceSettings,
    SettingsError,
)
from tests.security.kafka_tls import certificate_authority
from tools import cli

HASH_KEY = "h" * 31 + "-hash-secret-value"
TOKEN_KEY = "t" * 31 + "-token-secret-value"
KAFKA_PASSWORD = "kafka-scram-secret-value"
# What production needs to reach Kafka: SCRAM-SHA-512 over TLS (the CA: the system's).
SECURE_KAFKA = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "motcua-intake",
    "kafka_sasl_password": KAFKA_PASSWORD,
}
# ...and to know its callers: the province's identity provider.
PROVIDER = "https://sso.example.gov.vn/realms/motcua"
IDENTITY_PROVIDER = {
    "oidc_issuer": PROVIDER,
    "oidc_audience": "motcua-api",
    "oidc_jwks_url": f"{PROVIDER}/protocol/openid-connect/certs",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MOTCUA_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.upper().startswith("MOTCUA_"):
            monkeypatch.delenv(name)


def production(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    monkeypatch.setenv("MOTCUA_ENVIRONMENT", "production")
    for name, value in (SECURE_KAFKA | IDENTITY_PROVIDER | variables).items():
        monkeypatch.setenv(f"MOTCUA_{name.upper()}", value)


def refusal(secret: str) -> str:
    """The message of the refused settings, checked not to carry the secret nor its tail."""
    with pytest.raises((ValidationError, SettingsError)) as refused:
        ServiceSettings()
    message = str(refused.value)
    for part in (secret, secret[-8:], secret[:8]):
        assert part not in message, message
    return message


def test_the_defaults_run_a_development_machine() -> None:
    settings = ServiceSettings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.token_key_list == [DEV_TOKEN_KEY]
    assert settings.id_hash_key.get_secret_value() == DEV_ID_HASH_KEY
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topics.dossier_events == "motcua.dossier-events.v1"


def test_the_environment_sets_each_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTCUA_KAFKA_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("motcua_consumers", "3")  # names are case-insensitive
    monkeypatch.setenv("MOTCUA_TOKEN_KEYS", f" {TOKEN_KEY} , , other-key ")
    settings = ServiceSettings()
    assert settings.topics.dossier_events == "t1.motcua.dossier-events.v1"
    assert settings.consumers == 3
    assert settings.token_key_list == [TOKEN_KEY, "other-key"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("consumers", "0"),
        ("http_port", "70000"),
        ("kafka_topic_prefix", "a b"),
        ("environment", "x"),
    ],
)
def test_values_out_of_their_range_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"MOTCUA_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        ServiceSettings()


def test_production_refuses_the_development_hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    assert "MOTCUA_ID_HASH_KEY must be set" in refusal(DEV_ID_HASH_KEY)


def test_production_accepts_a_long_hash_key_and_the_identity_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY)
    settings = ServiceSettings()
    assert settings.environment is Environment.PRODUCTION
    # No HS256 key verifies anything: not even the development default.
    assert settings.token_key_list == []
    verifier = settings.oidc_verifier()
    assert verifier is not None and verifier.policy.issuer == PROVIDER
    development = mint(DEV_TOKEN_KEY, unit="T01", role="officer", subject="dev")
    with pytest.raises(InvalidToken, match="not signed RS256 or ES256"):
        Authenticator.of(settings).verify_known(development)


@pytest.mark.parametrize("keys", [TOKEN_KEY, DEV_TOKEN_KEY, f"{TOKEN_KEY},{TOKEN_KEY[::-1]}"])
def test_production_refuses_shared_token_keys(monkeypatch: pytest.MonkeyPatch, keys: str) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY, token_keys=keys)
    assert "MOTCUA_TOKEN_KEYS (HS256) is for development and tests" in refusal(keys)


@pytest.mark.parametrize(
    ("unset", "complaint"),
    [
        (IDENTITY_PROVIDER, "must be set in production"),
        ({"oidc_audience": ""}, "are set together"),
        ({"oidc_jwks_url": ""}, "are set together"),
    ],
)
def test_production_requires_the_identity_provider(
    monkeypatch: pytest.MonkeyPatch, unset: dict[str, str], complaint: str
) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY, **{name: "" for name in unset})
    assert complaint in refusal(HASH_KEY)


def test_production_fetches_the_provider_keys_over_https_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY, oidc_jwks_url="http://sso.example/certs")
    assert "MOTCUA_OIDC_JWKS_URL must be https:// in production" in refusal(HASH_KEY)
    monkeypatch.setenv("MOTCUA_ENVIRONMENT", "test")  # a JWKS served on loopback by a test
    assert ServiceSettings().oidc_jwks_url == "http://sso.example/certs"


def test_the_identity_provider_claims_and_limits_are_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in IDENTITY_PROVIDER.items():
        monkeypatch.setenv(f"MOTCUA_{name.upper()}", value)
    monkeypatch.setenv("MOTCUA_OIDC_UNIT_CLAIM", "don_vi")
    monkeypatch.setenv("MOTCUA_OIDC_ROLE_CLAIM", "resource_access.motcua-api.roles")
    monkeypatch.setenv("MOTCUA_OIDC_ROLE_VALUES", '{"mot-cua": "counter", "xu-ly": "officer"}')
    monkeypatch.setenv("MOTCUA_OIDC_MAX_LIFETIME_S", "900")
    monkeypatch.setenv("MOTCUA_OIDC_LEEWAY_S", "30")
    verifier = ServiceSettings().oidc_verifier()
    assert verifier is not None
    policy = verifier.policy
    assert (policy.issuer, policy.audience) == (PROVIDER, "motcua-api")
    assert (policy.unit_claim, policy.role_claim) == ("don_vi", "resource_access.motcua-api.roles")
    assert dict(policy.role_values) == {"mot-cua": "counter", "xu-ly": "officer"}
    assert (policy.max_lifetime_s, policy.leeway_s) == (900, 30)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("oidc_role_values", '{"mot-cua": "admin"}'),  # not a motcua role
        ("oidc_max_lifetime_s", "864000"),
        ("oidc_leeway_s", "3600"),
        ("oidc_jwks_url", "ftp://sso.example/certs"),
    ],
)
def test_identity_settings_out_of_their_range_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"MOTCUA_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        ServiceSettings()


def test_without_an_issuer_there_is_no_identity_provider() -> None:
    assert ServiceSettings().oidc_verifier() is None


@pytest.mark.parametrize("short", ["abc", "a-secret-of-31-characters-xxxxx"])
def test_a_short_secret_is_refused_without_being_printed(
    monkeypatch: pytest.MonkeyPatch, short: str
) -> None:
    production(monkeypatch, id_hash_key=short)
    assert "MOTCUA_ID_HASH_KEY must be at least 32 characters" in refusal(short)


def test_a_wrongly_typed_secret_is_not_printed_either(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTCUA_DATABASE_POOL_SIZE", "postgresql://u:hunter2-secret@db/x")
    refusal("hunter2-secret")


@pytest.mark.parametrize("keys", ["", ",,,", " , "])
def test_an_empty_key_list_is_refused_in_every_environment(
    monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    monkeypatch.setenv("MOTCUA_TOKEN_KEYS", keys)
    assert "MOTCUA_TOKEN_KEYS holds no key" in refusal(DEV_TOKEN_KEY)


def test_one_key_for_hashing_and_signing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY, token_keys=f"{TOKEN_KEY},{HASH_KEY}")
    assert "MOTCUA_ID_HASH_KEY must differ" in refusal(HASH_KEY)
    monkeypatch.setenv("MOTCUA_ENVIRONMENT", "development")
    monkeypatch.setenv("MOTCUA_TOKEN_KEYS", HASH_KEY)
    refusal(HASH_KEY)


def test_secrets_are_read_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "hash").write_text(HASH_KEY + "\n")  # as `kubectl create secret --from-file`
    (tmp_path / "tokens").write_text(f"{TOKEN_KEY},{TOKEN_KEY[::-1]}\n")
    (tmp_path / "url").write_text("postgresql://motcua:pw@db/motcua")
    monkeypatch.setenv("MOTCUA_ID_HASH_KEY_FILE", str(tmp_path / "hash"))
    monkeypatch.setenv("MOTCUA_TOKEN_KEYS_FILE", str(tmp_path / "tokens"))
    monkeypatch.setenv("motcua_database_url_file", str(tmp_path / "url"))
    settings = ServiceSettings()
    assert settings.id_hash_key.get_secret_value() == HASH_KEY
    assert settings.token_key_list == [TOKEN_KEY, TOKEN_KEY[::-1]]
    assert settings.database_url == "postgresql://motcua:pw@db/motcua"


def test_a_setting_given_twice_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "hash").write_text(HASH_KEY)
    monkeypatch.setenv("MOTCUA_ID_HASH_KEY_FILE", str(tmp_path / "hash"))
    monkeypatch.setenv("MOTCUA_ID_HASH_KEY", TOKEN_KEY)
    message = refusal(HASH_KEY)
    assert "MOTCUA_ID_HASH_KEY and MOTCUA_ID_HASH_KEY_FILE are both set" in message
    assert TOKEN_KEY[-8:] not in message


def test_a_missing_or_empty_secret_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOTCUA_TOKEN_KEYS_FILE", str(tmp_path / "absent"))
    assert "MOTCUA_TOKEN_KEYS_FILE: cannot read" in refusal(DEV_TOKEN_KEY)
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("MOTCUA_TOKEN_KEYS_FILE", str(tmp_path / "empty"))
    assert "is empty" in refusal(DEV_TOKEN_KEY)


def test_motcua_token_mints_with_development_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "--unit", "T01", "--role", "officer"]) == 0
    assert capsys.readouterr().out.count(".") == 2  # header.claims.signature


@pytest.mark.parametrize("command", [["token", "--unit", "T01"], ["submit-samples"]])
def test_motcua_refuses_to_mint_with_production_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY)
    assert cli.main(command) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "refused with production settings" in err
    assert TOKEN_KEY[-8:] not in err


def test_motcua_says_which_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOTCUA_TOKEN_KEYS", ",,,")
    assert cli.main(["token", "--unit", "T01"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err and "MOTCUA_TOKEN_KEYS holds no key" in err


# ------------------------------------------------------------------ Kafka transport security


def test_kafka_clients_connect_in_plaintext_by_default() -> None:
    settings = ServiceSettings()
    assert settings.kafka_security == PLAINTEXT
    # No argument at all: aiokafka's clients are built exactly as before security existed.
    assert settings.kafka_security.client_options() == {}
    assert settings.kafka_security.faststream() is None


def test_sasl_ssl_with_the_password_and_the_ca_from_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = certificate_authority(tmp_path)
    (tmp_path / "password").write_text(KAFKA_PASSWORD + "\n")  # as Strimzi's Secret mounts it
    monkeypatch.setenv("MOTCUA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MOTCUA_KAFKA_SASL_USERNAME", "motcua-processing")
    monkeypatch.setenv("MOTCUA_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "password"))
    monkeypatch.setenv("MOTCUA_KAFKA_SSL_CAFILE", str(ca))
    security = ServiceSettings().kafka_security
    options = security.client_options()
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "motcua-processing",
        "sasl_plain_password": KAFKA_PASSWORD,
    }
    context = options["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # the CA of the file, not the system's
    broker = security.faststream()
    assert isinstance(broker, SASLScram512) and broker.use_ssl
    assert (broker.username, broker.password) == ("motcua-processing", KAFKA_PASSWORD)
    # Logged as it is (the services log their settings' Kafka identity): never the password.
    assert KAFKA_PASSWORD not in repr(security) + security.describe()


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs MOTCUA_KAFKA_SASL_USERNAME and"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": KAFKA_PASSWORD},
            "needs MOTCUA_KAFKA_SASL_USERNAME and",
        ),
        ({"kafka_ssl_cafile": "{ca}"}, "does not use TLS"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "{ca}"},
            "MOTCUA_KAFKA_SSL_CERTFILE and MOTCUA_KAFKA_SSL_KEYFILE go together",
        ),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "{absent}"}, "kafka_ssl_cafile"),
    ],
)
def test_kafka_security_that_cannot_work_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict[str, str], complaint: str
) -> None:
    ca = certificate_authority(tmp_path)
    for name, value in variables.items():
        path = value.format(ca=ca, absent=tmp_path / "absent.pem")
        monkeypatch.setenv(f"MOTCUA_{name.upper()}", path)
    assert complaint in refusal(KAFKA_PASSWORD)


def test_an_empty_file_setting_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # How an overlay unsets what its base sets (a development overlay without TLS).
    monkeypatch.setenv("MOTCUA_KAFKA_SSL_CAFILE", "")
    assert ServiceSettings().kafka_security == PLAINTEXT


@pytest.mark.parametrize(
    "variables",
    [
        {"kafka_security_protocol": "PLAINTEXT"},
        {"kafka_security_protocol": "SASL_PLAINTEXT"},
        # TLS without a client certificate: encrypted, but anyone may write dossier events.
        {"kafka_security_protocol": "SSL"},
    ],
)
def test_production_refuses_kafka_without_tls_and_authentication(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY, **variables)
    message = refusal(KAFKA_PASSWORD)
    assert "MOTCUA_KAFKA_SECURITY_PROTOCOL must be SASL_SSL" in message
    monkeypatch.setenv("MOTCUA_ENVIRONMENT", "development")
    assert ServiceSettings().kafka_security.protocol == variables["kafka_security_protocol"]


def test_production_refuses_sasl_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY, kafka_sasl_mechanism="PLAIN")
    assert "MOTCUA_KAFKA_SASL_MECHANISM=PLAIN is refused in production" in refusal(KAFKA_PASSWORD)


def test_production_accepts_scram_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, id_hash_key=HASH_KEY)
    security = ServiceSettings().kafka_security
    assert security.protocol is SecurityProtocol.SASL_SSL and security.authenticated
