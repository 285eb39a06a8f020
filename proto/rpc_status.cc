#include "lxmig/proto/rpc_status.h"

#include <utility>

namespace lxmig {
namespace {

constexpr std::pair<Code, grpc::StatusCode> kCodes[] = {
    {Code::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
    {Code::kNotFound, grpc::StatusCode::NOT_FOUND},
    {Code::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
    {Code::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
    {Code::kUnavailable, grpc::StatusCode::UNAVAILABLE},
    {Code::kAborted, grpc::StatusCode::ABORTED},
    {Code::kCancelled, grpc::StatusCode::CANCELLED},
    {Code::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
    {Code::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
    {Code::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
    {Code::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
};

}  // namespace

grpc::Status toGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  for (const auto& [mine, theirs] : kCodes)
    if (mine == s.code()) return grpc::Status(theirs, s.message());
  return grpc::Status(grpc::StatusCode::INTERNAL, s.message());
}

Code codeFromGrpc(grpc::StatusCode c) {
  if (c == grpc::StatusCode::OK) return Code::kOk;
  for (const auto& [mine, theirs] : kCodes)
    if (theirs == c) return mine;
  return Code::kInternal;
}

Status fromGrpc(const grpc::Status& s) {
  if (s.ok()) return okStatus();
  return Status(codeFromGrpc(s.error_code()), s.error_message());
}

Status fromPeerGrpc(const std::string& peer, const grpc::Status& s) {
  if (s.ok()) return okStatus();
  Code c = codeFromGrpc(s.error_code());
  if (c == Code::kDeadlineExceeded) c = Code::kUnavailable;
  if (c == Code::kUnavailable) return Status(c, "target " + peer + " unreachable: " + s.error_message());
  return Status(c, s.error_message());
}

}  // namespace lxmig
