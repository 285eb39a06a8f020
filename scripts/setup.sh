#!/usr/bin/env bash
# Installs what lxmig needs on a Debian 12 node, idempotently:
#  - build and runtime packages from the system's own suites;
#  - a CRIU that passes `criu check` on this kernel, in a private prefix
#    (/opt/lxmig/criu) with its own C library, so the system's libc is never
#    touched and no other suite is ever enabled for ordinary installs
#    (see ../shared/PLATFORM.md, "CRIU");
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
  iproute2 util-linux procps iperf3 patchelf jq python3 lsof
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

# ---- CRIU in a private prefix ------------------------------------------------
CRIU_WANT=4.2.1
PREFIX=/opt/lxmig/criu
BIN=/opt/lxmig/bin
LIBDIR=$PREFIX/root/usr/lib/x86_64-linux-gnu

criu_ok() {
  [[ -x $PREFIX/criu && -x $BIN/criu ]] || return 1
  "$PREFIX/criu" --version 2>/dev/null | grep -q "Version: $CRIU_WANT" || return 1
}

if ! criu_ok; then
  say "installing CRIU $CRIU_WANT into $PREFIX"
  APTDIR=/var/cache/lxmig/apt-sid
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/debs"
  # A private apt configuration: the newer suite is visible only to these
  # download calls, never to the system's apt.
  echo "deb http://deb.debian.org/debian sid main" >"$APTDIR/sources.list"
  APTOPT=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
          -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
  apt-get "${APTOPT[@]}" update -qq
  # criu and the runtime libraries whose bookworm versions are too old for it
  # (a newer libc6 first of all).
  DEBS=(criu libcompel1 libc6 libgnutls30t64 libnet9 libnl-3-200 libprotobuf-c1 libnftables1
        libunistring5 libidn2-0 libtasn1-6 libnettle8t64 libhogweed6t64 libp11-kit0 libgmp10
        libffi8 libbsd0 libmd0 libuuid1 libmnl0 libnftnl11 libjansson4 libxtables12 libedit2)
  rm -f "$APTDIR/debs"/*.deb
  want=()
  for d in "${DEBS[@]}"; do
    if [[ $d == criu || $d == libcompel1 ]]; then want+=("$d=$CRIU_WANT-1"); else want+=("$d"); fi
  done
  (cd "$APTDIR/debs" && apt-get "${APTOPT[@]}" download "${want[@]}" >/dev/null 2>&1) \
    || die "could not download CRIU $CRIU_WANT and its libraries from Debian unstable"
  rm -rf "$PREFIX.new"
  mkdir -p "$PREFIX.new/root"
  for f in "$APTDIR/debs"/*.deb; do dpkg -x "$f" "$PREFIX.new/root"; done
  NEWLIB=$PREFIX.new/root/usr/lib/x86_64-linux-gnu
  cp "$PREFIX.new/root/usr/sbin/criu" "$PREFIX.new/criu"
  # Interpreter and RPATH point at the final prefix; RPATH (not RUNPATH) so
  # that transitive libraries also resolve there.
  patchelf --set-interpreter "$LIBDIR/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$LIBDIR" \
    "$PREFIX.new/criu"
  [[ -e $NEWLIB/ld-linux-x86-64.so.2 ]] || die "CRIU bundle lacks its dynamic loader"
  rm -rf "$PREFIX"
  mv "$PREFIX.new" "$PREFIX"
fi

mkdir -p "$BIN"
WRAPPER_VERSION=5
CRIU_VERSION_TEXT=$("$PREFIX/criu" --version | tr -d "'\\\\")
if ! grep -q "lxmig criu wrapper v$WRAPPER_VERSION" "$BIN/criu" 2>/dev/null ||
  ! grep -qF "$(printf '%s' "$CRIU_VERSION_TEXT" | head -1)" "$BIN/criu"; then
  cat >"$BIN/criu.tmp" <<EOF
#!/bin/sh
# lxmig criu wrapper v$WRAPPER_VERSION: liblxc runs \`criu\` from PATH; this entry
# point runs the private CRIU without /etc/criu/default.conf and adds the
# per-action options liblxc has no field for (PLATFORM.md, "CRIU").
#   LXMIG_CRIU_RESTORE_OPTS / LXMIG_CRIU_DUMP_OPTS: extra options set by lxmigd
#   LXMIG_CRIU_NETNS: a network namespace prepared by lxmigd (a path that
#     opens it); the restore's tasks join it (CRIU's --inherit-fd, key
#     lxmig-net) instead of a namespace rebuilt from the images
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
           exec $PREFIX/criu restore --no-default-config --network-lock nftables --mntns-compat-mode \
             \${LXMIG_CRIU_RESTORE_OPTS:-} "\$@" ;;
  "")      exec $PREFIX/criu ;;
  *)       exec $PREFIX/criu "\$action" --no-default-config "\$@" ;;
esac
EOF
  chmod 755 "$BIN/criu.tmp"
  mv "$BIN/criu.tmp" "$BIN/criu"
fi

criu_ok || die "CRIU in $PREFIX does not run"
if ! "$BIN/criu" check >/tmp/lxmig-criu-check.log 2>&1; then
  die "criu check failed on this kernel (see /tmp/lxmig-criu-check.log)"
fi
rm -f /tmp/lxmig-criu-check.log
say "ok: packages present, CRIU $CRIU_WANT at $BIN/criu passes criu check"
