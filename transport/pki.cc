#include "lxmig/transport/pki.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <ctime>
#include <memory>

#include "lxmig/base/grammar.h"

namespace lxmig::transport {

namespace {

template <auto F>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    F(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Free<X509_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Free<GENERAL_NAMES_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX_free>>;

// "what: OpenSSL's first queued error", the queue emptied.
Status sslError(const std::string& what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "no detail";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return internalError(what + ": " + buf);
}

Status checkDays(int days) {
  if (days < 1 || days > 36500) return invalidArgument("bad validity " + std::to_string(days) + " days (1..36500)");
  return okStatus();
}

bool isIp(const std::string& a) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, a.c_str(), buf) == 1 || ::inet_pton(AF_INET6, a.c_str(), buf) == 1;
}

Status checkAddress(const std::string& a) {
  if (isIp(a)) return okStatus();
  bool ok = !a.empty() && a.size() <= 253 && std::isalnum(static_cast<unsigned char>(a.front()));
  for (char c : a) ok &= std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  if (!ok) return invalidArgument("bad address " + quote(a) + " (an IP address or a host name, no port)");
  return okStatus();
}

Result<PkeyPtr> newKey() {
  PkeyPtr k(EVP_EC_gen("P-256"));
  if (!k) return sslError("generating a P-256 key");
  return k;
}

Result<PkeyPtr> readKey(const std::string& pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) return sslError("reading a private key");
  return k;
}

Result<X509Ptr> readCert(const std::string& pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr x(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!x) return sslError("reading a certificate");
  return x;
}

Result<std::string> keyPem(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr)) return sslError("writing a key");
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> certPem(X509* x) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(b.get(), x)) return sslError("writing a certificate");
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Status addExt(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!e) return sslError(std::string("making extension ") + OBJ_nid2sn(nid) + " = " + value);
  const int ok = X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  if (!ok) return sslError(std::string("adding extension ") + OBJ_nid2sn(nid));
  return okStatus();
}

// A certificate for `key` named `cn`, valid from 5 minutes ago (clock skew
// between hosts) for `days`; its issuer's name and extensions are the
// caller's.
Result<X509Ptr> newCert(EVP_PKEY* key, const std::string& cn, int days) {
  X509Ptr x(X509_new());
  if (!x || !X509_set_version(x.get(), 2)) return sslError("making a certificate");
  BnPtr serial(BN_new());
  if (!serial || !BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x.get())))
    return sslError("making a serial number");
  if (!X509_gmtime_adj(X509_getm_notBefore(x.get()), -300) ||
      !X509_time_adj_ex(X509_getm_notAfter(x.get()), days, 0, nullptr))
    return sslError("setting the validity");
  X509_NAME* name = X509_get_subject_name(x.get());
  if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                  0) ||
      !X509_set_pubkey(x.get(), key))
    return sslError("naming the certificate");
  return x;
}

}  // namespace

Result<KeyAndCert> makeCa(const std::string& commonName, int days) {
  LXMIG_RETURN_IF_ERROR(checkDays(days));
  LXMIG_RETURN_IF_ERROR(checkPlainText(commonName, "CA name", 64));
  if (commonName.empty()) return invalidArgument("the CA needs a name");
  LXMIG_ASSIGN_OR_RETURN(PkeyPtr key, newKey());
  LXMIG_ASSIGN_OR_RETURN(X509Ptr x, newCert(key.get(), commonName, days));
  if (!X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()))) return sslError("naming the issuer");
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), x.get(), NID_subject_key_identifier, "hash"));
  if (!X509_sign(x.get(), key.get(), EVP_sha256())) return sslError("signing the CA certificate");
  KeyAndCert out;
  LXMIG_ASSIGN_OR_RETURN(out.keyPem, keyPem(key.get()));
  LXMIG_ASSIGN_OR_RETURN(out.certPem, certPem(x.get()));
  return out;
}

