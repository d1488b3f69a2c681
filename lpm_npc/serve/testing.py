"""Small real reference sheets for exercising the daemon fast, and a daemon in a subprocess.

`lpm-npc bench serve` and the tests register the sheets; they go through the real sheet loader,
only small. (A small real generator is `StreamingGenerator.from_checkpoint(random_weights=True,
preset="test-tiny")`.) `spawn_daemon` runs `lpm-npc serve` in its own process, for the fault
tests that kill it and the soak benchmark.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def sheet_images(seed: int = 0, size: int = 64) -> list[tuple[str, str, str, bytes]]:
    """(role, label, filename, PNG bytes) of a small random three-image sheet."""
    rng = np.random.default_rng(seed)
    roles = [
        ("global", "", "scene.png"),
        ("view", "front", "front.png"),
        ("expression", "smile", "smile.png"),
    ]
    return [
        (role, label, name, png_bytes(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
        for role, label, name in roles
    ]


def spawn_daemon(
    store: Path,
    *extra: str,
    preset: str = "test-tiny",
    measure_capacity: bool = False,
    start_timeout_s: float = 120.0,
) -> tuple[subprocess.Popen, str]:
    """`lpm-npc serve --port 0 --random-weights` on `store` in a subprocess (one torch thread);
    returns (process, "127.0.0.1:PORT") once it printed `listening on`. Without
    `measure_capacity` it admits up to max_sessions (a loaded test machine must not decide how
    many sessions a test may open). Raises RuntimeError (after killing it) if it exits or stays
    silent for `start_timeout_s`."""
    command = [
        sys.executable,
        "-m",
        "lpm_npc.cli",
        "serve",
        "--port",
        "0",
        "--store",
        str(store),
        "--random-weights",
        "--preset",
        preset,
        "--threads",
        "1",
        *([] if measure_capacity else ["--no-measure-capacity"]),
        *extra,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("listening on "):
            return process, line.split()[-1]
        if not line and process.poll() is not None:
            break
    process.kill()
    process.wait()
    raise RuntimeError(f"lpm-npc serve did not start: {' '.join(command)}")


# --- TLS test certificates (tests/test_reliability_tls.py, bridge_core/tests/tls_fixture.py) ---
def _pem_key(key) -> bytes:  # noqa: ANN001
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(subject: str, issuer=None, *, ca: bool = False, server: bool = False):  # noqa: ANN001, ANN202
    """(certificate, key): self-signed when `issuer` (certificate, key) is None."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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


def write_test_pki(root: Path) -> dict[str, Path]:
    """Test certificates (needs `cryptography`, the test extra): a CA, a server certificate for
    127.0.0.1 / localhost and a client certificate signed by it, and an unrelated second CA with its
    own client certificate (what a client must not trust, what a mutual-TLS daemon must refuse).
    Writes root/{ca,server,client,other-ca,other-client}.pem and root/{server,client,other-client}.key
    (PEM, keys unencrypted); returns {file name: path}."""
    from cryptography.hazmat.primitives import serialization

    files: dict[str, bytes] = {}
    for prefix, roles in (("", ("server", "client")), ("other-", ("client",))):
        ca = _certificate(f"lpm-npc test {prefix}CA", ca=True)
        files[f"{prefix}ca.pem"] = ca[0].public_bytes(serialization.Encoding.PEM)
        for role in roles:
            cert, key = _certificate(f"{prefix}{role}", ca, server=role == "server")
            files[f"{prefix}{role}.pem"] = cert.public_bytes(serialization.Encoding.PEM)
            files[f"{prefix}{role}.key"] = _pem_key(key)
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in files}
