#include "tls.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <vector>

#include "errors.h"

namespace lpm {

namespace fs = std::filesystem;

namespace {

// A CA bundle (every public root) is about 250 KB; anything far larger is not a certificate.
constexpr std::uintmax_t kMaxPemFileBytes = 4u * 1024 * 1024;

enum class PemKind { kCertificate, kPrivateKey };

bool is_set(const char* s) { return s != nullptr && s[0] != '\0'; }

// One piece of material: the `<name>_file` and `<name>_pem` fields of lpm_connect_options.
struct Piece {
  std::string name;  // "tls_ca", "tls_cert", "tls_key"
  const char* file;
  const char* pem;
  PemKind kind;

  bool given() const { return is_set(file) || is_set(pem); }
  // "options.tls_ca_file /x/ca.pem" or "options.tls_ca_pem": how messages name it.
  std::string origin() const {
    return is_set(file) ? "options." + name + "_file " + file : "options." + name + "_pem";
  }
};

std::string read_pem_file(const Piece& piece) {
  const std::string where = piece.origin();
  const fs::path path = fs::u8path(piece.file);
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
    throw BridgeError(LPM_ERR_IO, where + ": cannot read it (" + ec.message() + ")");
  if (!fs::exists(status)) throw BridgeError(LPM_ERR_IO, where + ": no such file");
  if (fs::is_directory(status)) throw BridgeError(LPM_ERR_IO, where + ": is a directory, not a PEM file");
  std::uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > kMaxPemFileBytes)
    throw BridgeError(LPM_ERR_IO, where + ": " + std::to_string(size) +
                                      " bytes, more than a PEM certificate or key can be (4 MiB)");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string reason = errno != 0 ? std::strerror(errno) : "unknown reason";
    throw BridgeError(LPM_ERR_IO, where + ": cannot read it (" + reason + ")");
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw BridgeError(LPM_ERR_IO, where + ": error while reading it");
  return text;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Decodes the base64 body of a PEM block; false if it is not base64 (whitespace is skipped).
bool decode_base64(const std::string& body, std::vector<unsigned char>* out) {
  unsigned int bits = 0;
  int nbits = 0;
  size_t padding = 0, symbols = 0;
  for (char c : body) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    ++symbols;
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = base64_value(c);
    if (v < 0 || padding > 0) return false;  // a foreign character, or data after the padding
    bits = (bits << 6) | static_cast<unsigned int>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out->push_back(static_cast<unsigned char>((bits >> nbits) & 0xFF));
    }
  }
  return symbols % 4 == 0 && padding <= 2 && !out->empty();
}

struct PemBlock {
  std::string label;  // "CERTIFICATE", "PRIVATE KEY", ...
  size_t line;        // of its BEGIN line, 1-based
};

// Every block of `text`; throws INVALID_ARGUMENT for a block that is cut short, encrypted, or
// whose body is not base64 of DER (which always starts with a SEQUENCE, 0x30).
std::vector<PemBlock> parse_pem(const std::string& text, const std::string& where) {
  static const std::string kBegin = "-----BEGIN ", kEnd = "-----END ", kDashes = "-----";
  std::vector<PemBlock> blocks;
  std::istringstream lines(text);
  std::string line, body;
  size_t number = 0;
  std::optional<PemBlock> open;  // the block being read
  while (std::getline(lines, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!open) {
      size_t at = line.find(kBegin);
      if (at == std::string::npos) continue;  // text between blocks is allowed (openssl writes some)
      size_t close = line.find(kDashes, at + kBegin.size());
      if (close == std::string::npos) continue;
      open = PemBlock{line.substr(at + kBegin.size(), close - at - kBegin.size()), number};
      body.clear();
      continue;
    }
    const std::string label = open->label;
    if (line.rfind(kEnd, 0) == 0) {
      if (line != kEnd + label + kDashes)
        throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                          where + ": the " + label + " block of line " + std::to_string(open->line) +
                              " ends with '" + line + "' on line " + std::to_string(number));
      std::vector<unsigned char> der;
      if (!decode_base64(body, &der) || der[0] != 0x30)
        throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                          where + ": the " + label + " block of line " + std::to_string(open->line) +
                              " is not valid base64 DER (a damaged or hand-edited PEM file)");
      blocks.push_back(*open);
      open.reset();
      continue;
    }
    if (line.find(':') != std::string::npos) {  // RFC 1421 headers: only legacy encryption uses them
      if (line.find("ENCRYPTED") != std::string::npos)
        throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                          where + ": the " + label +
                              " is encrypted; the bridge takes unencrypted keys (openssl pkey -in KEY -out PLAIN)");
      continue;
    }
    body += line;
  }
  if (open)
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      where + ": the " + open->label + " block of line " + std::to_string(open->line) +
                          " has no '-----END " + open->label + "-----' line (a truncated PEM file?)");
  return blocks;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The piece's PEM text, checked to hold at least one block of its kind.
