/* t-vocab.c: unit tests of the vocabulary and of the token counting table:
 * counts against a plain array, the sort order as a total order, the
 * line counter (agn_tokcount_add_text) against the token-by-token one, lookups,
 * the CRC against zlib's crc32 over the token list, and parse errors. */
#include "config.h"
#include "stream.h"
#include "util.h"
#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int failures;
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the counting table ------------------------------------------------ */

static void test_tokcount(void)
{
    enum { N = 30000, DRAWS = 400000 };
    uint64_t *want = calloc(N, sizeof *want);
    agn_tokcount *t = agn_tokcount_new();
    char tok[32];
    for (int i = 0; i < DRAWS; i++) {
        /* skewed: small ids far more often, so counts tie and differ */
        uint64_t r = next_rand();
        int id = (int)((r % N) * ((r >> 40) % N) / N);
        int len = snprintf(tok, sizeof tok, "k%d", id);
        agn_tokcount_add(t, tok, (size_t)len, 1);
        want[id]++;
    }
    size_t distinct = 0;
    for (int i = 0; i < N; i++) distinct += want[i] > 0;
    CHECK(agn_tokcount_distinct(t) == distinct);
    size_t n;
    agn_tokcount_entry *e = agn_tokcount_sorted(t, &n);
    CHECK(n == distinct);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int id = -1;
        char buf[32];
        memcpy(buf, e[i].tok, e[i].len);
        buf[e[i].len] = '\0';
        CHECK(sscanf(buf, "k%d", &id) == 1 && id >= 0 && id < N);
        if (id >= 0 && id < N) CHECK(e[i].count == want[id]);
        total += e[i].count;
        if (i > 0) {
            /* count descending, then bytes ascending, never equal */
            int ok = e[i - 1].count > e[i].count;
            if (e[i - 1].count == e[i].count) {
                size_t m = e[i - 1].len < e[i].len ? e[i - 1].len : e[i].len;
                int c = memcmp(e[i - 1].tok, e[i].tok, m);
                ok = c < 0 || (c == 0 && e[i - 1].len < e[i].len);
            }
            CHECK(ok);
        }
    }
    CHECK(total == DRAWS);
    /* built in place: the same entries in the same order */
    size_t n2;
    agn_tokcount_entry *e2 = agn_tokcount_take_sorted(t, &n2);
    CHECK(n2 == n);
    for (size_t i = 0; i < n && i < n2; i++)
        CHECK(e2[i].tok == e[i].tok && e2[i].len == e[i].len && e2[i].count == e[i].count);
    CHECK(agn_tokcount_distinct(t) == 0);
    agn_tokcount_add(t, "again", 5, 2); /* the emptied table still works */
    free(e2);
    e2 = agn_tokcount_take_sorted(t, &n2);
    CHECK(n2 == 1 && e2[0].count == 2 && e2[0].len == 5);
    free(e2);
    free(e);
    agn_tokcount_free(t);
    free(want);

    /* bytes that are not text: the length, not a NUL, ends a token */
    t = agn_tokcount_new();
    agn_tokcount_add(t, "a\0b", 3, 2);
    agn_tokcount_add(t, "a", 1, 1);
    agn_tokcount_add(t, "a\0b", 3, 1);
    e = agn_tokcount_sorted(t, &n);
    CHECK(n == 2 && e[0].len == 3 && e[0].count == 3 && e[1].len == 1 && e[1].count == 1);
    free(e);
    agn_tokcount_free(t);
}

/* agn_tokcount_add_text against agn_stream_next_token + agn_tokcount_add on
 * random texts: tokens of 1 to 40 bytes (across the 16-byte inline limit
 * and the 64-byte scanning blocks), runs of spaces and tabs, separators or
 * not at both ends, bytes that are not text (NUL, 0xff), texts of every
 * length from 0, and each text copied to the end of an exactly sized
 * allocation so that a read past its end shows under ASan. */
static void test_add_text(void)
{
    agn_tokcount *a = agn_tokcount_new(), *b = agn_tokcount_new();
    const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789.,'\0\xff";
    uint64_t total = 0;
    for (int round = 0; round < 3000; round++) {
        char text[600];
        size_t len = 0, want_len = (size_t)(next_rand() % (round < 300 ? 70 : 560));
        if (next_rand() % 2) text[len++] = ' ';
        while (len < want_len) {
            /* a token: mostly short, from a small set so that they repeat */
            uint64_t r = next_rand();
            size_t k = (r >> 4) % 8 == 0 ? 17 + (r >> 8) % 24 : 1 + (r >> 8) % 16;
            uint64_t seed = (r >> 20) % 50;
            for (size_t i = 0; i < k && len < want_len; i++)
                text[len++] = alphabet[(seed * 7 + i * (seed % 5 + 1)) % (sizeof alphabet - 1)];
            /* then a run of 1..3 separators (or none: two tokens merge) */
            int nsep = (int)((r >> 32) % 4);
            for (int i = 0; i < nsep && len < want_len; i++)
                text[len++] = (r >> (40 + i)) & 1 ? '\t' : ' ';
        }
        char *copy = malloc(len ? len : 1);
        memcpy(copy, text, len);
        uint64_t n = agn_tokcount_add_text(a, copy, len);
        const char *p = copy, *tok;
        size_t left = len, tl;
        uint64_t want = 0;
        while (agn_stream_next_token(&p, &left, &tok, &tl)) {
            agn_tokcount_add(b, tok, tl, 1);
            want++;
        }
        CHECK(n == want);
        total += want;
        free(copy);
    }
    CHECK(total > 40000);
    size_t na, nb;
    agn_tokcount_entry *ea = agn_tokcount_sorted(a, &na), *eb = agn_tokcount_sorted(b, &nb);
    CHECK(na == nb && na > 100);
    int long_seen = 0;
    for (size_t i = 0; i < na && i < nb; i++) {
        CHECK(ea[i].len == eb[i].len && ea[i].count == eb[i].count &&
              memcmp(ea[i].tok, eb[i].tok, ea[i].len) == 0);
        long_seen += ea[i].len > 16;
    }
    CHECK(long_seen > 10);
    free(ea);
    free(eb);
    agn_tokcount_free(a);
    agn_tokcount_free(b);
}

