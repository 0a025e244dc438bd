/*
 * edge/tls.c: server TLS contexts and the self-signed certificate made on first run.
 *
 * Owns every use of OpenSSL's certificate and key APIs in edge/. The generated key file is
 * created with mode 0600 before any byte is written to it, so it is never readable by others.
 */
#define H2O_USE_LIBUV 0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "h2o.h"
#include "edge/tls.h"

/* The TLS 1.2 suites accepted (the client's order picks one) */
#define TLS12_CIPHERS                                                                                                      \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                        \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static void openssl_reason(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s: %s", what, buf);
    ERR_clear_error();
}

/* mkdir -p of the parent directory of `path`; what is created gets mode 0700. */
static int make_parent_dirs(const char *path)
{
    char buf[4096];
    if (strlen(path) >= sizeof(buf))
        return -1;
    strcpy(buf, path);
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p != '\0'; ++p) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static int write_pem(const char *path, mode_t mode, EVP_PKEY *pkey, X509 *cert, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd == -1) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *fp = fdopen(fd, "w");
    if (fp == NULL) {
        close(fd);
        unlink(path);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = pkey != NULL ? PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(fp, cert);
    if (fclose(fp) != 0)
        ok = 0;
    if (!ok) {
        unlink(path);
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    return 0;
}

static int generate_self_signed(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    EVP_PKEY *pkey = NULL;
    X509 *cert = NULL;
    BIGNUM *serial = NULL;
    int ret = -1;

    if (make_parent_dirs(cert_file) != 0 || make_parent_dirs(key_file) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", cert_file, strerror(errno));
        goto Exit;
    }
    if ((pkey = EVP_EC_gen("P-256")) == NULL) {
        openssl_reason(err, errlen, "cannot generate a key");
        goto Exit;
    }
    if ((cert = X509_new()) == NULL || (serial = BN_new()) == NULL || !BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !X509_set_version(cert, 2) || BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600) == NULL || !X509_set_pubkey(cert, pkey)) {
        openssl_reason(err, errlen, "cannot build the certificate");
        goto Exit;
    }
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"cdn-edge self-signed", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (add_ext(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") != 0 ||
        add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(cert, NID_ext_key_usage, "serverAuth") != 0 || !X509_sign(cert, pkey, EVP_sha256())) {
        openssl_reason(err, errlen, "cannot sign the certificate");
        goto Exit;
    }
    /* the key first: a certificate without its key is useless, and an existing cert is never overwritten */
    if (write_pem(key_file, 0600, pkey, NULL, err, errlen) != 0)
        goto Exit;
    if (write_pem(cert_file, 0644, NULL, cert, err, errlen) != 0) {
        unlink(key_file);
        goto Exit;
    }
    ret = 0;
Exit:
    BN_free(serial);
    X509_free(cert);
    EVP_PKEY_free(pkey);
    return ret;
}

SSL_CTX *edge_tls_create_server_ctx(const conf_tls_t *tls, char *err, size_t errlen)
{
    SSL_CTX *ctx = NULL;

    if (tls->self_signed && access(tls->certificate_file, F_OK) != 0 && access(tls->key_file, F_OK) != 0) {
        if (generate_self_signed(tls->certificate_file, tls->key_file, err, errlen) != 0)
            return NULL;
    }
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        openssl_reason(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Every suite offered is forward-secret AEAD (TLS 1.3's defaults; for TLS 1.2 Mozilla's "intermediate" list less
     * its DHE suites), so the client's order decides (Mozilla: prefer server ciphers off): a client knows whether it
     * has AES instructions (ChaCha20 otherwise) and which AES it wants; no server preference forcing AES-256 */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        openssl_reason(err, errlen, "SSL_CTX_set_cipher_list");
        goto Error;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, tls->certificate_file) != 1) {
        char what[4200];
        snprintf(what, sizeof(what), "cannot load certificate %s", tls->certificate_file);
        openssl_reason(err, errlen, what);
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) != 1) {
        char what[4200];
        snprintf(what, sizeof(what), "cannot load key %s", tls->key_file);
        openssl_reason(err, errlen, what);
        goto Error;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_reason(err, errlen, "the key does not match the certificate");
        goto Error;
    }
    /* h2o_alpn_protocols is h2 first, then http/1.1 (H2O-2.2.5.md §2: the h2-only list breaks h1 clients) */
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
Error:
    SSL_CTX_free(ctx);
    return NULL;
}
