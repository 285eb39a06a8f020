#include "lxmig/net/firewall.h"

#include <arpa/inet.h>
#include <nftables/libnftables.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "queue_rule.h"

namespace lxmig::net {
namespace {

using Json = nlohmann::json;

std::string chainOf(const std::string& name) { return "in-" + name; }

// nft's error text is several lines (message, the input, a caret line):
// the first line says what is wrong.
std::string firstLine(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  if (s.rfind("Error: ", 0) == 0) s.erase(0, 7);
  return s;
}

bool validIpv4(const std::string& ip) {
  in_addr a{};
  return ::inet_pton(AF_INET, ip.c_str(), &a) == 1;
}

bool containsWord(const std::string& s, const char* word) {
  const size_t n = std::strlen(word);
  for (size_t at = s.find(word); at != std::string::npos; at = s.find(word, at + 1)) {
    bool left = at == 0 || !(std::isalnum(static_cast<unsigned char>(s[at - 1])) || s[at - 1] == '_');
    bool right = at + n == s.size() || !(std::isalnum(static_cast<unsigned char>(s[at + n])) || s[at + n] == '_');
    if (left && right) return true;
  }
  return false;
}

}  // namespace

bool validChainSuffix(const std::string& name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

struct Firewall::Ctx {
  UniqueHandle<nft_ctx, nft_ctx_free> nft;
  std::mutex mu;  // a libnftables context is not thread-safe
};

Firewall::Firewall(nft_ctx* ctx, std::string table) : ctx_(std::make_unique<Ctx>()), table_(std::move(table)) {
  ctx_->nft.reset(ctx);
}
Firewall::Firewall(Firewall&&) noexcept = default;
Firewall& Firewall::operator=(Firewall&&) noexcept = default;
Firewall::~Firewall() = default;

Result<Firewall> Firewall::open(std::string table) {
  if (!validChainSuffix(table)) return invalidArgument("bad nftables table name `" + table + "`");
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return internalError("nft_ctx_new failed (libnftables)");
  if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0) {
    nft_ctx_free(ctx);
    return internalError("libnftables: cannot buffer output");
  }
  return Firewall(ctx, std::move(table));
}

Result<std::string> Firewall::run(const std::string& cmd, bool json, bool echo) {
  std::lock_guard lk(ctx_->mu);
  nft_ctx* c = ctx_->nft.get();
  unsigned flags = NFT_CTX_OUTPUT_HANDLE;
  if (json) flags |= NFT_CTX_OUTPUT_JSON;
  if (echo) flags |= NFT_CTX_OUTPUT_ECHO;
  nft_ctx_output_set_flags(c, flags);
  int rc = nft_run_cmd_from_buffer(c, cmd.c_str());
  // Reading a buffer also rewinds it: read each once.
  const char* o = nft_ctx_get_output_buffer(c);
  const char* e = nft_ctx_get_error_buffer(c);
  std::string out = o ? o : "";
  std::string err = e ? e : "";
  if (rc != 0) {
    std::string line = firstLine(err);
    return internalError(line.empty() ? "nftables command failed" : line);
  }
  return out;
}

Status Firewall::ensureBase(const FirewallBase& base) {
  if (base.strict && base.bridge.empty()) return invalidArgument("strict firewall needs the container bridge's name");
  const std::string t = "inet " + table_;
  if (base.holdQueue > 65535) return invalidArgument("hold queue " + std::to_string(base.holdQueue) + " above 65535");
  std::string cmd = "add table " + t + "\n" + "add map " + t + " inbound { type ipv4_addr : verdict; }\n" + "add set " +
                    t + " blocked { type ipv4_addr; }\n" + "add set " + t +
                    " forwarding { type ipv4_addr; flags timeout; }\n" + "add set " + t +
                    " silenced { type ipv4_addr; }\n" + "add chain " + t +
                    " forward { type filter hook forward priority filter; policy " + (base.strict ? "drop" : "accept") +
                    "; }\n" + "flush chain " + t + " forward\n";
  // Before routing: packets for a frozen container wait in the agent's
  // queue (net/hold.h), those for one that left pass on to its new node.
  cmd += "add chain " + t + " hold { type filter hook prerouting priority mangle; policy accept; }\n";
  cmd += "flush chain " + t + " hold\n";
  // Forwardings of an earlier run end with it (its routes are flushed too).
  cmd += "flush set " + t + " forwarding\n";
  cmd += "add rule " + t + " forward ip saddr @silenced drop\n";
  cmd += "add rule " + t + " forward ip daddr @forwarding accept\n";
  cmd += "add rule " + t + " forward ip daddr @blocked drop\n";
  if (base.strict) {
    cmd += "add rule " + t + " forward ct state established,related accept\n";
    cmd += "add rule " + t + " forward ct state invalid drop\n";
  }
  cmd += "add rule " + t + " forward ip daddr vmap @inbound\n";
  if (base.strict) cmd += "add rule " + t + " forward iifname \"" + base.bridge + "\" accept\n";
  auto r = run(cmd, false);
  if (!r.ok()) return r.status().withContext("nftables table " + t);
  holds_ = false;
  if (base.holdQueue < 0) return okStatus();
  // nftables' own queue expression where the kernel has it, else the
  // xtables target through nft_compat (queue_rule.h).
  const std::string q = std::to_string(base.holdQueue);
  if (run("add rule " + t + " hold ip daddr @blocked ip daddr != @forwarding queue num " + q, false).ok()) {
    holds_ = true;
    return okStatus();
  }
  Status compat = appendCompatQueueRule(table_, "hold", "blocked", "forwarding", static_cast<uint16_t>(base.holdQueue));
  if (!compat.ok()) {
    holdError_ = "no rule can queue packets here (nftables `queue`: not in this kernel; " + compat.message() + ")";
    return okStatus();
  }
  holds_ = true;
  return okStatus();
}

Status Firewall::addContainer(const std::string& name, const std::string& ip) {
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "`");
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address: " + ip);
  const std::string t = "inet " + table_;
  // A stale element for the address (a container removed while the agent
  // was down) is replaced, in the same transaction.
  std::string cmd = "add chain " + t + " " + chainOf(name) + "\n";
  auto has = run("list map " + t + " inbound", true);
  if (has.ok() && has->find("\"" + ip + "\"") != std::string::npos)
    cmd += "delete element " + t + " inbound { " + ip + " }\n";
  cmd += "add element " + t + " inbound { " + ip + " : jump " + chainOf(name) + " }\n";
  auto r = run(cmd, false);
  return r.ok() ? okStatus() : r.status().withContext("firewall chain of `" + name + "`");
}

