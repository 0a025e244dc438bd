/* Unit tests for purge/nodes.{h,c}: the nodes file of cdn-purge. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "purge/nodes.h"

static const char GOOD[] = "token: \"secret\"                 # default for every node\n"
                           "nodes:\n"
                           "  - name: fra-1\n"
                           "    admin: http://10.0.0.1:8081\n"
                           "  - name: sin-1\n"
                           "    admin: HTTPS://Admin.Example.com:443/edge/\n"
                           "    token: \"other\"              # per-node override\n"
                           "  - { name: local, admin: \"http://127.0.0.1:80\" }\n";

static void test_good(void **state)
{
    purge_nodes_t nodes;
    char err[256] = "";
    int ret = purge_nodes_load_string(&nodes, GOOD, strlen(GOOD), "nodes.yaml", err, sizeof(err));
    if (ret != 0)
        fail_msg("%s", err);
    assert_int_equal(nodes.count, 3);
    assert_string_equal(nodes.nodes[0].name, "fra-1");
    assert_string_equal(nodes.nodes[0].admin, "http://10.0.0.1:8081");
    assert_string_equal(nodes.nodes[0].token, "secret");
    assert_int_equal(nodes.nodes[0].line, 3);
    assert_string_equal(nodes.nodes[1].name, "sin-1");
    assert_string_equal(nodes.nodes[1].admin, "https://admin.example.com/edge"); /* normalised, no trailing '/' */
    assert_string_equal(nodes.nodes[1].token, "other");
    assert_int_equal(nodes.nodes[1].line, 5);
    assert_string_equal(nodes.nodes[2].admin, "http://127.0.0.1");
    assert_string_equal(nodes.nodes[2].token, "secret");
    purge_nodes_dispose(&nodes);
    assert_int_equal(nodes.count, 0);
    purge_nodes_dispose(&nodes);
}

static void test_no_default_token(void **state)
{
    static const char yaml[] = "nodes:\n  - name: a\n    admin: http://h:1\n    token: t1\n";
    purge_nodes_t nodes;
    char err[256];
    assert_int_equal(purge_nodes_load_string(&nodes, yaml, strlen(yaml), "n.yaml", err, sizeof(err)), 0);
    assert_string_equal(nodes.nodes[0].token, "t1");
    purge_nodes_dispose(&nodes);
}

struct bad_case {
    const char *name;
    const char *yaml;
    const char *err;
};

#define NODE_A "  - name: a\n    admin: http://h:1\n"

