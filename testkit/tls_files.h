// The test kit's TLS files (testkit/tls/), for tests of the TCP control plane with TLS: a CA
// (ca.pem), a certificate for localhost, 127.0.0.1 and ::1 signed by it (server.pem, its key
// server.key), and an unrelated CA (other-ca.pem); EC P-256, valid until 2126. Made with
// `openssl req -x509` (the CAs) and `openssl x509 -req` with a subjectAltName extension.
// Test material only: the key is public.
#pragma once

#include <string>

namespace cxlkv::testing {

inline std::string tls_file(const std::string& name) { return std::string(CXLKV_TESTKIT_TLS_DIR) + "/" + name; }

}  // namespace cxlkv::testing