Status Firewall::removeContainer(const std::string& name) {
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "`");
  const std::string t = "inet " + table_;
  auto has = run("list map " + t + " inbound", true);
  std::string cmd;
  // The elements that jump to this chain go first (the kernel refuses to
  // delete a chain a map still points at), whatever address they hold.
  if (has.ok()) {
    auto j = Json::parse(*has, nullptr, false);
    if (j.is_object())
      for (const auto& o : j["nftables"])
        if (o.contains("map") && o["map"].contains("elem"))
          for (const auto& e : o["map"]["elem"])
            if (e.is_array() && e.size() == 2 && e[0].is_string() &&
                e[1].dump().find("\"" + chainOf(name) + "\"") != std::string::npos)
              cmd += "delete element " + t + " inbound { " + e[0].get<std::string>() + " }\n";
  }
  auto chains = containers();
  if (chains.ok())
    for (const auto& c : *chains)
      if (c == name)
        cmd += "flush chain " + t + " " + chainOf(name) + "\ndelete chain " + t + " " + chainOf(name) + "\n";
  if (cmd.empty()) return okStatus();
  auto r = run(cmd, false);
  return r.ok() ? okStatus() : r.status().withContext("remove firewall chain of `" + name + "`");
}

Status Firewall::block(const std::string& ip) {
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address: " + ip);
  // A container that comes back while its address is forwarded: held again.
  const std::string t = "inet " + table_;
  auto r = run("add element " + t + " blocked { " + ip + " }\nadd element " + t + " forwarding { " + ip +
                   " }\ndelete element " + t + " forwarding { " + ip + " }",
               false);
  return r.ok() ? okStatus() : r.status().withContext("block " + ip);
}

Status Firewall::silence(const std::string& ip) {
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address: " + ip);
  auto r = run("add element inet " + table_ + " silenced { " + ip + " }", false);
  return r.ok() ? okStatus() : r.status().withContext("silence " + ip);
}

Status Firewall::unsilence(const std::string& ip) { return takeOut("silenced", ip, "unsilence "); }

// Added first, so that the delete finds it: idempotent, one transaction.
Status Firewall::takeOut(const std::string& set, const std::string& ip, const std::string& what) {
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address: " + ip);
  const std::string t = "inet " + table_;
  auto r = run("add element " + t + " " + set + " { " + ip + " }\ndelete element " + t + " " + set + " { " + ip + " }",
               false);
  return r.ok() ? okStatus() : r.status().withContext(what + ip);
}

