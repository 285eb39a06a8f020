#include "manual.h"

#include <algorithm>
#include <cctype>

namespace lxmig::cli {
namespace {

constexpr const char* kExamples = "Examples:\n";

// Text for roff: backslashes and hyphens escaped, a line that would start
// with a control character ('.' or '\'') guarded.
std::string roff(const std::string& text) {
  std::string out;
  bool lineStart = true;
  for (char c : text) {
    if (lineStart && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
    lineStart = c == '\n';
  }
  return out;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

std::vector<CLI::App*> visibleSubcommands(CLI::App* app) {
  std::vector<CLI::App*> out;
  for (CLI::App* s : app->get_subcommands([](CLI::App*) { return true; }))
    if (!s->get_description().empty()) out.push_back(s);
  return out;
}

// "--to NODE" / "-q, --quiet": the option's names in bold, its value's type
// in italics.
std::string optionTerm(const CLI::Option* o) {
  std::string names;
  for (const auto& s : o->get_snames()) names += (names.empty() ? "" : ", ") + std::string("\\fB\\-") + s + "\\fR";
  for (const auto& l : o->get_lnames())
    names += (names.empty() ? "" : ", ") + std::string("\\fB\\-\\-") + roff(l) + "\\fR";
  if (o->get_expected_max() > 0) {
    std::string type = o->get_type_name();
    type = type.substr(0, type.find(':'));
    names += " \\fI" + roff(type.empty() ? "VALUE" : type) + "\\fR";
  }
  return names;
}

// The options of `app` (not --help) as a tagged list; its arguments first.
void optionList(std::string& out, const CLI::App* app, bool positionals) {
  for (const CLI::Option* o : app->get_options()) {
    if (o->get_positional() != positionals || o->get_name() == "--help" ||
        o->get_lnames() == std::vector<std::string>{"help"})
      continue;
    out += ".TP\n";
    out += positionals ? "\\fI" + roff(o->get_name()) + "\\fR" : optionTerm(o);
    if (positionals && o->get_expected_max() > 1) out += " ...";
    out += "\n" + roff(o->get_description());
    if (o->get_required() && !positionals) out += " (required)";
    const std::string def = o->get_default_str();
    if (!def.empty() && o->get_expected_max() > 0) out += " (default: " + roff(def) + ")";
    out += "\n";
  }
}

bool hasOptions(const CLI::App* app, bool positionals) {
  for (const CLI::Option* o : app->get_options())
    if (o->get_positional() == positionals && o->get_lnames() != std::vector<std::string>{"help"}) return true;
  return false;
}

// "migrate [OPTIONS] name": the words after `lxmig`.
std::string synopsis(const CLI::App* app) {
  std::string out = "\\fB" + roff(app->get_name()) + "\\fR";
  if (hasOptions(app, false)) out += " [\\fIOPTIONS\\fR]";
  for (const CLI::Option* o : app->get_options())
    if (o->get_positional()) {
      std::string arg = "\\fI" + roff(o->get_name()) + "\\fR" + (o->get_expected_max() > 1 ? " ..." : "");
      out += " " + (o->get_required() ? arg : "[" + arg + "]");
    }
  return out;
}

std::vector<std::string> examplesOf(const CLI::App* app) {
  std::vector<std::string> out;
  const std::string footer = app->get_footer();
  const auto at = footer.find(kExamples);
  if (at == std::string::npos) return out;
  size_t pos = at + std::string(kExamples).size();
  while (pos < footer.size()) {
    size_t end = footer.find('\n', pos);
    if (end == std::string::npos) end = footer.size();
    std::string line = footer.substr(pos, end - pos);
    if (line.rfind("  ", 0) == 0) out.push_back(line.substr(2));
    pos = end + 1;
  }
  return out;
}

std::string header(const std::string& title, const std::string& version) {
  return ".TH " + roff(upper(title)) + " 1 \"\" \"lxmig " + roff(version) + "\" \"lxmig manual\"\n";
}

std::string exitStatus() {
  return ".SH EXIT STATUS\n"
         ".TP\n0\ndone\n"
         ".TP\n1\nfailed or refused (a migration, adopt or merge that does not commit leaves the workload running "
         "as before); a node that did not answer\n"
         ".TP\n2\nbad usage: an unknown verb or flag, a missing or malformed value\n"
         ".TP\n3\nnot implemented on this build or host\n"
         ".PP\nWith \\fB\\-\\-json\\fR, errors and warnings on stderr are one JSON object per line: "
         "{\"error\": \"...\", \"code\": N} or {\"warning\": \"...\"}.\n";
}

std::string globalOptions(CLI::App& app) {
  std::string out = ".SH GLOBAL OPTIONS\nGiven before or after the verb.\n";
  optionList(out, &app, false);
  return out;
}

std::string verbPage(CLI::App& app, CLI::App* verb, const std::string& version) {
  const std::string name = "lxmig-" + verb->get_name();
  std::string out = header(name, version);
  out += ".SH NAME\n" + roff(name) + " \\- " + roff(verb->get_description()) + "\n";
  out += ".SH SYNOPSIS\n\\fBlxmig\\fR [\\fIGLOBAL OPTIONS\\fR] " + synopsis(verb);
  const auto subs = visibleSubcommands(verb);
  if (!subs.empty()) out += " \\fICOMMAND\\fR ...";
  out += "\n";
  if (hasOptions(verb, true)) {
    out += ".SH ARGUMENTS\n";
    optionList(out, verb, true);
  }
  if (hasOptions(verb, false)) {
    out += ".SH OPTIONS\n";
    optionList(out, verb, false);
  }
  if (!subs.empty()) {
    out += ".SH COMMANDS\n";
    for (CLI::App* s : subs) {
      out += ".SS lxmig " + roff(verb->get_name()) + " " + synopsis(s) + "\n" + roff(s->get_description()) + "\n";
      if (hasOptions(s, true)) optionList(out, s, true);
      if (hasOptions(s, false)) optionList(out, s, false);
    }
  }
  out += globalOptions(app);
  out += exitStatus();
  const auto examples = examplesOf(verb);
  if (!examples.empty()) {
    out += ".SH EXAMPLES\n.nf\n";
    for (const auto& e : examples) out += roff(e) + "\n";
    out += ".fi\n";
  }
  out += ".SH SEE ALSO\n\\fBlxmig\\fR(1); /usr/share/doc/lxmig (operations.md, config.md, audit.md, security.md)\n";
  return out;
}

std::string mainPage(CLI::App& app, const std::string& version) {
  std::string out = header("lxmig", version);
  std::string desc = app.get_description();
  if (desc.rfind("lxmig: ", 0) == 0) desc = desc.substr(7);
  out += ".SH NAME\nlxmig \\- " + roff(desc) + "\n";
  out += ".SH SYNOPSIS\n\\fBlxmig\\fR [\\fIGLOBAL OPTIONS\\fR] \\fIVERB\\fR [\\fIARGUMENTS\\fR]\n";
  out +=
      ".SH DESCRIPTION\nlxmig drives the lxmigd agents of a cluster: it runs containers, live-migrates them "
      "between nodes with their network state, turns groups of communicating processes into containers "
      "(adopt, merge), evens out load (rebalance, drain) and queries the audit of every step.\n";
  out += ".SH VERBS\n";
  for (CLI::App* v : visibleSubcommands(&app))
    out += ".TP\n\\fB" + roff(v->get_name()) + "\\fR\n" + roff(v->get_description()) + "; see \\fBlxmig\\-" +
           roff(v->get_name()) + "\\fR(1)\n";
  out += globalOptions(app);
  out += exitStatus();
  out +=
      ".SH FILES\n.TP\n/run/lxmig/agent.sock\nthe local agent's socket (\\fB\\-\\-socket\\fR, $LXMIG_SOCKET)\n"
      ".TP\n/etc/lxmig/cluster.toml\nthe cluster's nodes and store (\\fB\\-\\-cluster\\fR, $LXMIG_CLUSTER)\n";
  out +=
      ".SH SEE ALSO\n\\fBlxmigd \\-\\-help\\fR, \\fBlxmigd \\-\\-check\\-config\\fR \\fIFILE\\fR; /usr/share/doc/lxmig "
      "(operations.md: a deployment step by step)\n";
  return out;
}

}  // namespace

std::vector<ManualPage> manualPages(CLI::App& app, const std::string& version) {
  std::vector<ManualPage> pages{{"lxmig.1", mainPage(app, version)}};
  for (CLI::App* v : visibleSubcommands(&app))
    pages.push_back({"lxmig-" + v->get_name() + ".1", verbPage(app, v, version)});
  return pages;
}

CLI::App* withExamples(CLI::App* cmd, const std::vector<std::string>& lines) {
  std::string footer = kExamples;
  for (const auto& l : lines) footer += "  " + l + "\n";
  cmd->footer(footer);
  return cmd;
}

}  // namespace lxmig::cli