Result<KeyAndCert> issueNodeCert(const KeyAndCert& ca, const std::string& node, const std::string& address, int days,
                                 const std::string& keyPemIn) {
  LXMIG_RETURN_IF_ERROR(checkDays(days));
  LXMIG_RETURN_IF_ERROR(checkNodeName(node));
  LXMIG_RETURN_IF_ERROR(checkAddress(address));
  LXMIG_ASSIGN_OR_RETURN(PkeyPtr caKey, readKey(ca.keyPem));
  LXMIG_ASSIGN_OR_RETURN(X509Ptr caCert, readCert(ca.certPem));
  if (X509_check_private_key(caCert.get(), caKey.get()) != 1)
    return sslError("the CA key does not match its certificate");
  PkeyPtr key;
  if (keyPemIn.empty()) {
    LXMIG_ASSIGN_OR_RETURN(key, newKey());
  } else {
    LXMIG_ASSIGN_OR_RETURN(key, readKey(keyPemIn));
  }
  LXMIG_ASSIGN_OR_RETURN(X509Ptr x, newCert(key.get(), node, days));
  if (!X509_set_issuer_name(x.get(), X509_get_subject_name(caCert.get()))) return sslError("naming the issuer");
  const std::string san = "DNS:" + node + "," + (isIp(address) ? "IP:" : "DNS:") + address;
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), caCert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), caCert.get(), NID_key_usage, "critical,digitalSignature"));
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), caCert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), caCert.get(), NID_subject_key_identifier, "hash"));
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), caCert.get(), NID_authority_key_identifier, "keyid"));
  LXMIG_RETURN_IF_ERROR(addExt(x.get(), caCert.get(), NID_subject_alt_name, san));
  if (!X509_sign(x.get(), caKey.get(), EVP_sha256())) return sslError("signing the certificate of " + node);
  KeyAndCert out;
  LXMIG_ASSIGN_OR_RETURN(out.keyPem, keyPem(key.get()));
  LXMIG_ASSIGN_OR_RETURN(out.certPem, certPem(x.get()));
  return out;
}

Result<CertInfo> describeCert(const std::string& pem) {
  LXMIG_ASSIGN_OR_RETURN(X509Ptr x, readCert(pem));
  CertInfo info;
  char cn[256] = "";
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(x.get()), NID_commonName, cn, sizeof cn) > 0)
    info.commonName = cn;
  NamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
    if (g->type == GEN_DNS) {
      const ASN1_IA5STRING* s = g->d.dNSName;
      info.dnsNames.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
    } else if (g->type == GEN_IPADD) {
      const int len = ASN1_STRING_length(g->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = "";
      if ((len == 4 || len == 16) &&
          ::inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), text, sizeof text))
        info.ips.emplace_back(text);
    }
  }
  auto seconds = [](const ASN1_TIME* t) -> int64_t {
    std::tm tm{};
    if (!ASN1_TIME_to_tm(t, &tm)) return 0;
    return static_cast<int64_t>(::timegm(&tm));
  };
  info.notBeforeS = seconds(X509_get0_notBefore(x.get()));
  info.notAfterS = seconds(X509_get0_notAfter(x.get()));
  info.isCa = X509_check_ca(x.get()) != 0;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!X509_digest(x.get(), EVP_sha256(), md, &n)) return sslError("fingerprinting a certificate");
  static const char* hex = "0123456789abcdef";
  for (unsigned i = 0; i < n; ++i) {
    info.sha256 += hex[md[i] >> 4];
    info.sha256 += hex[md[i] & 15];
  }
  return info;
}

Status verifyCert(const std::string& caPem, const std::string& certPemIn) {
  LXMIG_ASSIGN_OR_RETURN(X509Ptr ca, readCert(caPem));
  LXMIG_ASSIGN_OR_RETURN(X509Ptr x, readCert(certPemIn));
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || !X509_STORE_add_cert(store.get(), ca.get()) ||
      !X509_STORE_CTX_init(ctx.get(), store.get(), x.get(), nullptr))
    return sslError("setting up a verification");
  if (X509_verify_cert(ctx.get()) != 1)
    return failedPrecondition(std::string("certificate not valid under this CA: ") +
                              X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  return okStatus();
}

}  // namespace lxmig::transport
