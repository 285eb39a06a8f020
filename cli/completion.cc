#include "completion.h"

#include <algorithm>

namespace lxmig::cli {

namespace {

// The option of `app` or one of its parents that `word` names, if any.
CLI::Option* optionNamed(CLI::App* app, const std::string& word) {
  for (CLI::App* a = app; a; a = a->get_parent())
    for (CLI::Option* o : a->get_options())
      if (!o->get_positional() && o->check_name(word)) return o;
  return nullptr;
}

CLI::App* subcommandNamed(CLI::App* app, const std::string& word) {
  for (CLI::App* s : app->get_subcommands([](CLI::App*) { return true; }))
    if (s->get_name() == word) return s;
  return nullptr;
}

bool namesANode(const std::string& option) { return option == "--node" || option == "--to" || option == "node"; }

}  // namespace

std::vector<std::string> completions(CLI::App& app, const std::vector<std::string>& typed,
                                     const CompletionNames& names) {
  CLI::App* at = &app;
  CLI::Option* pending = nullptr;  // an option whose value comes next
  size_t positionals = 0;          // arguments given to the verb reached
  for (const auto& word : typed) {
    if (pending) {
      pending = nullptr;
      continue;
    }
    if (word == "--") return {};  // a command for the container follows
    if (CLI::App* sub = subcommandNamed(at, word)) {
      at = sub;
      positionals = 0;
      continue;
    }
    if (CLI::Option* o = optionNamed(at, word)) {
      if (o->get_expected_max() > 0 && word.find('=') == std::string::npos) pending = o;
      continue;
    }
    if (word.empty() || word[0] != '-') ++positionals;
  }
  std::vector<std::string> out;
  auto add = [&](const std::vector<std::string>& v) { out.insert(out.end(), v.begin(), v.end()); };
  if (pending) {
    const std::string name = pending->get_name();
    if (namesANode(name) && names.nodes) add(names.nodes());
    return out;
  }
  // The verb's next argument, when it names a node or a container.
  std::vector<CLI::Option*> args;
  for (CLI::Option* o : at->get_options())
    if (o->get_positional()) args.push_back(o);
  if (positionals < args.size()) {
    const std::string arg = args[positionals]->get_name();
    if (namesANode(arg) && names.nodes) add(names.nodes());
    if ((arg == "name" || arg == "containers") && names.containers) add(names.containers());
  }
  for (CLI::App* s : at->get_subcommands([](CLI::App*) { return true; }))
    if (!s->get_description().empty()) out.push_back(s->get_name());
  for (CLI::App* a = at; a; a = a->get_parent())
    for (CLI::Option* o : a->get_options())
      if (!o->get_positional())
        for (const auto& l : o->get_lnames()) out.push_back("--" + l);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace lxmig::cli
