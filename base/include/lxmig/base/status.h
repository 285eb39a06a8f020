// Status and Result<T>: errors as values, shared by every lxmig component.
//
// A Status carries a code whose meaning drives what the caller does next,
// a message that gains context on its way up, and the errno when a system
// call failed:
//
//   Unavailable        retry the same call later (peer down, busy)
//   Aborted            retry the whole operation (a migration was rolled back)
//   FailedPrecondition fix the state first (name taken, device missing)
//   NotFound           the object does not exist; often not a failure at all
//   InvalidArgument    the caller's input is wrong
//   Internal           a bug or an unexpected kernel/library answer
//
//   Result<int> r = parsePort(s);
//   if (!r.ok()) return r.status().withContext("reading config");
//   LXMIG_ASSIGN_OR_RETURN(auto fd, openFile(path));
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lxmig {

enum class Code {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kUnavailable,
  kAborted,
  kCancelled,
  kResourceExhausted,
  kDeadlineExceeded,
  kPermissionDenied,
  kUnimplemented,
  kInternal,
};

std::string_view codeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message, int err = 0) : code_(code), message_(std::move(message)), errno_(err) {}

  // "open `/proc/42/fd`: Permission denied"; the code follows errno
  // (ENOENT -> NotFound, EACCES/EPERM -> PermissionDenied, ...).
  static Status fromErrno(std::string_view what, std::string_view object, int err = errno);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  int sysErrno() const { return errno_; }

  // Prefixes context: "restore `web`: " + message. Keeps code and errno.
  Status withContext(std::string_view context) const&;
  Status withContext(std::string_view context) &&;

  std::string toString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  int errno_ = 0;
};

inline Status okStatus() { return Status(); }
inline Status invalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status alreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status failedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
inline Status cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
inline Status resourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status internalError(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status unimplemented(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
inline Status deadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status(Code::kInternal, "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // The value, or `fallback` when this holds an error.
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lxmig

#define LXMIG_CONCAT_INNER_(a, b) a##b
#define LXMIG_CONCAT_(a, b) LXMIG_CONCAT_INNER_(a, b)

#define LXMIG_RETURN_IF_ERROR(expr)        \
  do {                                     \
    ::lxmig::Status lxmig_st_ = (expr);    \
    if (!lxmig_st_.ok()) return lxmig_st_; \
  } while (0)

#define LXMIG_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define LXMIG_ASSIGN_OR_RETURN(lhs, expr) LXMIG_ASSIGN_OR_RETURN_IMPL_(LXMIG_CONCAT_(lxmig_res_, __LINE__), lhs, expr)
