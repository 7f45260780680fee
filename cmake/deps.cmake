# Third-party libraries, all from Debian packages installed by scripts/setup.sh.
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng)
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)
pkg_check_modules(AV REQUIRED IMPORTED_TARGET libavformat libavcodec libavutil libswscale)
find_package(JPEG REQUIRED)
set(SPIDER_MEDIA_LIBS PkgConfig::PNG PkgConfig::SNDFILE PkgConfig::AV JPEG::JPEG)
find_package(CLI11 CONFIG QUIET)
find_path(HTTPLIB_INCLUDE httplib.h)
