# What `cmake --install build` (and the Debian package CPack builds from the
# same rules) puts where; docs/operations.md, "Install on every node".
#
#   bin/lxmig                          the CLI
#   libexec/lxmig/lxmigd               the agent, with the helpers it runs
#   libexec/lxmig/{lxmig-lxc,lxmig-init,liblxmig-rlimits.so}   from beside itself
#   sbin/lxmigd -> ../libexec/lxmig/lxmigd
#   share/lxmig/scripts/               testbed.sh, setup.sh (CRIU 4.2.1), demo.sh
#   share/lxmig/criu/patches/          lxmig's patch to CRIU, which setup.sh applies
#   lib/systemd/system/                lxmigd.service, lxmig-rebalance.{service,timer}
#   share/bash-completion/completions/lxmig
#   share/man/man1/lxmig.1, lxmig-VERB.1 (written by `lxmig __man` at build time)
#   share/doc/lxmig/                   the docs, examples/ (cron.d line, agent.conf, cluster.toml)
include(GNUInstallDirs)
# Install and package what was built (scripts/build.sh), never rebuild in passing.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY TRUE)
set(helpers ${CMAKE_INSTALL_LIBEXECDIR}/lxmig)
set(deploy ${PROJECT_SOURCE_DIR}/scripts/deploy)

install(TARGETS lxmig RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS lxmigd lxmig-lxc lxmig-init RUNTIME DESTINATION ${helpers})
install(TARGETS lxmig-rlimits LIBRARY DESTINATION ${helpers})
# Paths are the install's prefix (cmake --install --prefix P, or /usr in the
# package), known only when installing: the agent's link in sbin (the agent
# finds its helpers beside the binary it runs as, which /proc/self/exe
# resolves through the link) and the units and cron line naming binaries.
install(CODE "
  set(root \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
  file(MAKE_DIRECTORY \"\${root}/${CMAKE_INSTALL_SBINDIR}\")
  file(CREATE_LINK \"../${helpers}/lxmigd\" \"\${root}/${CMAKE_INSTALL_SBINDIR}/lxmigd\" SYMBOLIC)
  message(STATUS \"Installing: \${root}/${CMAKE_INSTALL_SBINDIR}/lxmigd -> ../${helpers}/lxmigd\")
  set(LXMIG_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(LXMIG_SBINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}\")
  set(LXMIG_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\")
  foreach(f lxmigd.service lxmig-rebalance.service)
    configure_file(\"${deploy}/\${f}.in\" \"\${root}/lib/systemd/system/\${f}\" @ONLY)
    message(STATUS \"Installing: \${root}/lib/systemd/system/\${f}\")
  endforeach()
  set(examples \"\${root}/${CMAKE_INSTALL_DOCDIR}/examples\")
  configure_file(\"${deploy}/lxmig-rebalance.cron.in\" \"\${examples}/lxmig-rebalance.cron\" @ONLY)")

install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/testbed.sh ${PROJECT_SOURCE_DIR}/scripts/setup.sh
                 ${PROJECT_SOURCE_DIR}/scripts/demo.sh
        DESTINATION ${CMAKE_INSTALL_DATADIR}/lxmig/scripts)
# setup.sh builds CRIU with lxmig's patch, found beside it as in the sources.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/criu/patches/ DESTINATION ${CMAKE_INSTALL_DATADIR}/lxmig/criu/patches
        FILES_MATCHING PATTERN "*.patch" PATTERN "series")
install(FILES ${deploy}/lxmig-rebalance.timer DESTINATION lib/systemd/system)
install(FILES ${deploy}/lxmig.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME lxmig)
install(DIRECTORY ${CMAKE_BINARY_DIR}/man/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 FILES_MATCHING PATTERN "*.1")
install(FILES ${deploy}/agent.conf.example ${deploy}/cluster.toml.example DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md")
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# scripts/package.sh (cpack -G DEB): one package, lxmig, from the rules
# above; library dependencies found by dpkg-shlibdeps, tools named here.
set(CPACK_PACKAGE_NAME lxmig)
set(CPACK_PACKAGE_VENDOR "lxmig")
set(CPACK_PACKAGE_CONTACT "lxmig maintainers <lxmig@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "live migration of LXC containers between nodes (pre-copy on CRIU)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "lxc, nftables, iproute2, util-linux")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "etcd-client")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "etcd-server")
include(CPack)
