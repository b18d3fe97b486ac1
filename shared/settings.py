"""Settings from the environment: one validated object per service, built in its app factory."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, FilePath, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.auth import Role
from shared.contract import Topics
from shared.jwks import JwksKeys, http_fetch
from shared.kafka_security import KafkaSecurity, SaslMechanism, SecurityProtocol
from shared.oidc import ROLES, OidcPolicy, OidcVerifier
from shared.reference import REFERENCE_DIR

# Only for development and tests; production refuses to start with it.
DEV_ID_HASH_KEY = "motcua-development-only-key"
DEV_TOKEN_KEY = "motcua-development-only-token-key"  # noqa: S105 - refused in production
PREFIX = "MOTCUA_"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """A setting that cannot be read; the message names the variable, never the value."""


class SettingsFiles(PydanticBaseSettingsSource):
    """`MOTCUA_<NAME>_FILE`: the setting read from a file, as Kubernetes and Docker mount secrets.

    Surrounding whitespace is dropped (a secret file usually ends with a newline). Setting both the
    variable and its `_FILE` twin is refused: which one wins would be a guess.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads every field at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        # The variables' names are case-insensitive, as for the environment source.
        environ = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"{PREFIX}{name.upper()}"
            path = environ.get(f"{variable}_FILE")
            if path is None:
                continue
            if variable in environ:
                raise SettingsError(f"{variable} and {variable}_FILE are both set: set only one")
            values[name] = read_setting_file(f"{variable}_FILE", Path(path))
        return values