/* ---- the vocabulary ------------------------------------------------------ */

static void test_vocab(void)
{
    const char *text = "# header one\n# header two\n<pad>\t0\n<unk>\t7\nthe\t10\n,\t4\nzoo\t1";
    agn_vocab *v = agn_vocab_parse(text, strlen(text), "mem");
    CHECK(v != NULL);
    if (!v) return;
    CHECK(agn_vocab_size(v) == 5);
    CHECK(agn_vocab_lookup(v, "the", 3) == 2);
    CHECK(agn_vocab_lookup(v, ",", 1) == 3);
    CHECK(agn_vocab_lookup(v, "zoo", 3) == 4);
    CHECK(agn_vocab_lookup(v, "zo", 2) == AGN_UNK_ID);
    CHECK(agn_vocab_lookup(v, "theirs", 3) == 2); /* LEN bytes, not up to the NUL */
    CHECK(agn_vocab_lookup(v, "<pad>", 5) == AGN_UNK_ID); /* id 0 is only padding */
    CHECK(agn_vocab_lookup(v, "<unk>", 5) == AGN_UNK_ID);
    CHECK(strcmp(agn_vocab_token(v, 2), "the") == 0);
    CHECK(strcmp(agn_vocab_token(v, 0), "<pad>") == 0);
    CHECK(agn_vocab_token(v, 5) == NULL && agn_vocab_token(v, -1) == NULL);
    const char *list = "<pad>\n<unk>\nthe\n,\nzoo\n";
    CHECK(agn_vocab_crc(v) == (uint32_t)crc32(0, (const Bytef *)list, (uInt)strlen(list)));
    size_t len;
    const char *back = agn_vocab_text(v, &len);
    CHECK(len == strlen(text) && memcmp(back, text, len) == 0);
    agn_vocab_free(v);

    /* counts and header lines do not enter the CRC */
    const char *other = "<pad>\t5\n<unk>\t5\nthe\t5\n,\t5\nzoo\t5\n";
    agn_vocab *w = agn_vocab_parse(other, strlen(other), "mem2");
    CHECK(w && agn_vocab_crc(w) == (uint32_t)crc32(0, (const Bytef *)list, (uInt)strlen(list)));
    agn_vocab_free(w);

    /* a big one: every token found at its line */
    size_t cap = 1 << 22, n = 0;
    char *big = malloc(cap);
    n += (size_t)sprintf(big + n, "<pad>\t0\n<unk>\t0\n");
    for (int i = 0; i < 100000; i++) n += (size_t)sprintf(big + n, "w%x\t%d\n", i * 7919, i);
    w = agn_vocab_parse(big, n, "big");
    CHECK(w && agn_vocab_size(w) == 100002);
    for (int i = 0; w && i < 100000; i += 37) {
        char tok[32];
        int l = snprintf(tok, sizeof tok, "w%x", i * 7919);
        CHECK(agn_vocab_lookup(w, tok, (size_t)l) == i + 2);
    }
    agn_vocab_free(w);
    free(big);
}

static void expect_error(const char *text, const char *want)
{
    agn_vocab *v = agn_vocab_parse(text, strlen(text), "bad.txt");
    CHECK(v == NULL);
    if (v) {
        agn_vocab_free(v);
        return;
    }
    if (!strstr(agn_errmsg(), want)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", agn_errmsg(), want);
        failures++;
    }
}

static void test_errors(void)
{
    expect_error("<pad>\t0\n<unk>\t0\na\t1\nb\t1\na\t1\n", "bad.txt:5: duplicate token 'a'");
    expect_error("#h\n<pad>\t0\n<unk>\t0\na\tx\n", "bad.txt:4: bad count 'x'");
    expect_error("<pad>\t0\n<unk>\t0\na\t18446744073709551616\n", "bad.txt:3: bad count");
    expect_error("<pad>\t0\n<unk>\t0\na\n", "bad.txt:3: no tab");
    expect_error("<pad>\t0\n<unk>\t0\n\n", "bad.txt:3: no tab");
    expect_error("<pad>\t0\nthe\t0\n", "bad.txt:2: id 1 must be '<unk>'");
    expect_error("<pad>\t0\n", "bad.txt: no '<pad>' and '<unk>'");
    expect_error("# only a header\n", "bad.txt: no '<pad>' and '<unk>'");
    /* a '#' token after the specials is a token, not a header */
    const char *ok = "<pad>\t0\n<unk>\t0\n#\t3\n";
    agn_vocab *v = agn_vocab_parse(ok, strlen(ok), "ok");
    CHECK(v && agn_vocab_lookup(v, "#", 1) == 2);
    agn_vocab_free(v);
}

int main(void)
{
    test_tokcount();
    test_add_text();
    test_vocab();
    test_errors();
    if (failures) {
        fprintf(stderr, "t-vocab: %d check(s) failed\n", failures);
        return 1;
    }
    printf("t-vocab: all checks passed\n");
    return 0;
}
