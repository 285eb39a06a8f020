// lxmig-lxc copy-ipc and drop-ipc (ipc_copy.h): the System V objects of a
// merged container's IPC namespace, made again with the same ids in the
// kept container's.
#include "ipc_copy.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lxmig/base/sysvipc.h"

namespace lxmig::container {
namespace {

struct Message {
  long type = 0;
  std::string text;
};

struct Object {
  IpcKind kind = IpcKind::kShm;
  long long key = 0;
  int id = -1;
  unsigned mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  unsigned long long size = 0;    // shm: bytes; sem: semaphores in the set
  const void* content = nullptr;  // shm: attached read-only in the source namespace
  std::vector<unsigned short> values;
  std::vector<Message> messages;
  unsigned long long qbytes = 0;
};

const char* table(IpcKind k) { return k == IpcKind::kShm ? "shm" : k == IpcKind::kSem ? "sem" : "msg"; }

std::string joinError(const std::string& what) { return what + ": " + std::strerror(errno); }

bool enter(const char* init, std::string* err) {
  const std::string path = std::string("/proc/") + init + "/ns/ipc";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWIPC) != 0) {
    *err = joinError("join the IPC namespace of pid " + std::string(init));
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

// The rows of /proc/sysvipc/TABLE of this process's IPC namespace.
bool readTable(IpcKind kind, std::vector<Object>* out, std::string* err) {
  auto rows = readSysvTable(table(kind));
  if (!rows.ok()) {
    *err = rows.status().message();
    return false;
  }
  for (const SysvRow& r : *rows) {
    Object o;
    o.kind = kind;
    o.key = r.key;
    o.id = r.id;
    o.mode = r.perms & 0777;
    // shm: bytes; sem: semaphores in the set; msg: nothing (read with the queue).
    const int64_t size = r.get(kind == IpcKind::kShm ? "size" : "nsems", 0);
    o.size = static_cast<unsigned long long>(std::max<int64_t>(size, 0));
    o.uid = static_cast<uid_t>(r.get("uid", 0));
    o.gid = static_cast<gid_t>(r.get("gid", 0));
    out->push_back(std::move(o));
  }
  return true;
}

// What the source namespace's objects hold, read while its processes are
// stopped (the content of a segment stays attached until the copy).
bool readContent(Object& o, std::string* err) {
  const std::string what = std::string(table(o.kind)) + " " + std::to_string(o.id);
  if (o.kind == IpcKind::kShm) {
    void* p = ::shmat(o.id, nullptr, SHM_RDONLY);
    if (p == reinterpret_cast<void*>(-1)) {
      *err = joinError("attach " + what);
      return false;
    }
    o.content = p;
  } else if (o.kind == IpcKind::kSem) {
    o.values.resize(o.size);
    if (!o.values.empty() && ::semctl(o.id, 0, GETALL, o.values.data()) != 0) {
      *err = joinError("read " + what);
      return false;
    }
  } else {
    msqid_ds ds{};
    if (::msgctl(o.id, IPC_STAT, &ds) != 0) {
      *err = joinError("read " + what);
      return false;
    }
    o.qbytes = ds.msg_qbytes;
    // Each message by its index, left in the queue (MSG_COPY). None is
    // longer than the queue's byte limit; a larger one fails (E2BIG)
    // rather than being cut.
    std::vector<char> buf(sizeof(long) + std::min<unsigned long long>(ds.msg_qbytes, 16 << 20) + 1);
    for (long i = 0; i < static_cast<long>(ds.msg_qnum); ++i) {
      ssize_t n = ::msgrcv(o.id, buf.data(), buf.size() - sizeof(long), i, IPC_NOWAIT | MSG_COPY);
      if (n < 0) {
        *err = joinError("read message " + std::to_string(i) + " of " + what);
        return false;
      }
      Message m;
      std::memcpy(&m.type, buf.data(), sizeof(long));
      m.text.assign(buf.data() + sizeof(long), static_cast<size_t>(n));
      o.messages.push_back(std::move(m));
    }
  }
  return true;
}

bool setNextId(IpcKind kind, int id, std::string* err) {
  const std::string path = std::string("/proc/sys/kernel/") + table(kind) + "_next_id";
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  const std::string text = std::to_string(id);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (!ok) *err = joinError("write " + path);
  if (fd >= 0) ::close(fd);
  return ok;
}

bool removeObject(IpcKind kind, int id) {
  if (kind == IpcKind::kShm) return ::shmctl(id, IPC_RMID, nullptr) == 0;
  if (kind == IpcKind::kSem) return ::semctl(id, 0, IPC_RMID) == 0;
  return ::msgctl(id, IPC_RMID, nullptr) == 0;
}

// Gives the object the owner and mode of `o`: the record is read with
// IPC_STAT and written back with IPC_SET by `ctl(cmd, &record)`, where
// `perm` is the record's ipc_perm.
template <typename Ds, typename Ctl>
bool setOwner(const Object& o, ipc_perm Ds::*perm, Ctl ctl) {
  Ds ds{};
  if (ctl(IPC_STAT, &ds) != 0) return false;
  (ds.*perm).uid = o.uid;
  (ds.*perm).gid = o.gid;
  (ds.*perm).mode = static_cast<unsigned short>(o.mode);
  return ctl(IPC_SET, &ds) == 0;
}

// Makes `o` in this namespace with its id, owner, mode and content.
bool make(const Object& o, std::string* err) {
  const std::string what = std::string(table(o.kind)) + " " + std::to_string(o.id);
  if (!setNextId(o.kind, o.id, err)) return false;
  const key_t key = static_cast<key_t>(o.key);
  const int flags = IPC_CREAT | IPC_EXCL | static_cast<int>(o.mode);
  int id = o.kind == IpcKind::kShm   ? ::shmget(key, o.size, flags)
           : o.kind == IpcKind::kSem ? ::semget(key, static_cast<int>(o.size), flags)
                                     : ::msgget(key, flags);
  if (id < 0) {
    *err = joinError("make " + what);
    return false;
  }
  if (id != o.id) {
    removeObject(o.kind, id);
    *err = "make " + what + ": the kernel gave it id " + std::to_string(id);
    return false;
  }
  bool ok = true;
  if (o.kind == IpcKind::kShm) {
    void* p = ::shmat(id, nullptr, 0);
    ok = p != reinterpret_cast<void*>(-1);
    if (ok) {
      std::memcpy(p, o.content, o.size);
      ::shmdt(p);
    }
    ok = ok && setOwner(o, &shmid_ds::shm_perm, [id](int cmd, shmid_ds* ds) { return ::shmctl(id, cmd, ds); });
  } else if (o.kind == IpcKind::kSem) {
    ok = o.values.empty() || ::semctl(id, 0, SETALL, const_cast<unsigned short*>(o.values.data())) == 0;
    ok = ok && setOwner(o, &semid_ds::sem_perm, [id](int cmd, semid_ds* ds) { return ::semctl(id, 0, cmd, ds); });
  } else {
    msqid_ds ds{};
    ok = ::msgctl(id, IPC_STAT, &ds) == 0;
    ds.msg_qbytes = o.qbytes;
    ok = ok && ::msgctl(id, IPC_SET, &ds) == 0;
    std::vector<char> buf;
    for (const auto& m : o.messages) {
      if (!ok) break;
      buf.assign(sizeof(long) + m.text.size(), 0);
      std::memcpy(buf.data(), &m.type, sizeof(long));
      std::memcpy(buf.data() + sizeof(long), m.text.data(), m.text.size());
      ok = ::msgsnd(id, buf.data(), m.text.size(), IPC_NOWAIT) == 0;
    }
    ok = ok && setOwner(o, &msqid_ds::msg_perm, [id](int cmd, msqid_ds* ds) { return ::msgctl(id, cmd, ds); });
  }
  if (!ok) {
    *err = joinError("fill " + what);
    removeObject(o.kind, id);
  }
  return ok;
}

}  // namespace

int copyIpc(const char* fromInit, const char* toInit, const char* listPath) {
  std::string err;
  auto failed = [&](int rc) {
    std::fprintf(stderr, "lxmig-lxc: copy-ipc: %s\n", err.c_str());
    return rc;
  };
  std::vector<Object> from, to;
  if (!enter(fromInit, &err)) return failed(5);
  for (IpcKind k : {IpcKind::kShm, IpcKind::kSem, IpcKind::kMsg})
    if (!readTable(k, &from, &err)) return failed(1);
  for (auto& o : from)
    if (!readContent(o, &err)) return failed(1);
  if (!enter(toInit, &err)) return failed(5);
  for (IpcKind k : {IpcKind::kShm, IpcKind::kSem, IpcKind::kMsg})
    if (!readTable(k, &to, &err)) return failed(1);
  // Nothing is made when an id, or a key other than IPC_PRIVATE, is taken.
  for (const auto& o : from)
    for (const auto& t : to)
      if (o.kind == t.kind && (o.id == t.id || (o.key != IPC_PRIVATE && o.key == t.key))) {
        err = std::string(table(o.kind)) + " " + std::to_string(o.id) + " (key " + std::to_string(o.key) +
              ") is taken in the kept container's IPC namespace";
        return failed(6);
      }
  FILE* list = std::fopen(listPath, "we");
  if (!list) {
    err = joinError(std::string("open ") + listPath);
    return failed(1);
  }
  std::vector<const Object*> made;
  for (const auto& o : from) {
    if (!make(o, &err)) {
      for (const Object* m : made) removeObject(m->kind, m->id);
      std::fclose(list);
      std::remove(listPath);
      return failed(1);
    }
    made.push_back(&o);
    std::fprintf(list, "%s %d\n", table(o.kind), o.id);
  }
  if (std::fclose(list) != 0) {
    err = joinError(std::string("write ") + listPath);
    for (const Object* m : made) removeObject(m->kind, m->id);
    return failed(1);
  }
  std::printf("%zu\n", made.size());
  return 0;
}

int dropIpc(const char* init, const char* listPath) {
  std::string err;
  if (!enter(init, &err)) {
    std::fprintf(stderr, "lxmig-lxc: drop-ipc: %s\n", err.c_str());
    return 5;
  }
  FILE* list = std::fopen(listPath, "re");
  if (!list) return errno == ENOENT ? 0 : 1;
  char kind[8];
  int id = -1, rc = 0;
  while (std::fscanf(list, "%7s %d", kind, &id) == 2) {
    IpcKind k = std::strcmp(kind, "shm") == 0   ? IpcKind::kShm
                : std::strcmp(kind, "sem") == 0 ? IpcKind::kSem
                                                : IpcKind::kMsg;
    if (id < 0 || (!removeObject(k, id) && errno != EINVAL && errno != EIDRM)) {
      std::fprintf(stderr, "lxmig-lxc: drop-ipc: remove %s %d: %s\n", kind, id, std::strerror(errno));
      rc = 1;
    }
  }
  std::fclose(list);
  return rc;
}

}  // namespace lxmig::container
