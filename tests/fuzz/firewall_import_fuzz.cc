// A peer's firewall export (net::importBatch, net::renameExport): whatever the document, the
// batch either fails with one line or installs only the migration's chain
// and address: every command names the chain in-web or the inbound map
// element for 10.200.1.10, and no rule refers to a named set or jumps.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "lxmig/net/firewall.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string doc(reinterpret_cast<const char*>(in), size);
  // A checkpoint restored under another name: the document names it, or
  // one line says why not.
  if (auto renamed = lxmig::net::renameExport(doc, "web2"); renamed.ok()) {
    auto j = nlohmann::json::parse(*renamed, nullptr, false);
    LXMIG_FUZZ_CHECK(j.is_object() && j["container"] == "web2");
  } else {
    LXMIG_FUZZ_CHECK(renamed.status().message().find('\n') == std::string::npos);
  }
  auto batch = lxmig::net::importBatch("lxmig", "web", "10.200.1.10", doc, size % 2);
  if (!batch.ok()) {
    LXMIG_FUZZ_CHECK(batch.status().message().find('\n') == std::string::npos);
    return 0;
  }
  auto j = nlohmann::json::parse(*batch, nullptr, false);
  LXMIG_FUZZ_CHECK(j.is_object() && j["nftables"].is_array());
  for (const auto& cmd : j["nftables"]) {
    LXMIG_FUZZ_CHECK(cmd.is_object() && cmd.size() == 1);
    const auto& what = cmd.begin().value();
    if (what.contains("rule")) {
      const auto& r = what["rule"];
      LXMIG_FUZZ_CHECK(r["table"] == "lxmig" && r["chain"] == "in-web");
      const std::string expr = r["expr"].dump();
      LXMIG_FUZZ_CHECK(expr.find("\"@") == std::string::npos && expr.find("\"jump\"") == std::string::npos &&
                       expr.find("\"goto\"") == std::string::npos);
    } else if (what.contains("chain")) {
      LXMIG_FUZZ_CHECK(what["chain"]["name"] == "in-web");
    } else {
      LXMIG_FUZZ_CHECK(what.contains("element") && what["element"]["name"] == "inbound");
      LXMIG_FUZZ_CHECK(what["element"]["elem"].dump().find("10.200.1.10") != std::string::npos);
    }
  }
  return 0;
}
