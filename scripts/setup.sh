#!/usr/bin/env bash
# Installs what lxmig needs on a Debian 12 node, idempotently:
#  - build and runtime packages from the system's own suites;
#  - CRIU 4.2.1, which passes `criu check` on this kernel, built from its
#    release's sources with lxmig's patch into /opt/lxmig/criu (see
#    ../shared/PLATFORM.md, "CRIU", and criu/patches/);
#  - /opt/lxmig/bin/criu, the entry point liblxc finds first in PATH.
# Quick when everything is already there. Usage: scripts/setup.sh [--quiet]
set -euo pipefail

QUIET=0
[[ "${1:-}" == "--quiet" ]] && QUIET=1
say() { [[ $QUIET == 1 ]] || echo "setup: $*" >&2; }
die() { echo "setup: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (installs packages and CRIU under /opt/lxmig)"

PACKAGES=(
  build-essential cmake pkg-config git
  lxc lxc-dev liblxc-common busybox-static
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsqlite3-dev sqlite3 libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libnftables-dev nftables libnetfilter-conntrack-dev libmnl-dev conntrack
  nlohmann-json3-dev libssl-dev openssl libcap-dev libxxhash-dev libtomlplusplus-dev
  iproute2 util-linux procps iperf3 jq python3 lsof
  # CRIU, built from its sources (below)
  curl xz-utils patch libprotobuf-c-dev protobuf-c-compiler python3-protobuf libnl-3-dev
  libnet1-dev libaio-dev libbsd-dev libgnutls28-dev libcap-dev libnftables-dev
  # scripts/fuzz.sh and the asan preset: clang, its sanitizer and libFuzzer
  # runtimes, llvm-symbolizer for readable reports
  clang libclang-rt-14-dev llvm
  # scripts/format.sh
  clang-format
  # tests/integration/daemons_test.cc: real daemons under their own uid;
  # tests/integration/adopt_test.cc: nginx adopted from the host
  postgresql-15 postgresql-client-15 redis-server redis-tools nginx-light
  # the optional cluster store (sched/cluster_store.h) and its tests
  etcd-server etcd-client
  # tests/integration/install_test.sh renders the manual pages
  groff-base
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  # PostgreSQL is a test workload run in containers: no cluster of the host's.
  if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/lxmig-tests.conf
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Daemons are test workloads started by the tests: none is started as a
  # service of this host by its package (policy-rc.d 101: "not allowed").
  policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  rc=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [[ -n $policy ]] && rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${missing[*]} failed"
fi

# ---- CRIU, built from its release's sources with lxmig's patch --------------
# Debian 12's criu fails on this kernel and Debian 13's cannot dump INET
# sockets on 6.16+ (PLATFORM.md, "CRIU"); 4.2.1 works. It is built here from
# the release tarball (Debian's copy, checksum pinned) against the system's
# own libraries, with lxmig's patches applied in the order
# criu/patches/series lists them: held-pages, a dump writes the pages a
# migration target already holds as PARENT holes instead of draining them
# (docs/architecture.md, "The frozen window"); merge, what lxmig merge
# needs: a Unix socket whose peer is in another network namespace handed
# over whole with --inherit-fd (a connection between the merged
# containers), and System V mappings dumped and restored without their
# IPC namespace, whose objects lxmig copies itself (same ids); userns, the
# veth of a container with a user namespace restored without its old
# ifindex, and its time namespace's image read only after the id maps are
# written (lxmig run --userns); usk-names, the accepted end of a
# connection to an abstract Unix listener restored with its name (made
# through a listener of that name, not a socketpair); write-shmem, a memfd's
# content (shared memory, PostgreSQL's shared buffers) restored with
# pwrite instead of through a mapping (no page-table faults in the frozen
# window); userns-lazy, the userfaultfd of a restored task in a user
# namespace of its own made through /dev/userfaultfd (opened before any
# namespace), so such a container is restored lazily; shmem-listed, a
# shared memory object whose page file goes to /dev/null (pre-copy: the
# agent rebuilds it) listed by its data segments without moving its pages;
# shmem-held, a memfd the target kept up to date during the rounds and
# hands over (--inherit-fd lxmig-shmem:<shmid>) becomes the restored shared
# memory object, whose content is then not written in the frozen window;
# pagemap-offsets, a pagemap entry may name where its pages start in the
# pages file (the target's page store then hands over its file as it is,
# nothing moved into address order in the frozen window).
CRIU_WANT=4.2.1
CRIU_SHA256=29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9
CRIU_URL=http://deb.debian.org/debian/pool/main/c/criu/criu_$CRIU_WANT.orig.tar.xz
PATCH_DIR=$(cd "$(dirname "$0")/.." && pwd)/criu/patches
PREFIX=/opt/lxmig/criu
BIN=/opt/lxmig/bin
CACHE=/var/cache/lxmig

CRIU_PATCHES=()
while read -r name _; do
  [[ -z $name || $name == \#* ]] && continue
  [[ $name =~ ^criu-$CRIU_WANT-[a-z0-9-]+\.patch$ && -r $PATCH_DIR/$name ]] ||
    die "criu/patches/series names \`$name\`, not a readable patch for CRIU $CRIU_WANT"
  CRIU_PATCHES+=("$PATCH_DIR/$name")
done <"$PATCH_DIR/series"
[[ ${#CRIU_PATCHES[@]} -gt 0 ]] || die "no CRIU patch in $PATCH_DIR/series"
for p in "$PATCH_DIR"/criu-"$CRIU_WANT"-*.patch; do
  grep -qx "$(basename "$p")" "$PATCH_DIR/series" || die "$p is not in criu/patches/series"
done
# One checksum over all of them, in the order they apply.
PATCH_SUM=$(cat "${CRIU_PATCHES[@]}" | sha256sum | cut -d' ' -f1)

# The binary in place is this release with this patch, and runs.
criu_ok() {
  [[ -x $PREFIX/criu ]] || return 1
  [[ $(cat "$PREFIX/patch.sha256" 2>/dev/null) == "$PATCH_SUM" ]] || return 1
  local v
  v=$("$PREFIX/criu" --version 2>/dev/null) || return 1
  grep -q "^Version: $CRIU_WANT\$" <<<"$v" && grep -q "^lxmig: held-pages" <<<"$v" &&
    grep -q "^lxmig: unix-peer-elsewhere" <<<"$v" && grep -q "^lxmig: sysv-outside" <<<"$v" &&
    grep -q "^lxmig: userns-veth" <<<"$v" && grep -q "^lxmig: accepted-abstract-name" <<<"$v" &&
    grep -q "^lxmig: shmem-by-write" <<<"$v" && grep -q "^lxmig: userns-lazy" <<<"$v" &&
    grep -q "^lxmig: shmem-listed" <<<"$v" && grep -q "^lxmig: shmem-held" <<<"$v" &&
    grep -q "^lxmig: pagemap-offsets" <<<"$v"
}

if ! criu_ok; then
  say "building CRIU $CRIU_WANT with lxmig's patch into $PREFIX"
  mkdir -p "$CACHE"
  TARBALL=$CACHE/criu_$CRIU_WANT.orig.tar.xz
  if ! echo "$CRIU_SHA256  $TARBALL" | sha256sum -c --status 2>/dev/null; then
    curl -fsSL --retry 3 --max-time 300 -o "$TARBALL.part" "$CRIU_URL" ||
      die "could not download $CRIU_URL"
    echo "$CRIU_SHA256  $TARBALL.part" | sha256sum -c --status ||
      die "$CRIU_URL does not have the expected checksum"
    mv "$TARBALL.part" "$TARBALL"
  fi
  SRC=$CACHE/criu-$CRIU_WANT
  rm -rf "$SRC"
  mkdir -p "$SRC"
  tar -xf "$TARBALL" -C "$SRC" --strip-components=1
  for p in "${CRIU_PATCHES[@]}"; do
    patch -d "$SRC" -p1 --quiet --forward <"$p" || die "$p does not apply to CRIU $CRIU_WANT"
  done
  make -C "$SRC" -j"$(nproc)" criu >"$SRC.log" 2>&1 || die "building CRIU failed (see $SRC.log)"
  rm -rf "$PREFIX.new"
  mkdir -p "$PREFIX.new"
  install -m 755 "$SRC/criu/criu" "$PREFIX.new/criu"
  echo "$PATCH_SUM" >"$PREFIX.new/patch.sha256"
  rm -rf "$PREFIX" "$SRC"
  mv "$PREFIX.new" "$PREFIX"
fi

mkdir -p "$BIN"
WRAPPER_VERSION=7
CRIU_VERSION_TEXT=$("$PREFIX/criu" --version | tr -d "'\\\\")
{
  cat <<EOF
#!/bin/bash
# lxmig criu wrapper v$WRAPPER_VERSION: liblxc runs \`criu\` from PATH; this entry
# point runs the private CRIU without /etc/criu/default.conf and adds the
# per-action options liblxc has no field for (PLATFORM.md, "CRIU").
#   LXMIG_CRIU_RESTORE_OPTS / LXMIG_CRIU_DUMP_OPTS: extra options set by lxmigd
#   LXMIG_CRIU_NETNS: a network namespace prepared by lxmigd (a path that
#     opens it); the restore's tasks join it (CRIU's --inherit-fd, key
#     lxmig-net) instead of a namespace rebuilt from the images
#   LXMIG_CRIU_SHMEM: blank-separated SHMID=PATH, a memfd lxmigd kept up to
#     date with a shared memory object's content (PATH opens it, read-write);
#     CRIU's restore makes it that object (--inherit-fd key lxmig-shmem:SHMID)
# liblxc asks for the version before every dump and restore: answered here
# with what this CRIU printed when setup.sh wrote the wrapper (setup.sh
# writes it again when the binary's answer changes).
# The options are split at blanks and never globbed (an --external
# mnt[...] must not match a file in CRIU's working directory).
set -f
action="\$1"
[ \$# -gt 0 ] && shift
case "\$action" in
  --version) printf '%s\\n' '$CRIU_VERSION_TEXT' ;;
  dump)    exec $PREFIX/criu dump --no-default-config --network-lock nftables \${LXMIG_CRIU_DUMP_OPTS:-} "\$@" ;;
  restore) if [ -n "\${LXMIG_CRIU_NETNS:-}" ]; then
             exec 9<"\$LXMIG_CRIU_NETNS" || exit 1
             set -- --inherit-fd "fd[9]:lxmig-net" "\$@"
           fi
           for held in \${LXMIG_CRIU_SHMEM:-}; do
             exec {fd}<>"\${held#*=}" || exit 1
             set -- --inherit-fd "fd[\$fd]:lxmig-shmem:\${held%%=*}" "\$@"
           done
           exec $PREFIX/criu restore --no-default-config --network-lock nftables --mntns-compat-mode \
             \${LXMIG_CRIU_RESTORE_OPTS:-} "\$@" ;;
  "")      exec $PREFIX/criu ;;
  *)       exec $PREFIX/criu "\$action" --no-default-config "\$@" ;;
esac
EOF
} >"$BIN/criu.tmp"
if cmp -s "$BIN/criu.tmp" "$BIN/criu"; then
  rm -f "$BIN/criu.tmp"
else
  chmod 755 "$BIN/criu.tmp"
  mv "$BIN/criu.tmp" "$BIN/criu"
fi

criu_ok || die "CRIU in $PREFIX does not run"
if ! "$BIN/criu" check >/tmp/lxmig-criu-check.log 2>&1; then
  die "criu check failed on this kernel (see /tmp/lxmig-criu-check.log)"
fi
rm -f /tmp/lxmig-criu-check.log
say "ok: packages present, CRIU $CRIU_WANT at $BIN/criu passes criu check"
