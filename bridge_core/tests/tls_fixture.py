"""Makes the certificates of bridge_core's TLS tests with lpm-npc's own test PKI
(`lpm_npc.serve.testing.write_test_pki`, the one tests/test_reliability_tls.py uses; needs the
`cryptography` package, lpm-npc's test extra).

    python3 tls_fixture.py DIR      writes DIR/{ca,server,client,other-ca,other-client}.pem and
                                    DIR/{server,client,other-client}.key (PEM, keys unencrypted)
"""

from __future__ import annotations

import sys
from pathlib import Path

from lpm_npc.serve.testing import write_test_pki

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tls_fixture.py DIR")
    write_test_pki(Path(sys.argv[1]))
