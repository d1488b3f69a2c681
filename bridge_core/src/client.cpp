#include "client.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace lpm {

namespace v1 = lpm_npc::v1;
namespace fs = std::filesystem;

namespace {

// The daemon accepts messages up to 40 MiB; a sheet is at most 32 MiB of files.
constexpr int kMaxMessageBytes = 64 * 1024 * 1024;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BridgeError(LPM_ERR_IO, "cannot read " + path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw BridgeError(LPM_ERR_IO, "error while reading " + path.string());
  return bytes;
}

}  // namespace

const char* grpc_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN_CODE";
  }
}

lpm_status status_from_grpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return LPM_OK;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return LPM_ERR_INVALID_ARGUMENT;
    case grpc::StatusCode::NOT_FOUND: return LPM_ERR_NOT_FOUND;
    case grpc::StatusCode::UNAVAILABLE: return LPM_ERR_UNAVAILABLE;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return LPM_ERR_RESOURCE_EXHAUSTED;
    case grpc::StatusCode::FAILED_PRECONDITION: return LPM_ERR_FAILED_PRECONDITION;
    case grpc::StatusCode::UNAUTHENTICATED: return LPM_ERR_UNAUTHENTICATED;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return LPM_ERR_DEADLINE_EXCEEDED;
    default: return LPM_ERR_RPC;
  }
}

BridgeError rpc_error(const grpc::Status& status, const std::string& what) {
  return BridgeError(status_from_grpc(status.error_code()),
                     what + ": " + grpc_code_name(status.error_code()) + ": " +
                         status.error_message());
}

std::shared_ptr<ClientCore> ClientCore::connect(const std::string& address,
                                                const std::string& token, uint32_t timeout_ms,
                                                const std::optional<TlsMaterial>& tls) {
  if (address.empty()) throw BridgeError(LPM_ERR_INVALID_ARGUMENT, "address is empty: give host:port");
  auto core = std::make_shared<ClientCore>();
  core->address_ = address;
  if (!token.empty()) core->authorization_ = "Bearer " + token;
  core->timeout_ = std::chrono::milliseconds(timeout_ms == 0 ? 30000 : timeout_ms);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = tls->root_certs_pem;
    ssl.pem_cert_chain = tls->cert_chain_pem;
    ssl.pem_private_key = tls->private_key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!tls->server_name.empty()) args.SetSslTargetNameOverride(tls->server_name);
  }
  core->channel_ = grpc::CreateCustomChannel(address, credentials, args);
  core->characters_ = v1::Characters::NewStub(core->channel_);
  core->sessions_ = v1::Sessions::NewStub(core->channel_);
  if (!core->channel_->WaitForConnected(std::chrono::system_clock::now() + core->timeout_)) {
    std::string message = "could not connect to the daemon at " + address + " within " +
                          std::to_string(core->timeout_.count()) + " ms";
    if (tls) {
      message += " over " + tls->description +
                 "; check that `lpm-npc serve` runs there with --tls-cert and a certificate for "
                 "this host signed by that CA, whether it wants a client certificate "
                 "(--tls-client-ca)";
      // A key of another certificate is only found by the TLS library, which then makes no
      // connection attempt at all (gRPC logs "Invalid private key").
      if (!tls->cert_chain_pem.empty()) message += ", and that the client key belongs to the client certificate";
    } else {
      message += " in plaintext; check that `lpm-npc serve` runs there (without --tls-cert: a TLS "
                 "daemon needs the TLS options)";
    }
    std::string reason = core->last_connection_error();
    if (!reason.empty()) message += "; gRPC: " + reason;
    throw BridgeError(LPM_ERR_UNAVAILABLE, message);
  }
  return core;
}

std::string ClientCore::last_connection_error() const {
  // A fail-fast call on a channel in TRANSIENT_FAILURE ends at once with gRPC's reason for the
  // last failed attempt (refused, handshake failed, certificate verify failed, ...).
  grpc::ClientContext context;
  context.set_wait_for_ready(false);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
  v1::ListCharactersRequest request;
  v1::ListCharactersResponse response;
  grpc::Status status = characters_->ListCharacters(&context, request, &response);
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return "";
  std::string reason = status.error_message();
  while (!reason.empty() && (reason.back() == ' ' || reason.back() == ':')) reason.pop_back();
  return reason;
}

void ClientCore::prepare(grpc::ClientContext* context, bool with_deadline) const {
  if (!authorization_.empty()) context->AddMetadata("authorization", authorization_);
  if (with_deadline) context->set_deadline(std::chrono::system_clock::now() + timeout_);
}

bool ClientCore::is_local() const {
  std::string a = address_;
  for (const char* scheme : {"dns:///", "ipv4:", "ipv6:"})
    if (a.rfind(scheme, 0) == 0) a = a.substr(std::strlen(scheme));
  if (a.rfind("unix:", 0) == 0) return true;
  std::string host;
  if (!a.empty() && a[0] == '[') {
    host = a.substr(1, a.find(']') == std::string::npos ? std::string::npos : a.find(']') - 1);
  } else {
    host = a.substr(0, a.rfind(':'));
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

uint32_t ClientCore::ping() const {
  grpc::ClientContext context;
  prepare(&context, true);
  v1::ListCharactersRequest request;
  v1::ListCharactersResponse response;
  grpc::Status status = characters_->ListCharacters(&context, request, &response);
  if (!status.ok()) throw rpc_error(status, "ListCharacters at " + address_);
  return static_cast<uint32_t>(response.characters_size());
}

lpm_character_info ClientCore::register_dir(const std::string& sheet_dir,
                                            const std::string& character_id) const {
  fs::path dir(sheet_dir);
  fs::path manifest = dir / "sheet.toml";
  std::error_code ec;
  if (!fs::is_regular_file(manifest, ec))
    throw BridgeError(LPM_ERR_IO, manifest.string() +
                                      " not found: a sheet directory holds sheet.toml and its images");
  v1::RegisterCharacterRequest request;
  request.set_character_id(character_id);
  v1::SheetManifest* sheet = request.mutable_manifest();
  sheet->set_manifest(read_file(manifest));
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name != "sheet.toml" && name[0] != '.') files.push_back(entry.path());
  }
  if (ec) throw BridgeError(LPM_ERR_IO, "cannot list " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    v1::SheetFile* f = sheet->add_files();
    f->set_filename(file.filename().string());
    f->set_content(read_file(file));
  }
  grpc::ClientContext context;
  prepare(&context, true);
  v1::RegisterCharacterResponse response;
  grpc::Status status = characters_->RegisterCharacter(&context, request, &response);
  if (!status.ok()) throw rpc_error(status, "RegisterCharacter " + dir.string());
  lpm_character_info info{};
  info.created = response.created() ? 1 : 0;
  info.reference_count = static_cast<uint32_t>(response.character().references_size());
  copy_to(info.character_id, sizeof info.character_id, response.character_id());
  copy_to(info.version, sizeof info.version, response.version());
  return info;
}

}  // namespace lpm
