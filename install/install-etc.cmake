# Run by `cmake --install` (install/CMakeLists.txt): the systemd unit, with
# ExecStart and the config path of this prefix, and the default config,
# which an existing one is never replaced by. Prefix /usr puts the config
# in /etc (as GNUInstallDirs does), any other prefix in PREFIX/etc.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(etc /etc)
else()
  set(etc "${prefix}/etc")
endif()
file(READ "${DI3FS_SRC}/install/di3fs-snapshotter.service" unit)
string(REPLACE "/usr/bin/" "${prefix}/bin/" unit "${unit}")
string(REPLACE "/etc/di3fs/" "${etc}/di3fs/" unit "${unit}")
file(WRITE "${DI3FS_STAGE}/di3fs-snapshotter.service" "${unit}")
file(INSTALL "${DI3FS_STAGE}/di3fs-snapshotter.service"
     DESTINATION "${prefix}/lib/systemd/system")
if(EXISTS "$ENV{DESTDIR}${etc}/di3fs/snapshotter.conf")
  message(STATUS "Kept: $ENV{DESTDIR}${etc}/di3fs/snapshotter.conf")
else()
  file(INSTALL "${DI3FS_SRC}/install/snapshotter.conf" DESTINATION "${etc}/di3fs")
endif()
