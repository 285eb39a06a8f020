// What every verb of `lxmig` shares: the global options, how a verb plugs
// into the command line, and how it fails. One file per verb in commands/
// defines its add function; main.cc builds the command line from them.
//
//   Verb addExec(CLI::App& app) {
//     auto* cmd = app.add_subcommand("exec", "run a command inside a container");
//     auto o = std::make_shared<ExecOptions>();
//     cmd->add_option("name", o->name, "container name")->required();
//     return {cmd, [o](const Globals& g, Connector& conn) { return exec(g, conn, *o); }};
//   }
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "client.h"
#include "lxmig/base/status.h"

namespace lxmig::cli {

// The options given before or after the verb.
struct Globals {
  std::string node;  // "": where the container runs, or the local agent
  std::string socket = "/run/lxmig/agent.sock";
  std::string cluster;
  bool json = false;
  bool quiet = false;
};

// A verb: its subcommand, whose options fill storage the verb owns, and
// what runs when the command line names it; returns the exit code.
struct Verb {
  CLI::App* command;
  std::function<int(const Globals& g, Connector& conn)> run;
};

// A verb whose one argument is a container's name. `run` gets the name and
// the node the container runs on (--node, else found as Connector::nodeOf).
using ContainerRun = int (*)(const Globals& g, Connector& conn, const std::string& name, const std::string& node);
Verb containerVerb(CLI::App& app, const std::string& verb, const std::string& description, ContainerRun run);

// Errors and warnings on stderr: "lxmig: WHAT: message" lines, or with
// --json one JSON object per line, {"error": "WHAT: message", "code": N}
// or {"warning": "..."}, so a script reads stdout and stderr alike.
// Exit codes (docs/operations.md): 0 done; 1 failed or refused (what ran
// before is as it was unless the report says otherwise); 2 bad usage or a
// bad value; 3 not implemented.
void setJsonErrors(bool on);
bool jsonErrors();
// The exit code for `st`: InvalidArgument 2, Unimplemented 3, else 1.
int exitCodeOf(const Status& st);
// Prints the error of `st` and returns its exit code.
int fail(const std::string& what, const Status& st);
// Prints `message` as an error and returns `code`.
int failWith(const std::string& what, const std::string& message, int code = 1);
// Prints a line about a part that failed while the command goes on (a node
// that did not answer).
void warn(const std::string& what, const std::string& message);

// This machine's name: the node name of what the CLI does without an agent.
std::string localHostName();

// The nodes to ask about something any of them may hold (a migration, a
// group, audit rows): --node, else every node, else the local agent ("").
std::vector<std::string> nodesToAsk(const Globals& g, Connector& conn);

// In the order of `lxmig --help`.
Verb addDoctor(CLI::App& app);
Verb addTestbed(CLI::App& app);
Verb addRun(CLI::App& app);
Verb addPs(CLI::App& app);
Verb addRm(CLI::App& app);
Verb addExec(CLI::App& app);
Verb addMigrate(CLI::App& app);
Verb addCancel(CLI::App& app);
Verb addWatch(CLI::App& app);
Verb addFw(CLI::App& app);
Verb addAudit(CLI::App& app);
Verb addLogs(CLI::App& app);
Verb addCheckpoint(CLI::App& app);
Verb addRestore(CLI::App& app);
Verb addNodes(CLI::App& app);
Verb addRebalance(CLI::App& app);
Verb addDrain(CLI::App& app);
Verb addPin(CLI::App& app);
Verb addUnpin(CLI::App& app);
Verb addDevices(CLI::App& app);
Verb addGroups(CLI::App& app);
Verb addAdopt(CLI::App& app);
Verb addMerge(CLI::App& app);
Verb addCluster(CLI::App& app);

}  // namespace lxmig::cli
