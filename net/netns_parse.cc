#include "netns_parse.h"

#include <nlohmann/json.hpp>

#include "lxmig/base/files.h"

namespace lxmig::net {
namespace {

using nlohmann::json;

// The keys of an object that a shape keeps, as one line (keys sorted).
std::string keep(const json& o, std::initializer_list<const char*> keys) {
  json k = json::object();
  for (const char* key : keys)
    if (o.is_object() && o.contains(key)) k[key] = o.at(key);
  return k.dump(-1, ' ', false, json::error_handler_t::replace);
}

// An object without the keys that change by themselves.
std::string without(json o, std::initializer_list<const char*> keys) {
  if (o.is_object()) {
    for (const char* key : keys) o.erase(key);
    if (o.contains("flags") && o["flags"].is_array()) {
      json f = json::array();
      for (const auto& x : o["flags"])
        if (x != "linkdown") f.push_back(x);
      o["flags"] = f;
    }
  }
  return o.dump(-1, ' ', false, json::error_handler_t::replace);
}

// o[key] when o is an object with a string there, else "".
std::string text(const json& o, const char* key) {
  if (!o.is_object()) return "";
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

int number(const json& o, const char* key) {
  if (!o.is_object()) return 0;
  auto it = o.find(key);
  return it != o.end() && it->is_number_integer() ? it->get<int>() : 0;
}

// The array of o[key], or an empty one.
const json& items(const json& o, const char* key) {
  static const json kNone = json::array();
  if (!o.is_object()) return kNone;
  auto it = o.find(key);
  return it != o.end() && it->is_array() ? *it : kNone;
}

Result<json> jsonArray(std::string_view text, const char* what) {
  auto j = json::parse(trim(text).empty() ? std::string_view("[]") : text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return internalError(std::string("`ip ") + what + "` printed no JSON array");
  return j;
}

}  // namespace

Result<NetnsLayout> layoutFromIp(std::string_view addrJson, std::string_view routeJson) {
  NetnsLayout l;
  bool found = false;
  LXMIG_ASSIGN_OR_RETURN(auto links, jsonArray(addrJson, "addr show"));
  for (const auto& link : links) {
    if (text(link, "ifname") != "eth0") continue;
    found = true;
    l.hwaddr = text(link, "address");
    l.mtu = number(link, "mtu");
    for (const auto& a : items(link, "addr_info"))
      if (text(a, "family") == "inet")
        l.addresses.push_back({text(a, "local"), number(a, "prefixlen"), text(a, "broadcast")});
  }
  LXMIG_ASSIGN_OR_RETURN(auto routes, jsonArray(routeJson, "route show default"));
  for (const auto& r : routes)
    if (text(r, "dev") == "eth0" && !text(r, "gateway").empty()) l.gateway = text(r, "gateway");
  if (!found) return notFound("no eth0");
  return l;
}

Result<std::vector<std::string>> shapeLinesFromIp(const std::vector<std::string>& parts,
                                                  std::vector<std::string>* ifnames) {
  if (parts.size() != 6)
    return internalError("reading the namespace: " + std::to_string(parts.size()) + " sections, not 6");
  std::vector<std::string> lines;
  LXMIG_ASSIGN_OR_RETURN(auto links, jsonArray(parts[0], "addr show"));
  for (const auto& l : links) {
    json flags = json::array();
    for (const auto& f : items(l, "flags"))
      if (f != "LOWER_UP" && f != "NO-CARRIER" && f != "M-DOWN") flags.push_back(f);
    json link = json::parse(keep(l, {"ifindex", "ifname", "link_type", "address", "mtu", "master"}));
    link["flags"] = flags;
    if (l.is_object() && l.contains("linkinfo") && l.at("linkinfo").is_object() &&
        l.at("linkinfo").contains("info_kind"))
      link["kind"] = l.at("linkinfo").at("info_kind");
    lines.push_back("link " + link.dump(-1, ' ', false, json::error_handler_t::replace));
    // A name becomes a /proc/sys path component: only what the kernel allows.
    if (const std::string n = text(l, "ifname");
        !n.empty() && n.size() <= 15 && n.find('/') == std::string::npos && n != "." && n != "..")
      ifnames->push_back(n);
    const std::string ifname = text(l, "ifname").empty() ? "?" : text(l, "ifname");
    for (const auto& a : items(l, "addr_info"))
      lines.push_back("addr " + ifname + " " +
                      keep(a, {"family", "local", "address", "prefixlen", "broadcast", "scope", "label", "secondary",
                               "noprefixroute"}));
  }
  const char* names[] = {"route-4", "route-6", "rule-4", "rule-6"};
  for (int i = 0; i < 4; ++i) {
    LXMIG_ASSIGN_OR_RETURN(auto entries, jsonArray(parts[1 + i], names[i]));
    for (const auto& r : entries) {
      // The local route of a link-local address comes once its duplicate
      // detection is over (a second after a container starts); the
      // prepared one has it at once.
      if (i == 1 && text(r, "table") == "local" && text(r, "type") == "local" && startsWith(text(r, "dst"), "fe80:"))
        continue;
      lines.push_back(std::string(names[i]) + " " +
                      (i < 2 ? without(r, {"expires"}) : r.dump(-1, ' ', false, json::error_handler_t::replace)));
    }
  }
  for (const auto& l : split(parts[5], '\n'))
    if (!trim(l).empty()) lines.push_back("nft " + std::string(trim(l)));
  return lines;
}

}  // namespace lxmig::net
