#!/usr/bin/env bash
# The install tree and the Debian package, from the build in $1:
#  1. `cmake --install` into a scratch DESTDIR puts every file where
#     scripts/deploy/install.cmake says, the agent's helpers beside it, the
#     units naming the prefix's binaries; the installed lxmig and lxmigd run.
#     `lxmig cluster init | add-node | renew` make certificates openssl verifies.
#  2. scripts/package.sh builds the .deb; its control names the libraries
#     and tools it needs; it installs into a fresh directory root (an empty
#     dpkg database), `lxmig --version`, `lxmigd --version` and
#     `lxmig doctor` run from there, and it removes leaving no file behind.
# Everything happens under one temporary directory, removed at exit.
set -euo pipefail
BUILD=$(cd "${1:?usage: install_test.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/lxmig-install-test-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
check() {  # description command...
  local what=$1
  shift
  if "$@" >"$T/out" 2>&1; then
    echo "ok   $what"
  else
    echo "FAIL $what: $(head -c 600 "$T/out")"
    fails=$((fails + 1))
  fi
}
need() {
  command -v "$1" >/dev/null && return
  if [[ ${CI:-} == true ]]; then echo "FAIL prerequisite missing under CI: $1"; exit 1; fi
  echo "SKIPPED (prerequisite missing): $1"
  exit 0
}
need cpack
need dpkg-deb
need dpkg-shlibdeps
need groff
version=$(sed -n 's/^project(lxmig VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")

# 1. The install tree.
DESTDIR=$T/dest cmake --install "$BUILD" --prefix /usr >"$T/install.log" 2>&1 || { cat "$T/install.log"; exit 1; }
D=$T/dest/usr
for f in bin/lxmig libexec/lxmig/lxmigd libexec/lxmig/lxmig-lxc libexec/lxmig/lxmig-init \
  share/lxmig/scripts/testbed.sh share/lxmig/scripts/setup.sh; do
  check "installed executable $f" test -x "$D/$f"
done
check "installed libexec/lxmig/liblxmig-rlimits.so" test -f "$D/libexec/lxmig/liblxmig-rlimits.so"
check "setup.sh finds lxmig's CRIU patches beside it" \
  test -f "$D/share/lxmig/criu/patches/criu-4.2.1-held-pages.patch" -a \
  -f "$D/share/lxmig/criu/patches/criu-4.2.1-merge.patch" -a \
  -f "$D/share/lxmig/criu/patches/criu-4.2.1-userns.patch" -a \
  -f "$D/share/lxmig/criu/patches/criu-4.2.1-shmem-listed.patch" -a \
  -f "$D/share/lxmig/criu/patches/series"
check "sbin/lxmigd links to the agent beside its helpers" \
  test "$(readlink "$D/sbin/lxmigd")" = ../libexec/lxmig/lxmigd
for u in lxmigd.service lxmig-rebalance.service lxmig-rebalance.timer; do
  check "unit $u" test -f "$D/lib/systemd/system/$u"
done
check "lxmigd.service runs /usr/sbin/lxmigd" grep -q '^ExecStart=/usr/sbin/lxmigd ' \
  "$D/lib/systemd/system/lxmigd.service"
check "lxmigd.service keeps containers across restarts" grep -q '^KillMode=process' \
  "$D/lib/systemd/system/lxmigd.service"
check "the rebalance unit runs /usr/bin/lxmig" grep -q '^ExecStart=/usr/bin/lxmig ' \
  "$D/lib/systemd/system/lxmig-rebalance.service"
check "the cron example runs /usr/bin/lxmig" grep -q ' root /usr/bin/lxmig ' \
  "$D/share/doc/lxmig/examples/lxmig-rebalance.cron"
check "docs installed" test -f "$D/share/doc/lxmig/operations.md"
check "bash completion installed" test -f "$D/share/bash-completion/completions/lxmig"
# A manual page per verb of the installed lxmig's help, each with examples,
# that man renders without a warning.
verbs=$("$D/bin/lxmig" --help | sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && NF {print $1}')
check "the help lists verbs" test -n "$verbs"
check "lxmig.1 installed" test -f "$D/share/man/man1/lxmig.1"
for v in $verbs; do
  check "man page of $v with examples" grep -q '^\.SH EXAMPLES' "$D/share/man/man1/lxmig-$v.1"
done
check "man renders every page without a warning" bash -c "
  for f in '$D'/share/man/man1/*.1; do
    w=\$(groff -man -ww -z \"\$f\" 2>&1); [[ -z \$w ]] || { echo \"\$f: \$w\"; exit 1; }
  done"
check "bash completion offers verbs from the installed lxmig" bash -c "
  source '$D/share/bash-completion/completions/lxmig'
  COMP_WORDS=('$D/bin/lxmig' mig); COMP_CWORD=1; _lxmig
  [[ \${COMPREPLY[*]} == migrate ]]"
check "and a verb's options" bash -c "
  source '$D/share/bash-completion/completions/lxmig'
  COMP_WORDS=('$D/bin/lxmig' cluster add-node n9 --ad); COMP_CWORD=4; _lxmig
  [[ \${COMPREPLY[*]} == --address ]]"
check "installed lxmig --version" grep -qx "lxmig $version" <("$D/bin/lxmig" --version)
check "installed lxmigd --version (through the sbin link)" \
  grep -qx "lxmigd $version" <("$D/sbin/lxmigd" --version)
# Errors: one line; with --json one JSON object with the exit code, also
# for what the parser refuses; exit codes 2 (usage) and 1 (failed).
jerr() {  # expected-code args...
  local want=$1
  shift
  local rc=0
  "$D/bin/lxmig" --socket "$T/none.sock" --cluster "$T/none.toml" "$@" >/dev/null 2>"$T/err" || rc=$?
  [[ $rc == "$want" ]] || { echo "exit $rc, not $want"; return 1; }
  python3 -c 'import json,sys
lines=open(sys.argv[1]).read().splitlines()
assert len(lines)==1, lines
j=json.loads(lines[0])
assert j["code"]==int(sys.argv[2]) and j["error"], j' "$T/err" "$want"
}
check "--json: an unknown verb is a JSON error, exit 2" jerr 2 --json bogus
check "--json: a missing flag is a JSON error, exit 2" jerr 2 --json migrate web
check "--json: a bad value is a JSON error, exit 2" jerr 2 migrate web --to n2 --mode fast --json
check "--json: no agent is a JSON error, exit 1" jerr 1 --json ps
check "a bad container name is refused before any agent is asked, exit 2" jerr 2 --json rm 'a b'
check "a bad --restore-timeout is refused before any agent is asked, exit 2" \
  jerr 2 --json migrate web --to n2 --restore-timeout 1ms
check "a bad target node name is refused before any agent is asked, exit 2" jerr 2 --json migrate web --to 'n/2'
check "without --json the error is one text line" \
  bash -c "out=\$('$D/bin/lxmig' --socket '$T/none.sock' --cluster '$T/none.toml' ps 2>&1 >/dev/null);
           [[ \$out == 'lxmig: ps: '* && \$out != *\$'\\n'* ]]"

# The certificate commands of the installed lxmig (the test bed makes its
# own with them too, so every migration test runs on such certificates).
P=$T/pki
L=$D/bin/lxmig
check "cluster init" "$L" --quiet cluster --dir "$P" init
check "a second init changes nothing" bash -c "! '$L' cluster --dir '$P' init && test \$(ls '$P' | wc -l) = 2"
check "cluster add-node" "$L" --quiet cluster --dir "$P" add-node n1 --address 192.0.2.11
check "keys are 0600, the directory 0700" \
  test "$(stat -c %a "$P" "$P/ca.key" "$P/n1.key" | tr '\n' ' ')" = "700 600 600 "
check "an existing node is not overwritten" bash -c "! '$L' cluster --dir '$P' add-node n1 --address 192.0.2.12"
check "openssl verifies the node against the CA" openssl verify -CAfile "$P/ca.crt" "$P/n1.crt"
check "the node's names" \
  bash -c "openssl x509 -in '$P/n1.crt' -noout -ext subjectAltName | grep -q 'DNS:n1, IP Address:192.0.2.11'"
cp "$P/n1.key" "$T/n1.key.before"
check "cluster renew" "$L" --quiet cluster --dir "$P" renew n1
check "renew keeps the old pair" cmp "$P/n1.key.prev" "$T/n1.key.before"
check "renew makes a new key" bash -c "! cmp -s '$P/n1.key' '$T/n1.key.before'"
check "the renewed node keeps its names" \
  bash -c "openssl x509 -in '$P/n1.crt' -noout -ext subjectAltName | grep -q 'DNS:n1, IP Address:192.0.2.11'"

# 2. The package.
"$SRC/scripts/package.sh" "$T/pkg" >"$T/package.log" 2>&1 || { cat "$T/package.log"; exit 1; }
deb=$(ls "$T"/pkg/lxmig_*.deb)
check "package named lxmig_${version}_amd64.deb" test "$(basename "$deb")" = "lxmig_${version}_amd64.deb"
dpkg-deb -f "$deb" Depends >"$T/depends"
for d in liblxc1 libgrpc++ libsqlite3-0 libnftables1 libssl3 lxc nftables; do
  check "package depends on $d" grep -q "$d" "$T/depends"
done
R=$T/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
: >"$R/var/lib/dpkg/status"
# The root's dpkg database is empty: dependencies are the host's.
check "dpkg installs it into a fresh root" dpkg --root="$R" --force-depends -i "$deb"
check "dpkg lists it installed" grep -q '^Status: install ok installed' "$R/var/lib/dpkg/status"
check "lxmig --version from the package" grep -qx "lxmig $version" <("$R/usr/bin/lxmig" --version)
check "lxmigd --version from the package" grep -qx "lxmigd $version" <("$R/usr/sbin/lxmigd" --version)
check "the package has the manual pages" test -f "$R/usr/share/man/man1/lxmig-migrate.1"
if [[ $(id -u) == 0 ]]; then
  "$R/usr/bin/lxmig" --json doctor >"$T/doctor.json" 2>"$T/doctor.err" || true
  check "lxmig doctor from the package reports its checks" \
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["checks"] and "ok" in j' "$T/doctor.json"
  check "lxmig doctor from the package finds every required prerequisite" \
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["ok"], j["checks"]' "$T/doctor.json"
fi
check "dpkg removes it" dpkg --root="$R" -r lxmig
left=$(find "$R" -mindepth 1 ! -path "$R/var" ! -path "$R/var/lib" ! -path "$R/var/lib/dpkg*" | head -5)
check "nothing left after removal" test -z "$left"
((fails == 0)) || { echo "$fails check(s) failed"; exit 1; }
echo "all install checks passed"
