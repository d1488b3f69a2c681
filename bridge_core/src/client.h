// ClientCore: one gRPC channel to the daemon (plaintext, or TLS from tls.h) with the two service
// stubs, the token and the timeout of unary calls; the character calls (ping, register a sheet
// directory). Sessions hold a shared_ptr to it, so a client can be destroyed before its sessions.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "errors.h"
#include "lpm_bridge.h"
#include "lpm_npc/v1/characters.grpc.pb.h"
#include "lpm_npc/v1/sessions.grpc.pb.h"
#include "tls.h"

namespace lpm {

class ClientCore {
 public:
  // Creates the channel (TLS when `tls` is set) and waits until it is ready (BridgeError
  // UNAVAILABLE otherwise, with gRPC's last connection error when it has one).
  static std::shared_ptr<ClientCore> connect(const std::string& address, const std::string& token,
                                             uint32_t timeout_ms,
                                             const std::optional<TlsMaterial>& tls);

  // Adds the token metadata and, for unary calls, the deadline.
  void prepare(grpc::ClientContext* context, bool with_deadline) const;
  // True when the address names this host (SHM rings are only mapped then, for AUTO delivery).
  bool is_local() const;

  uint32_t ping() const;
  lpm_character_info register_dir(const std::string& sheet_dir,
                                  const std::string& character_id) const;

  const std::string& address() const { return address_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  lpm_npc::v1::Characters::Stub& characters() const { return *characters_; }
  lpm_npc::v1::Sessions::Stub& sessions() const { return *sessions_; }

 private:
  // gRPC's reason why the channel is not ready ("" when it gives none); at most about 1 s.
  std::string last_connection_error() const;

  std::string address_;
  std::string authorization_;  // "Bearer <token>" or empty
  std::chrono::milliseconds timeout_{30000};
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<lpm_npc::v1::Characters::Stub> characters_;
  std::unique_ptr<lpm_npc::v1::Sessions::Stub> sessions_;
};

// A failed call as a BridgeError: "<what>: <GRPC_CODE>: <daemon message>".
BridgeError rpc_error(const grpc::Status& status, const std::string& what);
lpm_status status_from_grpc(grpc::StatusCode code);
const char* grpc_code_name(grpc::StatusCode code);

}  // namespace lpm
