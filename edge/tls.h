/*
 * edge/tls.h: the server-side SSL_CTX of a listener (the one OpenSSL boundary of edge/).
 */
#ifndef EDGE_TLS_H
#define EDGE_TLS_H

#include <openssl/ssl.h>
#include "conf/config.h"

/**
 * Builds the SSL_CTX of a listener: TLS 1.2 and 1.3, ALPN h2 then http/1.1 (h2o picks the protocol).
 * With `self_signed`, a missing certificate/key pair is first generated (EC P-256, CN and SAN
 * localhost, 127.0.0.1 and ::1, valid 1 year), the key written with mode 0600 and missing parent
 * directories created with mode 0700. One SSL_CTX is shared by every worker thread.
 * @param[out] err  a reason (the caller prefixes `file:line: key:`)
 * @return the context (owned by the caller, SSL_CTX_free), or NULL with err filled
 */
SSL_CTX *edge_tls_create_server_ctx(const conf_tls_t *tls, char *err, size_t errlen);

#endif