Status Firewall::unblock(const std::string& ip) {
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address: " + ip);
  const std::string t = "inet " + table_;
  // Added first, so that the deletes find them (idempotent, one transaction).
  auto r =
      run("add element " + t + " blocked { " + ip + " }\nadd element " + t + " silenced { " + ip +
              " }\ndelete element " + t + " blocked { " + ip + " }\ndelete element " + t + " silenced { " + ip + " }",
          false);
  return r.ok() ? okStatus() : r.status().withContext("unblock " + ip);
}

Status Firewall::forwardFor(const std::string& ip, int seconds) {
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address: " + ip);
  if (seconds < 1 || seconds > 86400) return invalidArgument("forwarding time " + std::to_string(seconds) + " s");
  const std::string t = "inet " + table_;
  // Replaced, so that the time counts from now.
  auto r = run("add element " + t + " forwarding { " + ip + " }\ndelete element " + t + " forwarding { " + ip +
                   " }\nadd element " + t + " forwarding { " + ip + " timeout " + std::to_string(seconds) + "s }",
               false);
  return r.ok() ? okStatus() : r.status().withContext("forward " + ip);
}

Status Firewall::endForwarding(const std::string& ip) { return takeOut("forwarding", ip, "end forwarding "); }

Result<std::vector<std::string>> Firewall::blocked() {
  auto r = run("list set inet " + table_ + " blocked", true);
  if (!r.ok()) return r.status();
  std::vector<std::string> out;
  auto j = Json::parse(*r, nullptr, false);
  if (j.is_object())
    for (const auto& o : j["nftables"])
      if (o.contains("set") && o["set"].contains("elem"))
        for (const auto& e : o["set"]["elem"])
          if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

Result<std::vector<std::string>> Firewall::containers() {
  auto r = run("list table inet " + table_, true);
  if (!r.ok()) {
    if (r.status().message().find("No such file") != std::string::npos) return std::vector<std::string>{};
    return r.status();
  }
  std::vector<std::string> out;
  auto j = Json::parse(*r, nullptr, false);
  if (!j.is_object()) return internalError("libnftables returned malformed JSON: " + r->substr(0, 300));
  for (const auto& o : j["nftables"]) {
    if (!o.contains("chain")) continue;
    std::string n = o["chain"].value("name", "");
    if (n.rfind("in-", 0) == 0) out.push_back(n.substr(3));
  }
  return out;
}

Result<FirewallRule> Firewall::addRule(const std::string& name, const std::string& rule) {
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "`");
  std::string text(trim(rule));
  if (text.empty()) return invalidArgument("empty firewall rule");
  // One rule, nothing else: no second command, no jumps out of the chain.
  if (text.find_first_of(";\n\r") != std::string::npos)
    return invalidArgument("a firewall rule must be one rule: no `;` or line break in it");
  if (containsWord(text, "jump") || containsWord(text, "goto"))
    return invalidArgument("firewall rule may not jump to another chain: " + text);
  auto chains = containers();
  if (!chains.ok()) return chains.status();
  bool found = false;
  for (const auto& c : *chains) found = found || c == name;
  if (!found) return notFound("container `" + name + "` has no firewall chain on this node");
  auto r = run("add rule inet " + table_ + " " + chainOf(name) + " " + text, true, true);
  if (!r.ok()) return invalidArgument("bad firewall rule `" + text + "`: " + r.status().message());
  auto j = Json::parse(*r, nullptr, false);
  FirewallRule fr;
  if (j.is_object())
    for (const auto& o : j["nftables"])
      if (o.contains("add") && o["add"].contains("rule")) fr.handle = o["add"]["rule"].value("handle", 0ull);
  if (fr.handle == 0) return internalError("nftables did not echo the new rule's handle");
  // Report the rule as nftables now prints it (normalised).
  auto list = listRules(name);
  if (list.ok())
    for (const auto& x : *list)
      if (x.handle == fr.handle) fr.text = x.text;
  if (fr.text.empty()) fr.text = text;
  return fr;
}

Status Firewall::deleteRule(const std::string& name, uint64_t handle) {
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "`");
  LXMIG_ASSIGN_OR_RETURN(auto rules, listRules(name));
  for (const auto& r : rules)
    if (r.handle == handle) {
      auto d = run("delete rule inet " + table_ + " " + chainOf(name) + " handle " + std::to_string(handle), false);
      return d.ok() ? okStatus() : d.status().withContext("delete rule " + std::to_string(handle));
    }
  return notFound("container `" + name + "` has no firewall rule with handle " + std::to_string(handle) +
                  " (see `lxmig fw list " + name + "`)");
}

