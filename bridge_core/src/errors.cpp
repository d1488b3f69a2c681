#include "errors.h"

namespace lpm {

namespace {
thread_local std::string g_last_error;
}  // namespace

void set_last_error(const std::string& message) { g_last_error = message; }

const char* last_error() { return g_last_error.c_str(); }

const char* status_name(int status) {
  switch (status) {
    case LPM_OK: return "LPM_OK";
    case LPM_NO_DATA: return "LPM_NO_DATA";
    case LPM_ERR_INVALID_ARGUMENT: return "LPM_ERR_INVALID_ARGUMENT";
    case LPM_ERR_NOT_FOUND: return "LPM_ERR_NOT_FOUND";
    case LPM_ERR_UNAVAILABLE: return "LPM_ERR_UNAVAILABLE";
    case LPM_ERR_RESOURCE_EXHAUSTED: return "LPM_ERR_RESOURCE_EXHAUSTED";
    case LPM_ERR_FAILED_PRECONDITION: return "LPM_ERR_FAILED_PRECONDITION";
    case LPM_ERR_UNAUTHENTICATED: return "LPM_ERR_UNAUTHENTICATED";
    case LPM_ERR_DEADLINE_EXCEEDED: return "LPM_ERR_DEADLINE_EXCEEDED";
    case LPM_ERR_RPC: return "LPM_ERR_RPC";
    case LPM_ERR_RING: return "LPM_ERR_RING";
    case LPM_ERR_RING_BUSY: return "LPM_ERR_RING_BUSY";
    case LPM_ERR_CLOSED: return "LPM_ERR_CLOSED";
    case LPM_ERR_BUFFER_TOO_SMALL: return "LPM_ERR_BUFFER_TOO_SMALL";
    case LPM_ERR_IO: return "LPM_ERR_IO";
    case LPM_ERR_INTERNAL: return "LPM_ERR_INTERNAL";
    default: return "LPM_UNKNOWN_STATUS";
  }
}

}  // namespace lpm
