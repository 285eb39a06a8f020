#include "mapped_file.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace lxmig::transport {
namespace {

// Where a guarded read of this thread goes back to when it faults
// (volatile: only the handler reads it, which the compiler cannot see).
thread_local sigjmp_buf* volatile tJump = nullptr;
struct sigaction gPrevious {};

void onSigbus(int, siginfo_t*, void*) {
  if (sigjmp_buf* j = tJump) {
    tJump = nullptr;
    siglongjmp(*j, 1);
  }
  // A fault of something else: the disposition from before takes it when
  // the instruction faults again.
  ::sigaction(SIGBUS, &gPrevious, nullptr);
}

void catchSigbus() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = onSigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &gPrevious);
  });
}

}  // namespace

void hashBlocks(const char* data, size_t len, size_t block, uint64_t* out) {
  for (size_t b = 0, i = 0; b < len; b += block, ++i) out[i] = XXH3_64bits(data + b, std::min(block, len - b));
}

MappedWindow::MappedWindow(int fd, uint64_t offset, size_t length) {
  if (length == 0) return;
  catchSigbus();
  void* p = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) return;
  data_ = static_cast<const char*>(p);
  length_ = length;
}

MappedWindow::~MappedWindow() {
  if (data_) ::munmap(const_cast<char*>(data_), length_);
}

// Between sigsetjmp and the end of each guarded loop nothing owns a
// resource: a fault jumps over no destructor.
bool MappedWindow::hashBlocks(size_t block, uint64_t* out) const {
  if (!data_ || block == 0) return false;
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) return false;
  tJump = &jump;
  transport::hashBlocks(data_, length_, block, out);
  tJump = nullptr;
  return true;
}

bool MappedWindow::copy(size_t from, size_t n, char* dst) const {
  if (!data_ || from > length_ || n > length_ - from) return false;
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) return false;
  tJump = &jump;
  std::memcpy(dst, data_ + from, n);
  tJump = nullptr;
  return true;
}

}  // namespace lxmig::transport
