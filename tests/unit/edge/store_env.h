/*
 * tests/unit/edge/store_env.h: what the unit tests that run a real store share (edge/store.c on LMDB): a fresh
 * environment directory under $TMPDIR, opening the store on it, removing it, and an op that records its result.
 * Include after cmocka, <stdio.h>, <stdlib.h>, <string.h>, <unistd.h> and edge/store.h.
 */
#ifndef TESTS_UNIT_EDGE_STORE_ENV_H
#define TESTS_UNIT_EDGE_STORE_ENV_H

/* An op that records its result; read after edge_store_flush (its mutex orders the accesses). */
struct done_op {
    edge_store_op_t op;
    int result;
    int called;
};

static void on_done(edge_store_op_t *op, int result)
{
    struct done_op *d = (struct done_op *)op;
    d->result = result;
    __atomic_fetch_add(&d->called, 1, __ATOMIC_RELEASE);
}

/* Makes dir = $TMPDIR/NAME.XXXXXX (mkdtemp) and path = dir/env (the store creates it). @return 0 or -1 */
static int store_env_make(char *dir, size_t dir_size, char *path, size_t path_size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dir_size, "%s/%s.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", name);
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, path_size, "%s/env", dir);
    return 0;
}

/* Opens the store at path; fails the test when it cannot. */
static edge_store_t *store_env_open(const char *path, uint64_t max_size, unsigned max_readers)
{
    edge_store_settings_t settings = {.path = path, .max_size_bytes = max_size, .max_readers = max_readers};
    char err[512] = "";
    edge_store_t *s = edge_store_open(&settings, err, sizeof(err));
    if (s == NULL)
        fprintf(stderr, "open: %s\n", err);
    assert_non_null(s);
    return s;
}

/* Removes the (closed) environment at path, so that the next open starts empty. */
static void store_env_remove(const char *path)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/data.mdb", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", path);
    unlink(p);
    rmdir(path);
}

#endif
