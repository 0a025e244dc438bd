/*
 * tests/unit/guard_page.h: guard-page inputs for parser tests (picohttpparser test.c style), shared by the unit
 * tests that include it. Define GUARD_SLOTS before including; needs cmocka, <string.h>, <sys/mman.h>, <unistd.h>.
 */
#ifndef TESTS_UNIT_GUARD_PAGE_H
#define TESTS_UNIT_GUARD_PAGE_H

#ifndef GUARD_SLOTS
#define GUARD_SLOTS 4
#endif

/* Guard pages (picohttpparser test.c style): each slot is a page followed by a PROT_NONE page, and an input is
 * copied so that its last byte touches the PROT_NONE page; reading one byte too far crashes. */

static struct {
    char *mem;
    size_t page;
} guard;

static int setup_guard(void **state)
{
    (void)state;
    guard.page = (size_t)sysconf(_SC_PAGESIZE);
    guard.mem = mmap(NULL, guard.page * 2 * GUARD_SLOTS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard.mem == MAP_FAILED)
        return -1;
    for (size_t i = 0; i != GUARD_SLOTS; ++i)
        if (mprotect(guard.mem + guard.page * (2 * i + 1), guard.page, PROT_NONE) != 0)
            return -1;
    return 0;
}

static int teardown_guard(void **state)
{
    (void)state;
    munmap(guard.mem, guard.page * 2 * GUARD_SLOTS);
    return 0;
}

/* Copies s into slot so that it ends right before a guard page; no NUL follows. Valid until the slot is reused. */
static const char *guarded_in(size_t slot, const char *s, size_t len)
{
    assert_true(slot < GUARD_SLOTS && len < guard.page);
    char *dst = guard.mem + guard.page * (2 * slot + 1) - len;
    memcpy(dst, s, len);
    return dst;
}

static const char *guarded(const char *s, size_t len)
{
    return guarded_in(0, s, len);
}

#endif
