"""HTTPS for ``kefu serve``: uvicorn options that accept TLS 1.3 and nothing older.

uvicorn builds its own ``SSLContext`` from ``ssl_certfile`` / ``ssl_keyfile`` / ``ssl_version``, and none of
those options sets a *minimum* version (``ssl_version=PROTOCOL_TLS_SERVER`` still negotiates TLS 1.2).
Since 0.47 uvicorn takes an ``ssl_context_factory(config, default_factory)``: ``tls13_only`` calls
uvicorn's own factory (same certificate loading, same ALPN list) and raises ``minimum_version`` to
TLS 1.3 on that one context. Nothing global is patched.

The certificate and key are checked before the server starts, so a wrong path, an unreadable file, a
passphrase-protected key or a key that belongs to another certificate fails at once with a
``ConfigError`` naming the ``--tls-cert`` / ``--tls-key`` option, not deep inside uvicorn.
"""

from __future__ import annotations

import datetime as dt
import inspect
import ipaddress
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kefu.errors import ConfigError

log = logging.getLogger("kefu.tls")

CERT_OPTION, KEY_OPTION = "--tls-cert", "--tls-key"
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def tls13_only(config: object, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn ``ssl_context_factory``: uvicorn's own context, refusing every version below TLS 1.3."""
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def tls_server_config(cert: Path, key: Path) -> dict[str, Any]:
    """Keyword options for ``uvicorn.run`` / ``uvicorn.Config`` serving HTTPS with TLS 1.3 only."""
    _require_support()
    check_certificate(cert, key)
    return {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_version": ssl.PROTOCOL_TLS_SERVER,
        "ssl_context_factory": tls13_only,
    }


def serve_tls_options(cert: Path | None, key: Path | None) -> dict[str, Any]:
    """The CLI's view: no options → plain HTTP (``{}``); both → TLS 1.3 only; one alone → error."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        given, missing = (CERT_OPTION, KEY_OPTION) if key is None else (KEY_OPTION, CERT_OPTION)
        raise ConfigError(f"{given} was given without {missing}; HTTPS needs both, or neither for HTTP.")
    return tls_server_config(cert, key)


def _require_support() -> None:
    if not ssl.HAS_TLSv1_3:
        raise ConfigError(
            f"this Python's OpenSSL ({ssl.OPENSSL_VERSION}) cannot speak TLS 1.3; use OpenSSL 1.1.1 or "
            "newer, or terminate TLS in a proxy (nginx) and serve plain HTTP behind it."
        )
    import uvicorn

    if "ssl_context_factory" not in inspect.signature(uvicorn.Config).parameters:
        raise ConfigError(
            f"uvicorn {uvicorn.__version__} cannot restrict TLS versions; {CERT_OPTION} needs "
            "uvicorn 0.47 or newer (`pip install -U 'uvicorn[standard]>=0.47'`)."
        )


def _read(path: Path, option: str, what: str) -> bytes:
    if not path.is_file():
        raise ConfigError(f"{option}: {path} does not exist or is not a file; pass the PEM {what}'s path.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{option}: cannot read {path} ({exc.strerror}); give kefu read access to the {what}."
        ) from None


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(_read(path, CERT_OPTION, "certificate"))[0]
    except ValueError:
        raise ConfigError(
            f"{CERT_OPTION}: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); pass the "
            "server certificate, followed by any intermediates, in PEM form."
        ) from None


def _load_private_key(path: Path) -> PrivateKeyTypes:
    data = _read(path, KEY_OPTION, "private key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"{KEY_OPTION}: {path} is protected by a passphrase; store it unencrypted with "
            f"`openssl pkey -in {path} -out server.key` and keep that file readable only by kefu."
        ) from None
    except ValueError:
        raise ConfigError(
            f"{KEY_OPTION}: {path} holds no PEM private key (-----BEGIN PRIVATE KEY-----); pass the "
            "key that belongs to the certificate."
        ) from None


def check_certificate(cert: Path, key: Path) -> None:
    """Raise ``ConfigError`` naming the option when the certificate and key cannot serve together."""
    certificate, private_key = _load_certificate(cert), _load_private_key(key)
    if certificate.public_key().public_bytes(*_SPKI) != private_key.public_key().public_bytes(*_SPKI):
        raise ConfigError(
            f"{KEY_OPTION} ({key}) is not the private key of the certificate in {CERT_OPTION} ({cert}); "
            "pass the key the certificate was issued for."
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(f"{CERT_OPTION} / {KEY_OPTION}: OpenSSL refused them ({exc.reason}).") from None
    if certificate.not_valid_after_utc < dt.datetime.now(dt.UTC):
        log.warning(
            "the certificate in %s (%s) expired on %s", CERT_OPTION, cert, certificate.not_valid_after_utc
        )


def write_dev_certificate(
    cert: Path, key: Path, hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"), days: int = 30
) -> None:
    """A self-signed certificate for local HTTPS (tests, trying ``--tls-cert``); never for production."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
