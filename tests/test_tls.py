"""TLS 1.3 only: a real uvicorn server with ``tls_server_config`` against real TLS 1.2 and 1.3 clients."""

from __future__ import annotations

import inspect
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from kefu.errors import ConfigError
from kefu.tls import serve_tls_options, tls_server_config, write_dev_certificate


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI app: 200 and a body on every HTTP request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello over tls"})


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "server.crt", folder / "server.key"
    write_dev_certificate(cert, key)
    return cert, key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def https_server(**options: Any) -> Iterator[int]:
    """``hello`` behind a real uvicorn server with these SSL options; yields the port."""
    port = free_port()
    config = uvicorn.Config(hello, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the TLS test server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def tls13_port(cert_pair: tuple[Path, Path]) -> Iterator[int]:
    with https_server(**tls_server_config(*cert_pair)) as port:
        yield port


def client_context(cert: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A verifying client that trusts the self-signed certificate and speaks exactly ``version``."""
    context = ssl.create_default_context(cafile=str(cert))
    context.minimum_version = context.maximum_version = version
    return context


def handshake(port: int, context: ssl.SSLContext) -> str:
    """The negotiated protocol version, from a raw socket handshake."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def test_a_tls13_client_is_served(tls13_port: int, cert_pair: tuple[Path, Path]):
    context = client_context(cert_pair[0], ssl.TLSVersion.TLSv1_3)
    assert handshake(tls13_port, context) == "TLSv1.3"
    response = httpx.get(f"https://localhost:{tls13_port}/", verify=context)
    assert response.status_code == 200 and response.text == "hello over tls"


def test_a_default_client_negotiates_tls13(tls13_port: int, cert_pair: tuple[Path, Path]):
    context = ssl.create_default_context(cafile=str(cert_pair[0]))  # offers TLS 1.2 and 1.3
    assert handshake(tls13_port, context) == "TLSv1.3"


def test_a_tls12_client_fails_the_handshake(tls13_port: int, cert_pair: tuple[Path, Path]):
    context = client_context(cert_pair[0], ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError) as refused:
        handshake(tls13_port, context)
    # The server ends the handshake (an alert or, with uvloop, a bare close); the certificate is not
    # the reason: the same client is served by uvicorn's defaults (next test).
    assert not isinstance(refused.value, ssl.SSLCertVerificationError)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://localhost:{tls13_port}/", verify=context)


def test_without_the_factory_uvicorn_would_accept_tls12(cert_pair: tuple[Path, Path]):
    """The control: the TLS 1.2 client works against uvicorn's own defaults, so the refusal above
    comes from ``tls_server_config`` and not from the client or this OpenSSL build."""
    cert, key = cert_pair
    context = client_context(cert, ssl.TLSVersion.TLSv1_2)
    with https_server(ssl_certfile=str(cert), ssl_keyfile=str(key)) as port:
        assert handshake(port, context) == "TLSv1.2"


def test_the_options_are_uvicorn_run_keywords(cert_pair: tuple[Path, Path]):
    options = tls_server_config(*cert_pair)
    assert set(options) <= set(inspect.signature(uvicorn.run).parameters)
    assert options["ssl_version"] == ssl.PROTOCOL_TLS_SERVER


def test_no_options_means_plain_http_and_one_alone_is_refused(cert_pair: tuple[Path, Path]):
    cert, key = cert_pair
    assert serve_tls_options(None, None) == {}
    assert serve_tls_options(cert, key)["ssl_certfile"] == str(cert)
    with pytest.raises(ConfigError, match="--tls-cert was given without --tls-key"):
        serve_tls_options(cert, None)
    with pytest.raises(ConfigError, match="--tls-key was given without --tls-cert"):
        serve_tls_options(None, key)


def test_missing_files_name_their_option(tmp_path: Path, cert_pair: tuple[Path, Path]):
    cert, key = cert_pair
    with pytest.raises(ConfigError, match=r"--tls-cert: .*nope\.crt does not exist"):
        tls_server_config(tmp_path / "nope.crt", key)
    with pytest.raises(ConfigError, match=r"--tls-key: .* does not exist or is not a file"):
        tls_server_config(cert, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_key_names_its_option(tmp_path: Path, cert_pair: tuple[Path, Path]):
    locked = tmp_path / "locked.key"
    locked.write_bytes(cert_pair[1].read_bytes())
    locked.chmod(0)
    with pytest.raises(ConfigError, match="--tls-key: cannot read"):
        tls_server_config(cert_pair[0], locked)


def test_files_with_the_wrong_content_name_their_option(tmp_path: Path, cert_pair: tuple[Path, Path]):
    cert, key = cert_pair
    with pytest.raises(ConfigError, match=r"--tls-cert: .* holds no PEM certificate"):
        tls_server_config(key, key)
    with pytest.raises(ConfigError, match=r"--tls-key: .* holds no PEM private key"):
        tls_server_config(cert, cert)


def test_a_key_of_another_certificate_is_refused(tmp_path: Path, cert_pair: tuple[Path, Path]):
    other_cert, other_key = tmp_path / "other.crt", tmp_path / "other.key"
    write_dev_certificate(other_cert, other_key)
    with pytest.raises(
        ConfigError, match=r"--tls-key .* is not the private key of the certificate in --tls-cert"
    ):
        tls_server_config(cert_pair[0], other_key)


def test_a_passphrase_protected_key_is_refused(tmp_path: Path, cert_pair: tuple[Path, Path]):
    from cryptography.hazmat.primitives import serialization

    plain = serialization.load_pem_private_key(cert_pair[1].read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        plain.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(ConfigError, match=r"--tls-key: .* is protected by a passphrase"):
        tls_server_config(cert_pair[0], locked)
