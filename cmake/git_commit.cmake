# Writes OUT (a header defining SPIDER_GIT_COMMIT, the short hash of the source tree's HEAD plus "-dirty" when
# tracked files differ from it, or "unknown" outside a git checkout) only when that text changed, so a build after a new commit refreshes it without rebuilding more.
# Run by the spider_git_commit target on every build: cmake -DSRC=<source dir> -DOUT=<header> -P git_commit.cmake
execute_process(COMMAND git rev-parse --short=9 HEAD WORKING_DIRECTORY ${SRC} OUTPUT_VARIABLE commit
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
else()
  # A binary built from edited sources must not claim to be HEAD (benchmarks record this commit).
  execute_process(COMMAND git diff --quiet HEAD -- WORKING_DIRECTORY ${SRC} RESULT_VARIABLE dirty ERROR_QUIET)
  if(dirty EQUAL 1)
    set(commit "${commit}-dirty")
  endif()
endif()
set(text "#define SPIDER_GIT_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
