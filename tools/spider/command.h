// Subcommand registry of the `spider` tool: each cmd_<name>.cpp defines one command and registers it with a
// static `command_registrar`, so adding a command never touches main.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace spider_cli {

struct command {
    std::string name;
    std::string summary;                             // one line for `spider --help`
    std::function<int(int argc, char ** argv)> run;  // argv[0] is the command name; returns the exit code
};

std::vector<command> & command_table();

struct command_registrar {
    explicit command_registrar(command c) { command_table().push_back(std::move(c)); }
};

}  // namespace spider_cli