static const struct bad_case bad_cases[] = {
    {"unknown top-level key", "token: t\nbogus: 1\nnodes:\n" NODE_A, "n.yaml:2: bogus: unknown key"},
    {"unknown node key", "token: t\nnodes:\n  - name: a\n    admin: http://h:1\n    url: http://x\n",
     "n.yaml:5: nodes[0].url: unknown key"},
    {"duplicate key", "token: t\ntoken: u\nnodes:\n" NODE_A, "n.yaml:2: token: duplicate key"},
    {"duplicate node key", "token: t\nnodes:\n  - name: a\n    name: b\n    admin: http://h:1\n",
     "n.yaml:4: nodes[0].name: duplicate key"},
    {"missing nodes", "token: t\n", "n.yaml:1: nodes: missing"},
    {"nodes not a list", "token: t\nnodes: {a: 1}\n", "n.yaml:2: nodes: must be a list"},
    {"nodes empty", "token: t\nnodes: []\n", "n.yaml:2: nodes: must not be empty"},
    {"node not a mapping", "token: t\nnodes:\n  - http://h:1\n",
     "n.yaml:3: nodes[0]: must be a mapping with name and admin"},
    {"missing admin", "token: t\nnodes:\n" NODE_A "  - name: b\n", "n.yaml:5: nodes[1].admin: missing"},
    {"missing name", "token: t\nnodes:\n  - admin: http://h:1\n", "n.yaml:3: nodes[0].name: missing"},
    {"bad admin scheme", "token: t\nnodes:\n  - name: a\n    admin: ftp://h:1\n",
     "n.yaml:4: nodes[0].admin: bad URL: not an absolute http or https URL"},
    {"admin without scheme", "token: t\nnodes:\n  - name: a\n    admin: 10.0.0.1:8081\n",
     "n.yaml:4: nodes[0].admin: bad URL: not an absolute http or https URL"},
    {"admin bad port", "token: t\nnodes:\n  - name: a\n    admin: http://h:99999\n",
     "n.yaml:4: nodes[0].admin: bad URL: bad port"},
    {"admin with a query", "token: t\nnodes:\n  - name: a\n    admin: http://h:1/?x=1\n",
     "n.yaml:4: nodes[0].admin: bad URL: query not allowed"},
    {"admin with userinfo", "token: t\nnodes:\n  - name: a\n    admin: http://u:p@h:1\n",
     "n.yaml:4: nodes[0].admin: bad URL: userinfo not allowed"},
    {"admin a list", "token: t\nnodes:\n  - name: a\n    admin: [http://h:1]\n",
     "n.yaml:4: nodes[0].admin: must be a string"},
    {"duplicate names", "token: t\nnodes:\n" NODE_A "  - name: b\n    admin: http://h:2\n  - name: a\n    admin: http://h:3\n",
     "n.yaml:7: nodes[2].name: duplicate of nodes[0] (line 3)"},
    {"bad name", "token: t\nnodes:\n  - name: fra 1\n    admin: http://h:1\n",
     "n.yaml:3: nodes[0].name: only letters, digits and . _ : - are allowed"},
    {"empty name", "token: t\nnodes:\n  - name: \"\"\n    admin: http://h:1\n", "n.yaml:3: nodes[0].name: must not be empty"},
    {"no token anywhere", "nodes:\n" NODE_A, "n.yaml:2: nodes[0].token: missing, and there is no top-level token"},
    {"second node lacks a token", "nodes:\n  - name: a\n    admin: http://h:1\n    token: x\n  - name: b\n    admin: http://h:2\n",
     "n.yaml:5: nodes[1].token: missing, and there is no top-level token"},
    {"empty default token", "token: \"\"\nnodes:\n" NODE_A, "n.yaml:1: token: must not be empty"},
    {"token with a space", "token: \"a b\"\nnodes:\n" NODE_A, "n.yaml:1: token: must be printable ASCII without spaces"},
    {"token with a newline", "token: \"a\\r\\nX-Evil: 1\"\nnodes:\n" NODE_A,
     "n.yaml:1: token: must be printable ASCII without spaces"},
    {"node token a mapping", "token: t\nnodes:\n  - name: a\n    admin: http://h:1\n    token: {a: b}\n",
     "n.yaml:5: nodes[0].token: must be a string"},
    {"root a list", "- a\n- b\n", "n.yaml:1: expected a mapping with nodes"},
    {"empty file", "", "n.yaml:1: empty file: expected a mapping with nodes"},
    {"YAML syntax error", "token: t\nnodes: [\n", "n.yaml:3: did not find expected node content"},
    {"two documents", "token: t\nnodes:\n" NODE_A "---\ntoken: u\n", "n.yaml:6: only one YAML document is allowed"},
};

static void test_bad(void **state)
{
    for (size_t i = 0; i != sizeof(bad_cases) / sizeof(bad_cases[0]); ++i) {
        const struct bad_case *c = &bad_cases[i];
        purge_nodes_t nodes;
        char err[256] = "";
        if (purge_nodes_load_string(&nodes, c->yaml, strlen(c->yaml), "n.yaml", err, sizeof(err)) != -1)
            fail_msg("%s: accepted", c->name);
        if (strcmp(err, c->err) != 0)
            fail_msg("%s: error '%s', expected '%s'", c->name, err, c->err);
        assert_int_equal(nodes.count, 0);
        assert_null(nodes.nodes);
    }
}

static void test_file(void **state)
{
    const char *tmpdir = getenv("TMPDIR");
    char dir[200], path[256], err[512];
    purge_nodes_t nodes;
    snprintf(dir, sizeof(dir), "%s/test_purge_nodes.XXXXXX", tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/nodes.yaml", dir);

    /* a missing file: path and errno text */
    assert_int_equal(purge_nodes_load_file(&nodes, path, err, sizeof(err)), -1);
    char want[512];
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(err, want);

    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(GOOD, fp);
    fclose(fp);
    assert_int_equal(purge_nodes_load_file(&nodes, path, err, sizeof(err)), 0);
    assert_int_equal(nodes.count, 3);
    purge_nodes_dispose(&nodes);

    /* errors carry the file's path */
    fp = fopen(path, "w");
    fputs("token: t\nnodes:\n  - name: a\n", fp);
    fclose(fp);
    assert_int_equal(purge_nodes_load_file(&nodes, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:3: nodes[0].admin: missing", path);
    assert_string_equal(err, want);

    unlink(path);
    rmdir(dir);
}

/* The shipped example parses, with the per-node override. */
static void test_example(void **state)
{
    purge_nodes_t nodes;
    char err[512];
    if (purge_nodes_load_file(&nodes, EDGE_SOURCE_DIR "/conf/nodes.example.yaml", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(nodes.count, 2);
    assert_string_equal(nodes.nodes[0].name, "fra-1");
    assert_string_equal(nodes.nodes[0].token, "change-me");
    assert_string_equal(nodes.nodes[1].admin, "https://10.1.0.1:8081");
    assert_string_equal(nodes.nodes[1].token, "change-me-too");
    purge_nodes_dispose(&nodes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_no_default_token),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
