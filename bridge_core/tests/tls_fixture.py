"""Makes the certificates of bridge_core's TLS tests (the same kind as tests/test_reliability_tls.py):
a test CA, a server certificate for 127.0.0.1 / localhost and a client certificate signed by it,
and a second, unrelated CA with its own client certificate (what a client must not trust / what
a mutual-TLS daemon must refuse). Needs the `cryptography` package (lpm-npc's test extra).

    python3 tls_fixture.py DIR      writes DIR/{ca,server,client,other-ca,other-client}.pem and
                                    DIR/{server,client,other-client}.key (PEM, keys unencrypted)
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(subject: str, issuer=None, *, ca: bool = False, server: bool = False):  # noqa: ANN001, ANN202
    """(certificate, key): self-signed when `issuer` (certificate, key) is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def write_pki(root: Path) -> None:
    files: dict[str, bytes] = {}
    for prefix, roles in (("", ("server", "client")), ("other-", ("client",))):
        ca = _certificate(f"lpm-npc bridge test {prefix}CA", ca=True)
        files[f"{prefix}ca.pem"] = ca[0].public_bytes(serialization.Encoding.PEM)
        for role in roles:
            cert, key = _certificate(f"{prefix}{role}", ca, server=role == "server")
            files[f"{prefix}{role}.pem"] = cert.public_bytes(serialization.Encoding.PEM)
            files[f"{prefix}{role}.key"] = _pem_key(key)
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tls_fixture.py DIR")
    write_pki(Path(sys.argv[1]))
