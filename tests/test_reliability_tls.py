"""TLS and mutual TLS with certificates this test makes, and the exposure rule: a non-loopback
bind needs a token or TLS unless `insecure`. Needs the `cryptography` package (test extra)."""

import json
from pathlib import Path

import grpc
import pytest

from lpm_npc.cli import main as cli_main
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.serve.client import LpmClient
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images, write_test_pki
from lpm_npc.serve.tls import ClientTls, ServerTls, TlsError, check_exposure, is_loopback

pytest.importorskip("cryptography.x509")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, a client certificate (and another
    CA's client certificate)."""
    return write_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def generator():
    return StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny")


def test_tls_serves_clients_that_trust_the_ca_and_refuses_plain_text(pki, generator, tmp_path):
    tls = ServerTls.from_files(pki["server.pem"], pki["server.key"])
    with ServerThread(generator=generator, store_dir=str(tmp_path), tls=tls) as running:
        trusted = ClientTls.from_files(ca=pki["ca.pem"])
        with LpmClient(running.address, timeout=10, tls=trusted) as client:
            assert client.list() == []
        with LpmClient(running.address, timeout=5) as plain:
            with pytest.raises(grpc.RpcError) as error:
                plain.list()
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_signed_by_the_client_ca(
    pki, generator, tmp_path, capsys
):
    tls = ServerTls.from_files(pki["server.pem"], pki["server.key"], client_ca=pki["ca.pem"])
    with ServerThread(generator=generator, store_dir=str(tmp_path), tls=tls) as running:
        mutual = ClientTls.from_files(pki["ca.pem"], pki["client.pem"], pki["client.key"])
        with LpmClient(running.address, timeout=10, tls=mutual) as client:
            client.register_images("ann", sheet_images(seed=1))
        tls_args = ["--tls-ca", str(pki["ca.pem"]), "--tls-cert", str(pki["client.pem"])]
        tls_args += ["--tls-key", str(pki["client.key"])]
        assert cli_main(["client", "--address", running.address, *tls_args, "list", "--json"]) == 0
        assert [c["id"] for c in json.loads(capsys.readouterr().out)] == ["ann"]
        anonymous = ClientTls.from_files(ca=pki["ca.pem"])
        with LpmClient(running.address, timeout=5, tls=anonymous) as client:
            with pytest.raises(grpc.RpcError) as error:
                client.list()
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_exposure_rule_and_bad_tls_files(pki, tmp_path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("[::]") and not is_loopback("game.lan")
    with pytest.raises(TlsError, match="refusing to bind 0.0.0.0.*--insecure"):
        check_exposure("0.0.0.0", token=None, tls=False, insecure=False)
    check_exposure("0.0.0.0", token="t", tls=False, insecure=False)
    check_exposure("0.0.0.0", token=None, tls=True, insecure=False)
    check_exposure("0.0.0.0", token=None, tls=False, insecure=True)
    check_exposure("127.0.0.1", token=None, tls=False, insecure=False)
    with pytest.raises(TlsError, match="--tls-key .*missing.key: cannot read"):
        ServerTls.from_files(pki["server.pem"], tmp_path / "missing.key")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(TlsError, match="--tls-cert .*junk.pem: not a PEM"):
        ServerTls.from_files(tmp_path / "junk.pem", pki["server.key"])
    with pytest.raises(TlsError, match="go together"):
        ClientTls.from_files(cert=pki["client.pem"])


def test_serve_refuses_a_public_bind_without_token_or_tls(tmp_path, capsys) -> None:
    rc = cli_main(["serve", "--host", "0.0.0.0", "--port", "0", "--store", str(tmp_path)])
    assert rc != 0
    assert "refusing to bind 0.0.0.0" in capsys.readouterr().err