std::string load_piece(const Piece& piece) {
  if (is_set(piece.file) && is_set(piece.pem))
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT, "options." + piece.name + "_file and options." +
                                                    piece.name + "_pem are both set: give one");
  const std::string where = piece.origin();
  std::string text = is_set(piece.file) ? read_pem_file(piece) : std::string(piece.pem);
  const char* wanted = piece.kind == PemKind::kCertificate ? "CERTIFICATE" : "PRIVATE KEY";
  if (text.find("-----BEGIN ") == std::string::npos) {
    std::string hint = !text.empty() && static_cast<unsigned char>(text[0]) == 0x30
                           ? " (it looks like DER: convert it with openssl " +
                                 std::string(piece.kind == PemKind::kCertificate ? "x509" : "pkey") +
                                 " -inform der -in F -out F.pem)"
                           : "";
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      where + (text.empty() ? ": is empty" : ": is not PEM (no '-----BEGIN' line)") +
                          "; expected a " + wanted + " block" + hint);
  }
  std::vector<PemBlock> blocks = parse_pem(text, where);
  std::string found;
  for (const PemBlock& block : blocks) {
    if (block.label == "ENCRYPTED PRIVATE KEY")
      throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                        where + ": the private key is encrypted; the bridge takes unencrypted keys "
                                "(openssl pkey -in KEY -out PLAIN)");
    bool fits = piece.kind == PemKind::kCertificate ? block.label == "CERTIFICATE"
                                                    : ends_with(block.label, "PRIVATE KEY");
    if (fits) return text;
    found += (found.empty() ? "" : ", ") + block.label;
  }
  throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                    where + ": holds no " + wanted + " block (found: " +
                        (found.empty() ? std::string("none") : found) + ")" +
                        (piece.kind == PemKind::kPrivateKey ? "; give the private key here, not the certificate" : ""));
}

}  // namespace

std::optional<TlsMaterial> load_tls(const lpm_connect_options& options) {
  if (options.tls != 0 && options.tls != 1)
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      "options.tls must be 0 (plaintext) or 1 (TLS), got " + std::to_string(options.tls));
  Piece ca{"tls_ca", options.tls_ca_file, options.tls_ca_pem, PemKind::kCertificate};
  Piece cert{"tls_cert", options.tls_cert_file, options.tls_cert_pem, PemKind::kCertificate};
  Piece key{"tls_key", options.tls_key_file, options.tls_key_pem, PemKind::kPrivateKey};
  if (options.tls == 0 && !ca.given() && !cert.given() && !key.given() && !is_set(options.tls_server_name))
    return std::nullopt;
  // Before any file is read: a half-given client identity is a mistake whatever the files hold.
  if (cert.given() && !key.given())
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      cert.origin() + " is set without a key: mutual TLS needs options.tls_key_file "
                                      "or options.tls_key_pem too");
  if (key.given() && !cert.given())
    throw BridgeError(LPM_ERR_INVALID_ARGUMENT,
                      key.origin() + " is set without a certificate: mutual TLS needs "
                                     "options.tls_cert_file or options.tls_cert_pem too");
  TlsMaterial tls;
  tls.description = "TLS trusting ";
  if (ca.given()) {
    tls.root_certs_pem = load_piece(ca);
    tls.description += ca.origin();
  } else {
    tls.description += "the default roots";
  }
  if (cert.given()) {
    tls.cert_chain_pem = load_piece(cert);
    tls.private_key_pem = load_piece(key);
    tls.description += ", with the client certificate " + cert.origin();
  } else {
    tls.description += ", without a client certificate";
  }
  if (is_set(options.tls_server_name)) {
    tls.server_name = options.tls_server_name;
    tls.description += ", expecting the name " + tls.server_name;
  }
  return tls;
}

}  // namespace lpm
