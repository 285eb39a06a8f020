#include "lxmig/base/status.h"

#include <cstring>

namespace lxmig {

std::string_view codeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid-argument";
    case Code::kNotFound:
      return "not-found";
    case Code::kAlreadyExists:
      return "already-exists";
    case Code::kFailedPrecondition:
      return "failed-precondition";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kAborted:
      return "aborted";
    case Code::kCancelled:
      return "cancelled";
    case Code::kResourceExhausted:
      return "resource-exhausted";
    case Code::kDeadlineExceeded:
      return "deadline-exceeded";
    case Code::kPermissionDenied:
      return "permission-denied";
    case Code::kUnimplemented:
      return "unimplemented";
    case Code::kInternal:
      return "internal";
  }
  return "unknown";
}

static Code codeForErrno(int err) {
  switch (err) {
    case ENOENT:
    case ESRCH:
      return Code::kNotFound;
    case EEXIST:
      return Code::kAlreadyExists;
    case EACCES:
    case EPERM:
      return Code::kPermissionDenied;
    case EINVAL:
      return Code::kInvalidArgument;
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EDQUOT:
      return Code::kResourceExhausted;
    case EAGAIN:
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EPIPE:
    case ETIMEDOUT:
      return Code::kUnavailable;
    case ENOSYS:
    case EOPNOTSUPP:
      return Code::kUnimplemented;
    default:
      return Code::kInternal;
  }
}

Status Status::fromErrno(std::string_view what, std::string_view object, int err) {
  std::string m(what);
  if (!object.empty()) {
    m += " `";
    m += object;
    m += "`";
  }
  m += ": ";
  m += ::strerror(err);
  return Status(codeForErrno(err), std::move(m), err);
}

Status Status::withContext(std::string_view context) const& {
  Status s = *this;
  return std::move(s).withContext(context);
}

Status Status::withContext(std::string_view context) && {
  if (ok()) return std::move(*this);
  std::string m(context);
  m += ": ";
  m += message_;
  message_ = std::move(m);
  return std::move(*this);
}

std::string Status::toString() const {
  if (ok()) return "ok";
  return message_;
}

}  // namespace lxmig
