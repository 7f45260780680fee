// `spider version`: build information.
#include <cstdio>

#include "command.h"

static int run_version(int, char **) {
    std::printf("spider 0.1.0\n");
    return 0;
}

static spider_cli::command_registrar reg({"version", "print the version", run_version});