Result<std::vector<FirewallRule>> Firewall::listRules(const std::string& name) {
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "`");
  auto r = run("list chain inet " + table_ + " " + chainOf(name), false);
  if (!r.ok()) {
    if (r.status().message().find("No such file") != std::string::npos)
      return notFound("container `" + name + "` has no firewall chain on this node");
    return r.status();
  }
  // Lines look like "\t\ttcp dport 80 accept # handle 6"; the chain's own
  // line ends in "{ # handle 3".
  std::vector<FirewallRule> out;
  size_t pos = 0;
  while (pos < r->size()) {
    size_t nl = r->find('\n', pos);
    std::string line = r->substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? r->size() : nl + 1;
    auto h = line.rfind(" # handle ");
    if (h == std::string::npos) continue;
    std::string body(trim(line.substr(0, h)));
    if (body.empty() || body.back() == '{') continue;
    FirewallRule fr;
    fr.handle = std::strtoull(line.c_str() + h + 10, nullptr, 10);
    fr.text = body;
    out.push_back(std::move(fr));
  }
  return out;
}

Result<std::string> Firewall::exportContainer(const std::string& name, const std::string& ip) {
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "`");
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address: " + ip);
  auto r = run("list chain inet " + table_ + " " + chainOf(name), true);
  if (!r.ok()) return r.status().withContext("export firewall chain of `" + name + "`");
  auto j = Json::parse(*r, nullptr, false);
  if (!j.is_object() || !j.contains("nftables")) return internalError("libnftables returned malformed JSON");
  Json rules = Json::array();
  for (const auto& o : j["nftables"]) {
    if (!o.contains("rule")) continue;
    Json rule = o["rule"];
    rule.erase("handle");
    rule.erase("family");
    rule.erase("table");
    rule.erase("chain");
    rules.push_back(std::move(rule));
  }
  Json doc = {{"container", name}, {"ip", ip}, {"rules", std::move(rules)}};
  return doc.dump();
}

Status Firewall::importContainer(const std::string& name, const std::string& ip, const std::string& exported) {
  // Another container's stale element for this address is replaced.
  auto has = run("list map inet " + table_ + " inbound", true);
  const bool stale = has.ok() && has->find("\"" + ip + "\"") != std::string::npos;
  LXMIG_ASSIGN_OR_RETURN(std::string batch, importBatch(table_, name, ip, exported, stale));
  auto r = run(batch, true);
  return r.ok() ? okStatus() : r.status().withContext("import firewall rules of `" + name + "`");
}

namespace {

constexpr size_t kMaxExportBytes = 1 << 20;
constexpr size_t kMaxImportRules = 1000;
constexpr int kMaxJsonDepth = 32;

// Deeper nesting than any rule has, before the parser sees it.
bool shallow(const std::string& text) {
  int depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') inString = false;
      continue;
    }
    if (c == '"') inString = true;
    else if ((c == '[' || c == '{') && ++depth > kMaxJsonDepth) return false;
    else if (c == ']' || c == '}') --depth;
  }
  return true;
}

// nftables' JSON keys are lower-case words ("payload", "tcp option",
// "queue-threshold"): anything else is refused, not passed on.
bool plainKey(const std::string& k) {
  if (k.empty() || k.size() > 32) return false;
  for (char c : k)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ' ')) return false;
  return true;
}

