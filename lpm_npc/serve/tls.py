"""TLS for the daemon and its clients, and the rule that keeps an exposed daemon from being open.

- `ServerTls.from_files(cert, key, client_ca=None)`: the daemon's certificate chain and key (PEM);
  with `client_ca` the daemon requires and verifies a client certificate (mutual TLS).
- `ClientTls.from_files(ca=None, cert=None, key=None)`: what a client trusts (`ca`; None = the
  system roots) and, for mutual TLS, its own certificate and key.
- `check_exposure(host, token=, tls=, insecure=)`: binding anything but loopback needs a token
  or TLS, unless `insecure` says the operator means it (a trusted LAN, a sidecar that does TLS).

Bad files raise `TlsError` naming the option and the path; nothing here opens sockets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc


class TlsError(ValueError):
    """A TLS file is missing or unreadable, or an exposure rule was broken."""


def _read(path: str | Path | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TlsError(f"{option} {path}: cannot read it ({error.strerror})") from None
    if b"-----BEGIN " not in data:
        raise TlsError(f"{option} {path}: not a PEM file (no '-----BEGIN' line)")
    return data


@dataclass(frozen=True)
class ServerTls:
    """The daemon's TLS material (PEM bytes)."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None  # set: clients must present a certificate signed by it

    @classmethod
    def from_files(
        cls, cert: str | Path, key: str | Path, client_ca: str | Path | None = None
    ) -> ServerTls:
        return cls(
            cert_chain=_read(cert, "--tls-cert"),
            private_key=_read(key, "--tls-key"),
            client_ca=_read(client_ca, "--tls-client-ca"),
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True)
class ClientTls:
    """What a client trusts and (for mutual TLS) presents (PEM bytes)."""

    root_ca: bytes | None = None  # None: the system's root certificates
    cert_chain: bytes | None = None
    private_key: bytes | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
    ) -> ClientTls:
        if (cert is None) != (key is None):
            raise TlsError("--tls-cert and --tls-key go together (a client certificate needs both)")
        return cls(_read(ca, "--tls-ca"), _read(cert, "--tls-cert"), _read(key, "--tls-key"))

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_ca,
            private_key=self.private_key,
            certificate_chain=self.cert_chain,
        )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and "localhost"; anything else (0.0.0.0, [::], a LAN address) is not."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_exposure(host: str, *, token: str | None, tls: bool, insecure: bool) -> None:
    """Refuse a non-loopback bind with neither a token nor TLS unless `insecure` (TlsError)."""
    if is_loopback(host) or token or tls or insecure:
        return
    raise TlsError(
        f"refusing to bind {host} without --token or --tls-cert/--tls-key: anyone who can reach "
        "it could use the daemon; pass --insecure if that is intended"
    )
