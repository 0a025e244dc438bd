/* Unit tests for purge/auth.{h,c}: the bearer-token check. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "purge/auth.h"

struct auth_case {
    const char *name;
    const char *header; /* NULL: no header */
    const char *token;
    int want;
};

static const struct auth_case cases[] = {
    {"right token", "Bearer s3cret", "s3cret", 0},
    {"scheme lower-case", "bearer s3cret", "s3cret", 0},
    {"scheme mixed case", "BeArEr s3cret", "s3cret", 0},
    {"several spaces", "Bearer    s3cret", "s3cret", 0},
    {"wrong token, same length", "Bearer s3creT", "s3cret", -1},
    {"wrong first byte", "Bearer x3cret", "s3cret", -1},
    {"token is a prefix of the expected", "Bearer s3cre", "s3cret", -1},
    {"expected is a prefix of the token", "Bearer s3crett", "s3cret", -1},
    {"much longer", "Bearer s3crets3crets3crets3cret", "s3cret", -1},
    {"trailing space is part of the token", "Bearer s3cret ", "s3cret", -1},
    {"token case matters", "Bearer S3CRET", "s3cret", -1},
    {"no header", NULL, "s3cret", -1},
    {"empty header", "", "s3cret", -1},
    {"scheme only", "Bearer", "s3cret", -1},
    {"scheme and spaces only", "Bearer   ", "s3cret", -1},
    {"no space after the scheme", "Bearers3cret", "s3cret", -1},
    {"tab after the scheme", "Bearer\ts3cret", "s3cret", -1},
    {"basic scheme", "Basic s3cret", "s3cret", -1},
    {"token without scheme", "s3cret", "s3cret", -1},
    {"other scheme sharing a prefix", "Bearerx s3cret", "s3cret", -1},
    {"empty configured token never matches", "Bearer ", "", -1},
    {"empty configured token, some header", "Bearer x", "", -1},
    {"NULL configured token", "Bearer x", NULL, -1},
};

static void test_table(void **state)
{
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        const struct auth_case *c = &cases[i];
        int got = purge_auth_check(c->header, c->header != NULL ? strlen(c->header) : 0, c->token);
        if (got != c->want)
            fail_msg("%s: got %d, expected %d", c->name, got, c->want);
    }
}

/* The header is bounded by len, not by a NUL: bytes after len are not part of the token. */
static void test_len_bounds_header(void **state)
{
    const char buf[] = "Bearer s3cretXYZ";
    assert_int_equal(purge_auth_check(buf, strlen("Bearer s3cret"), "s3cret"), 0);
    assert_int_equal(purge_auth_check(buf, strlen("Bearer s3cretX"), "s3cret"), -1);
    /* an embedded NUL does not end the token early */
    const char nul[] = "Bearer s3cret\0x";
    assert_int_equal(purge_auth_check(nul, sizeof(nul) - 1, "s3cret"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_len_bounds_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
