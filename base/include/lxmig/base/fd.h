// Owning wrappers for kernel and C-library handles.
//
//   UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd) return Status::fromErrno("open", path);
//   using NftCtx = UniqueHandle<nft_ctx, nft_ctx_free>;
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace lxmig {

// Move-only file descriptor; closes on destruction and keeps errno intact
// across the close so error paths can still report the original failure.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Hands ownership on; the caller closes.
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      int saved = errno;
      ::close(fd_);
      errno = saved;
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Owning pointer for a C handle with a free function. The free function is
// never called with nullptr.
template <typename T, auto FreeFn>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(T* p) : p_(p) {}
  UniqueHandle(UniqueHandle&& o) noexcept : p_(o.release()) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  T* get() const { return p_; }
  T* operator->() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }
  T* release() { return std::exchange(p_, nullptr); }
  void reset(T* p = nullptr) {
    if (p_) FreeFn(p_);
    p_ = p;
  }

 private:
  T* p_ = nullptr;
};

}  // namespace lxmig
