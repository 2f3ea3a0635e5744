# What `cmake --install` puts where (GNU layout under the prefix): the
# program, its man page and its bash completion, both made by
# snapport-gendoc at build time. snapport-gendoc and the test programs
# stay in the build tree.
include(GNUInstallDirs)
install(TARGETS snapport RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${SNAPPORT_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
# bash-completion loads a command's file by the command's name, no suffix.
install(FILES ${SNAPPORT_BASH_COMPLETION}
  DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions
  RENAME snapport)
