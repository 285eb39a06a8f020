// The cluster's certificates, made with OpenSSL's API (no openssl command):
// a cluster CA, and node certificates it signs whose subjectAltNames are
// the node's name (DNS) and address (IP, or DNS for a host name), the
// identity a peer is checked against (docs/security.md). Keys are ECDSA
// P-256; certificates serve both TLS ends (serverAuth, clientAuth).
//
//   auto ca = makeCa("lxmig cluster CA", 3650);
//   auto n1 = issueNodeCert(*ca, "n1", "192.0.2.11", 825);
//   writeFileAtomic(dir + "/n1.key", n1->keyPem, 0600);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::transport {

struct KeyAndCert {
  std::string keyPem;  // PKCS#8, unencrypted: keep it 0600
  std::string certPem;
};

// A self-signed CA certificate and its key, valid for `days` (1..36500).
Result<KeyAndCert> makeCa(const std::string& commonName, int days);

// A node certificate signed by `ca`: CN and DNS:`node`, and `address`
// (an IPv4/IPv6 literal as IP:, else a host name as DNS:), valid for
// `days`; a new key, or `keyPem` when given (renewal keeping the key).
Result<KeyAndCert> issueNodeCert(const KeyAndCert& ca, const std::string& node, const std::string& address, int days,
                                 const std::string& keyPem = "");

struct CertInfo {
  std::string commonName;
  std::vector<std::string> dnsNames;
  std::vector<std::string> ips;
  int64_t notBeforeS = 0, notAfterS = 0;  // Unix seconds
  bool isCa = false;
  std::string sha256;  // fingerprint, hex
};
Result<CertInfo> describeCert(const std::string& certPem);

// Whether `certPem` was signed by `caPem` and is valid now.
Status verifyCert(const std::string& caPem, const std::string& certPem);

}  // namespace lxmig::transport
