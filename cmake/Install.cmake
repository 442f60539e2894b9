include(CMakePackageConfigHelpers)

install(TARGETS weave EXPORT weaveTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/weave DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT weaveTargets NAMESPACE weave:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weave)

# A static libweave carries its liburing dependency to every consumer; a shared one hides it.
if(WEAVE_HAVE_URING AND NOT BUILD_SHARED_LIBS)
  set(WEAVE_CONFIG_NEEDS_URING TRUE)
else()
  set(WEAVE_CONFIG_NEEDS_URING FALSE)
endif()
# Likewise OpenSSL: a static libweave needs libssl and libcrypto at the consumer's link.
if(BUILD_SHARED_LIBS)
  set(WEAVE_CONFIG_NEEDS_OPENSSL FALSE)
else()
  set(WEAVE_CONFIG_NEEDS_OPENSSL TRUE)
endif()
# libpq is a public dependency of weave::pg (its header calls PQgetvalue inline).
if(TARGET weave_pg)
  set(WEAVE_CONFIG_NEEDS_LIBPQ TRUE)
else()
  set(WEAVE_CONFIG_NEEDS_LIBPQ FALSE)
endif()
configure_package_config_file(cmake/weaveConfig.cmake.in ${PROJECT_BINARY_DIR}/weaveConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weave)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/weaveConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/weaveConfig.cmake ${PROJECT_BINARY_DIR}/weaveConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/weave)

set(WEAVE_PC_REQUIRES "")
set(WEAVE_PC_REQUIRES_PRIVATE "")
if(WEAVE_CONFIG_NEEDS_URING)
  set(WEAVE_PC_REQUIRES "liburing")
elseif(WEAVE_HAVE_URING)
  set(WEAVE_PC_REQUIRES_PRIVATE "liburing")
endif()
if(WEAVE_CONFIG_NEEDS_OPENSSL)
  string(JOIN " " WEAVE_PC_REQUIRES ${WEAVE_PC_REQUIRES} libssl libcrypto)
else()
  string(JOIN " " WEAVE_PC_REQUIRES_PRIVATE ${WEAVE_PC_REQUIRES_PRIVATE} libssl libcrypto)
endif()
configure_file(cmake/weave.pc.in ${PROJECT_BINARY_DIR}/weave.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/weave.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
