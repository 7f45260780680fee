// Entry point of the `spider` tool: dispatches to the registered subcommands.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "command.h"

namespace spider_cli {
std::vector<command> & command_table() {
    static std::vector<command> table;
    return table;
}
}  // namespace spider_cli

static void print_usage() {
    auto cmds = spider_cli::command_table();
    std::sort(cmds.begin(), cmds.end(), [](const auto & a, const auto & b) { return a.name < b.name; });
    std::printf("spider - native any-to-many multimodal engine\n\nusage: spider <command> [options]\n\ncommands:\n");
    for (const auto & c : cmds) std::printf("  %-12s %s\n", c.name.c_str(), c.summary.c_str());
    std::printf("\n`spider <command> --help` describes a command's options.\n");
}

int main(int argc, char ** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        print_usage();
        return argc < 2 ? 1 : 0;
    }
    for (const auto & c : spider_cli::command_table()) {
        if (c.name == argv[1]) return c.run(argc - 1, argv + 1);
    }
    std::fprintf(stderr, "spider: unknown command '%s'\n\n", argv[1]);
    print_usage();
    return 1;
}
