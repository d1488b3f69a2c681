// The TLS material of a client connection, from lpm_connect_options: reads the PEM files (or takes
// the PEM texts) of the CA to trust and the client certificate and key, and checks that each is
// PEM of the kind its field asks for, so that a wrong file fails at connect with a message naming
// the field and the path instead of as an anonymous handshake failure. It does not verify
// signatures, expiry or that the key belongs to the certificate: the TLS library does that during
// the handshake. Knows nothing about gRPC (client.cpp makes the credentials).
#pragma once

#include <optional>
#include <string>

#include "lpm_bridge.h"

namespace lpm {

struct TlsMaterial {
  std::string root_certs_pem;   // empty: the TLS library's default roots
  std::string cert_chain_pem;   // empty (and private_key_pem too): no client certificate
  std::string private_key_pem;
  std::string server_name;      // empty: the host of the address
  std::string description;      // for messages: "TLS trusting options.tls_ca_file /x/ca.pem, ..."
};

// std::nullopt when the options ask for plaintext. Throws BridgeError: LPM_ERR_INVALID_ARGUMENT
// (conflicting or missing fields, not PEM, wrong kind, encrypted key), LPM_ERR_IO (a file that
// does not exist or cannot be read).
std::optional<TlsMaterial> load_tls(const lpm_connect_options& options);

}  // namespace lpm
