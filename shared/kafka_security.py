"""How motcua's Kafka clients protect their connections: TLS, SASL (SCRAM) and what goes wrong."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faststream.security import BaseSecurity

# aiokafka and FastStream are imported where used: the settings import this module, and
# commands that never touch Kafka (`motcua token`) should not pay a third of a second for them.


class SecurityProtocol(StrEnum):
    """Kafka's names (`security.protocol`)."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    """The username/password mechanisms. SCRAM never shows the password to the broker; PLAIN
    hands it over (readable by anyone on the path without TLS)."""

    SCRAM_SHA_512 = "SCRAM-SHA-512"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    PLAIN = "PLAIN"


class KafkaSecurityError(ValueError):
    """Security settings that cannot work together; names the variables, never a value."""


@dataclass(frozen=True)
class KafkaSecurity:
    """One process's way to connect to Kafka, applied alike to every producer, consumer and
    admin client (they all reach the same brokers, and each one left out would fail alone).

    `cafile`: the CAs that sign the brokers' certificates (None: the system's trust store).
    `certfile`/`keyfile`: a client certificate, for brokers that authenticate clients by TLS.
    """

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    key_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for problem in self.problems():
            raise KafkaSecurityError(problem)

    def problems(self) -> list[str]:
        """What makes these settings unusable, in words naming the variables."""
        found = []
        if self.protocol.sasl and not (self.username and self.password):
            found.append(
                f"MOTCUA_KAFKA_SECURITY_PROTOCOL={self.protocol} needs "
                "MOTCUA_KAFKA_SASL_USERNAME and MOTCUA_KAFKA_SASL_PASSWORD"
            )
        if not self.protocol.tls and (self.cafile or self.certfile or self.keyfile):
            found.append(
                "MOTCUA_KAFKA_SSL_* files are set but MOTCUA_KAFKA_SECURITY_PROTOCOL="
                f"{self.protocol} does not use TLS (SSL or SASL_SSL)"
            )
        if (self.certfile is None) != (self.keyfile is None):
            found.append("MOTCUA_KAFKA_SSL_CERTFILE and MOTCUA_KAFKA_SSL_KEYFILE go together")
        return found

    @property
    def authenticated(self) -> bool:
        """The broker knows who connects: SASL, or a client certificate over TLS."""
        return self.protocol.sasl or (self.protocol.tls and self.certfile is not None)

    def describe(self) -> str:
        """For logs and error messages: never the password."""
        if self.protocol.sasl:
            return f"{self.protocol} {self.mechanism} as {self.username!r}"
        return str(self.protocol)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """Verifies the broker's certificate and its name (as every default context does); made
        once per settings, since every client of the process shares it."""
        if not self.protocol.tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.cafile) if self.cafile else None
        )
        if self.certfile is not None:
            context.load_cert_chain(self.certfile, self.keyfile, self.key_password)
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's producer, consumer and admin client (none when
        PLAINTEXT, so those clients are built exactly as before)."""
        if self.protocol is SecurityProtocol.PLAINTEXT:
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol.value}
        if self.protocol.tls:
            options["ssl_context"] = self.ssl_context
        if self.protocol.sasl:
            options |= {
                "sasl_mechanism": self.mechanism.value,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return options

    def faststream(self) -> BaseSecurity | None:
        """The same, as FastStream's KafkaBroker takes it (`security=`)."""
        from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

        if self.protocol is SecurityProtocol.PLAINTEXT:
            return None
        if not self.protocol.sasl:
            return BaseSecurity(ssl_context=self.ssl_context)
        kinds: dict[SaslMechanism, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
            SaslMechanism.SCRAM_SHA_512: SASLScram512,
            SaslMechanism.SCRAM_SHA_256: SASLScram256,
            SaslMechanism.PLAIN: SASLPlaintext,
        }
        return kinds[self.mechanism](
            self.username, self.password, ssl_context=self.ssl_context, use_ssl=self.protocol.tls
        )


PLAINTEXT = KafkaSecurity()


class KafkaUnavailable(Exception):
    """Kafka could not be reached or refused us; the message says which and what to check."""


class KafkaAuthenticationFailed(KafkaUnavailable):
    """The brokers refused the credentials (or the TLS handshake): retrying will not help until
    the settings or the broker's users change."""


async def raise_if_refused(
    bootstrap: str, security: KafkaSecurity, timeout_s: float = 10.0
) -> None:
    """Raise KafkaAuthenticationFailed, saying what to check, if the first bootstrap server
    refuses these credentials or certificates (one connection, through TLS and SASL as
    configured); return if it lets us in or cannot be reached at all.

    For a client that could not start: aiokafka then says only "Unable to bootstrap", whatever
    happened (a refused password included).
    """
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

    host, _, port = bootstrap.split(",", maxsplit=1)[0].strip().rpartition(":")
    options = security.client_options()
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host or "localhost",
                int(port),
                request_timeout_ms=int(timeout_s * 1000),
                security_protocol=options.get("security_protocol", "PLAINTEXT"),
                ssl_context=options.get("ssl_context"),
                sasl_mechanism=options.get("sasl_mechanism", "PLAIN"),
                sasl_plain_username=options.get("sasl_plain_username"),
                sasl_plain_password=options.get("sasl_plain_password"),
            ),
            timeout_s,
        )
    except SaslAuthenticationFailed:
        raise KafkaAuthenticationFailed(
            f"Kafka at {bootstrap} refused the credentials ({security.describe()}): check "
            "MOTCUA_KAFKA_SASL_USERNAME and MOTCUA_KAFKA_SASL_PASSWORD (or its _FILE)"
        ) from None
    except UnsupportedSaslMechanismError:
        raise KafkaAuthenticationFailed(
            f"Kafka at {bootstrap} does not offer {security.mechanism}: check "
            "MOTCUA_KAFKA_SASL_MECHANISM"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise KafkaAuthenticationFailed(
            f"Kafka at {bootstrap}: its TLS certificate is not trusted ({exc.verify_message}): "
            "check MOTCUA_KAFKA_SSL_CAFILE"
        ) from None
    except ssl.SSLError as exc:
        raise KafkaAuthenticationFailed(
            f"Kafka at {bootstrap}: TLS handshake failed ({exc.reason}): check that the listener "
            f"speaks MOTCUA_KAFKA_SECURITY_PROTOCOL={security.protocol}"
        ) from None
    except (OSError, TimeoutError, KafkaError):
        # Unreachable (or a listener of another protocol closing on us): the client's own
        # error says so well enough.
        return
    conn.close()