// A rule's statements may only filter and count: nothing that rewrites
// packets, jumps elsewhere, or touches a set by name (lxmig's own sets,
// `blocked` first, live in the same table).
Status checkRule(const Json& expr) {
  static const std::set<std::string> kPlain = {"match",  "counter", "accept", "drop",  "reject",
                                               "return", "log",     "limit",  "quota", "mangle"};
  if (!expr.is_array() || expr.empty()) return invalidArgument("a rule without statements");
  for (const auto& stmt : expr) {
    if (!stmt.is_object() || stmt.size() != 1) return invalidArgument("a malformed statement");
    const std::string key = stmt.begin().key();
    if (!kPlain.count(key)) return invalidArgument("a `" + key.substr(0, 32) + "` statement");
    if (key == "mangle") {
      const Json& target = stmt["mangle"].is_object() ? stmt["mangle"].value("key", Json()) : Json();
      const bool mark = target.is_object() && target.size() == 1 &&
                        (target.contains("meta") || target.contains("ct")) && target.begin()->is_object() &&
                        target.begin()->value("key", "") == "mark";
      if (!mark) return invalidArgument("a statement that rewrites packets");
    }
  }
  // No named set or map anywhere, no jump or goto.
  std::vector<const Json*> todo = {&expr};
  while (!todo.empty()) {
    const Json* j = todo.back();
    todo.pop_back();
    if (j->is_string() && startsWith(j->get_ref<const std::string&>(), "@"))
      return invalidArgument("a reference to a named set");
    if (j->is_object()) {
      for (const auto& [k, v] : j->items()) {
        if (!plainKey(k)) return invalidArgument("a malformed key in a rule");
        if (k == "jump" || k == "goto") return invalidArgument("a jump to another chain");
        todo.push_back(&v);
      }
    } else if (j->is_array()) {
      for (const auto& v : *j) todo.push_back(&v);
    }
  }
  return okStatus();
}

}  // namespace

Result<std::string> renameExport(const std::string& exported, const std::string& name) {
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "` for a firewall chain");
  if (exported.size() > kMaxExportBytes || !shallow(exported))
    return invalidArgument("firewall export: larger or deeper than any chain of rules");
  auto doc = Json::parse(exported, nullptr, false);
  if (!doc.is_object() || !doc.contains("container") || !doc["container"].is_string())
    return invalidArgument("firewall export: malformed (want {container, ip, rules})");
  doc["container"] = name;
  return doc.dump();
}

Result<std::string> importBatch(const std::string& table, const std::string& name, const std::string& ip,
                                const std::string& exported, bool replaceElement) {
  const std::string what = "firewall export of `" + name + "`";
  if (!validChainSuffix(name)) return invalidArgument("bad container name `" + name + "` for a firewall chain");
  if (!validIpv4(ip)) return invalidArgument("not an IPv4 address for a firewall element: " + ip);
  if (exported.size() > kMaxExportBytes || !shallow(exported))
    return invalidArgument(what + ": larger or deeper than any chain of rules");
  auto doc = Json::parse(exported, nullptr, false);
  if (!doc.is_object() || !doc.contains("container") || !doc["container"].is_string() || !doc.contains("ip") ||
      !doc["ip"].is_string() || !doc.contains("rules") || !doc["rules"].is_array())
    return invalidArgument(what + ": malformed (want {container, ip, rules})");
  if (doc["container"].get_ref<const std::string&>() != name || doc["ip"].get_ref<const std::string&>() != ip)
    return invalidArgument(what + ": it is for another container or address");
  if (doc["rules"].size() > kMaxImportRules) return invalidArgument(what + ": more than 1,000 rules");
  const std::string chain = chainOf(name);
  Json chainObj = {{"family", "inet"}, {"table", table}, {"name", chain}};
  Json cmds = Json::array();
  cmds.push_back({{"add", {{"chain", chainObj}}}});
  cmds.push_back({{"flush", {{"chain", chainObj}}}});
  for (const auto& r : doc["rules"]) {
    if (!r.is_object() || !r.contains("expr")) return invalidArgument(what + ": a malformed rule");
    if (Status st = checkRule(r["expr"]); !st.ok()) return invalidArgument(what + ": " + st.message());
    // Only the statements and a comment travel; where the rule goes is ours
    // to say.
    Json rule = {{"family", "inet"}, {"table", table}, {"name", nullptr}, {"chain", chain}, {"expr", r["expr"]}};
    rule.erase("name");
    if (r.contains("comment")) {
      if (!r["comment"].is_string() || r["comment"].get_ref<const std::string&>().size() > 128)
        return invalidArgument(what + ": a malformed comment");
      rule["comment"] = r["comment"];
    }
    cmds.push_back({{"add", {{"rule", std::move(rule)}}}});
  }
  Json setObj = {{"family", "inet"}, {"table", table}, {"name", "inbound"}};
  if (replaceElement) {
    Json del = setObj;
    del["elem"] = Json::array({ip});
    cmds.push_back({{"delete", {{"element", std::move(del)}}}});
  }
  Json add = setObj;
  add["elem"] = Json::array({Json::array({ip, {{"jump", {{"target", chain}}}}})});
  cmds.push_back({{"add", {{"element", std::move(add)}}}});
  return Json({{"nftables", std::move(cmds)}}).dump();
}

}  // namespace lxmig::net