def read_setting_file(variable: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        # The path is configuration, not a secret; the exception's own text could quote content.
        raise SettingsError(f"{variable}: cannot read {path} ({type(exc).__name__})") from None
    if not text:
        raise SettingsError(f"{variable}: {path} is empty")
    return text


def _empty_is_unset(value: object) -> object:
    return None if value == "" else value


# A file the process must be able to read at start, or nothing. Empty counts as unset, so that
# an overlay can unset what its base sets (`MOTCUA_KAFKA_SSL_CAFILE=`).
OptionalFile = Annotated[FilePath | None, BeforeValidator(_empty_is_unset)]


class MotcuaSettings(BaseSettings):
    """Read from `MOTCUA_<NAME>` or the file named by `MOTCUA_<NAME>_FILE`; frozen once read."""

    # hide_input_in_errors: a refused value must never be printed, and the input of the checks
    # below is every setting, secrets included.
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            SettingsFiles(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )


class KafkaSettings(MotcuaSettings):
    """Where the brokers are and how every Kafka client of the process connects to them.

    On its own for the Kafka helpers' default (shared/kafka.py), which must not need the rest of
    a service's settings; ServiceSettings includes it.
    """

    kafka_bootstrap: str = "127.0.0.1:9092"
    # PLAINTEXT for development and tests; production refuses it (see ServiceSettings).
    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    kafka_sasl_username: str = ""
    # Strimzi's User Operator writes it into the Secret named after the KafkaUser (key
    # `password`): mount it and set MOTCUA_KAFKA_SASL_PASSWORD_FILE.
    kafka_sasl_password: SecretStr = SecretStr("")
    # The CA of the brokers' certificates (Strimzi: the `<cluster>-cluster-ca-cert` Secret's
    # `ca.crt`); unset: the system's trust store. Names are checked either way.
    kafka_ssl_cafile: OptionalFile = None
    # A client certificate, for listeners that authenticate clients by TLS instead of SASL.
    kafka_ssl_certfile: OptionalFile = None
    kafka_ssl_keyfile: OptionalFile = None
    kafka_ssl_key_password: SecretStr | None = None

    @property
    def kafka_security(self) -> KafkaSecurity:
        """For every producer, consumer and admin client (shared/kafka.py takes it)."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value(),
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
            key_password=(
                self.kafka_ssl_key_password.get_secret_value()
                if self.kafka_ssl_key_password is not None
                else None
            ),
        )

    @model_validator(mode="after")
    def _refuse_unusable_kafka_security(self) -> Self:
        # KafkaSecurity refuses what cannot work; its messages name variables, never values.
        _ = self.kafka_security
        return self


class IdentitySettings(MotcuaSettings):
    """The province's identity provider (OIDC), whose access tokens name counters and officers.

    Off while MOTCUA_OIDC_ISSUER is empty (development and tests, with the HS256 keys of
    MOTCUA_TOKEN_KEYS); production requires it (see ServiceSettings).
    """

    oidc_issuer: str = ""  # the tokens' `iss`, exactly as the provider writes it
    oidc_audience: str = ""  # an `aud` the tokens must hold: the client the provider issues for
    # Where the provider publishes its signing keys (JWKS); Keycloak's:
    # <issuer>/protocol/openid-connect/certs.
    oidc_jwks_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    # The CA of the provider's certificate, if not in the system's trust store.
    oidc_ca_file: OptionalFile = None
    # Claims naming the caller's unit (a unit code) and role; a dotted path reaches a nested one.
    oidc_unit_claim: str = Field(default="motcua_unit", min_length=1)
    oidc_role_claim: str = Field(default="motcua_role", min_length=1)
    # The provider's role value → motcua's role (JSON); empty: the values are `counter`/`officer`.
    oidc_role_values: dict[str, Role] = Field(default_factory=dict)
    oidc_max_lifetime_s: int = Field(default=3600, ge=60, le=86400)  # exp - iat
    oidc_leeway_s: int = Field(default=60, ge=0, le=300)  # clock skew allowed both ways
    # A token naming an unknown key fetches the key set at most this often (rotation).
    oidc_jwks_min_refresh_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    # The key set is fetched again in the background once this old (withdrawn keys).
    oidc_jwks_max_age_s: float = Field(default=900.0, ge=10.0, le=86400.0)
    oidc_jwks_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer)

    def oidc_verifier(self) -> OidcVerifier | None:
        """A verifier with its own key set (fetched on first use); None with OIDC off."""
        if not self.oidc_enabled:
            return None
        policy = OidcPolicy(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            unit_claim=self.oidc_unit_claim,
            role_claim=self.oidc_role_claim,
            role_values=dict(self.oidc_role_values) or ROLES,
            max_lifetime_s=self.oidc_max_lifetime_s,
            leeway_s=self.oidc_leeway_s,
        )
        fetch = http_fetch(
            self.oidc_jwks_url, timeout_s=self.oidc_jwks_timeout_s, ca_file=self.oidc_ca_file
        )
        keys = JwksKeys(
            fetch,
            min_refresh_s=self.oidc_jwks_min_refresh_s,
            max_age_s=self.oidc_jwks_max_age_s,
            timeout_s=self.oidc_jwks_timeout_s,
        )
        return OidcVerifier(policy, keys)

    @model_validator(mode="after")
    def _refuse_partial_oidc(self) -> Self:
        named = [self.oidc_issuer, self.oidc_audience, self.oidc_jwks_url]
        if any(named) and not all(named):
            raise ValueError(
                "MOTCUA_OIDC_ISSUER, MOTCUA_OIDC_AUDIENCE and MOTCUA_OIDC_JWKS_URL are set together"
            )
        return self


class ServiceSettings(KafkaSettings, IdentitySettings):
    """What every service needs; each service subclasses it with its own fields."""

    environment: Environment = Environment.DEVELOPMENT
    kafka_topic_prefix: str = Field(default="", pattern=r"^[a-zA-Z0-9._-]*$")
    database_url: str = "postgresql://postgres@127.0.0.1:5432/motcua"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    # Units and procedures (data, never code: provinces merge, units are renamed).
    reference_dir: Path = REFERENCE_DIR
    # Kafka consumers per process, sharing the partitions: one applies a batch while another
    # waits on PostgreSQL (2 measured best on 2 cores; see docs/benchmarks.md).
    consumers: int = Field(default=2, ge=1, le=16)
    # Development and tests create the contract's topics; in production the cluster owns them
    # (Strimzi KafkaTopics, replication 3): false, and a missing topic makes the service unready.
    kafka_create_topics: bool = True
    # From SIGTERM to exit: HTTP in flight gets half of it, then the consumers, the outbox and
    # the connections share what is left. Keep it below the pod's grace period minus preStop.
    shutdown_timeout_s: float = Field(default=20.0, ge=1.0, le=300.0)
    id_hash_key: SecretStr = SecretStr(DEV_ID_HASH_KEY)
    # Comma-separated HS256 keys; the first signs development tokens, all verify (key rotation).
    # Development and tests only: production refuses them (tokens come from the identity provider).
    token_keys: SecretStr = SecretStr(DEV_TOKEN_KEY)

    @property
    def topics(self) -> Topics:
        return Topics(self.kafka_topic_prefix)

    @property
    def token_key_list(self) -> list[str]:
        """The HS256 keys that verify tokens: none in production."""
        if self.environment is Environment.PRODUCTION:
            return []
        return self._hs256_keys()

    def _hs256_keys(self) -> list[str]:
        return [k.strip() for k in self.token_keys.get_secret_value().split(",") if k.strip()]

    # The messages name the variable and the rule, never the value (nor a part of it).
    @model_validator(mode="after")
    def _refuse_unusable_keys(self) -> Self:
        keys = self._hs256_keys()
        if not keys:
            raise ValueError("MOTCUA_TOKEN_KEYS holds no key")
        hash_key = self.id_hash_key.get_secret_value()
        if not hash_key:
            raise ValueError("MOTCUA_ID_HASH_KEY must not be empty")
        # One key for both would let whoever verifies tokens recompute applicants' references.
        if hash_key.strip() in keys:
            raise ValueError("MOTCUA_ID_HASH_KEY must differ from every key of MOTCUA_TOKEN_KEYS")
        return self

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            if self.id_hash_key.get_secret_value() == DEV_ID_HASH_KEY:
                raise ValueError("MOTCUA_ID_HASH_KEY must be set to a secret outside development")
            if len(self.id_hash_key.get_secret_value()) < 32:
                raise ValueError("MOTCUA_ID_HASH_KEY must be at least 32 characters")
            self._refuse_shared_token_keys()
            self._refuse_insecure_kafka()
        return self

    def _refuse_shared_token_keys(self) -> None:
        # Whoever holds an HS256 key can mint any counter's or officer's token: production takes
        # only the identity provider's, signed by keys that never leave it.
        if "token_keys" in self.model_fields_set:
            raise ValueError(
                "MOTCUA_TOKEN_KEYS (HS256) is for development and tests: unset it in production"
            )
        if not self.oidc_enabled:
            raise ValueError(
                "MOTCUA_OIDC_ISSUER, MOTCUA_OIDC_AUDIENCE and MOTCUA_OIDC_JWKS_URL must be set "
                "in production"
            )
        if not self.oidc_jwks_url.startswith("https://"):
            raise ValueError("MOTCUA_OIDC_JWKS_URL must be https:// in production")

    def _refuse_insecure_kafka(self) -> None:
        security = self.kafka_security
        # Dossier events carry applicants' (pseudonymised) data and officers' decisions: never
        # readable or writable by whoever reaches the network.
        if not (security.protocol.tls and security.authenticated):
            raise ValueError(
                "MOTCUA_KAFKA_SECURITY_PROTOCOL must be SASL_SSL (or SSL with "
                "MOTCUA_KAFKA_SSL_CERTFILE) in production"
            )
        if security.protocol.sasl and security.mechanism is SaslMechanism.PLAIN:
            # SCRAM proves the password without sending it; PLAIN gives it to every broker.
            raise ValueError(
                "MOTCUA_KAFKA_SASL_MECHANISM=PLAIN is refused in production: use SCRAM"
            )
