/* vocab.c: the vocabulary (vocab.h, agn-formats(5)): loading and checking
 * "token<TAB>count" files into an open-addressing hash table for
 * token -> id, and the token counting table agn-vocab builds one with. */
#include "config.h"
#include "vocab.h"
#include "simd.h"
#include "util.h"

#include <pthread.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- hashing ------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t agn_hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)len * 0xff51afd7ed558ccdull);
    while (len >= 8) {
        uint64_t k;
        memcpy(&k, s, 8);
        h = (h ^ (k * 0x87c37b91114253d5ull)) * 0x4cf5ad432745937full;
        h ^= h >> 29;
        s += 8;
        len -= 8;
    }
    if (len > 0) {
        /* 1..7 bytes without a variable-length copy: two overlapping
         * 4-byte reads, or first, middle and last byte (as wyhash); the
         * length is already in H, so "ab" and "abb" differ */
        uint64_t k;
        if (len >= 4) {
            uint32_t lo, hi;
            memcpy(&lo, s, 4);
            memcpy(&hi, s + len - 4, 4);
            k = (uint64_t)lo | (uint64_t)hi << 32;
        } else {
            k = (uint64_t)s[0] << 16 | (uint64_t)s[len >> 1] << 8 | s[len - 1];
        }
        h = (h ^ (k * 0x87c37b91114253d5ull)) * 0x4cf5ad432745937full;
    }
    return mix64(h);
}

/* ---- the vocabulary ------------------------------------------------------ */

struct agn_vocab {
    char *text; /* the file as read */
    size_t text_len;
    uint32_t size;
    char *arena;       /* tokens, each NUL-terminated */
    size_t *tok_off;   /* [size] offset of each token in arena */
    uint32_t *tok_len; /* [size] */
    uint32_t *slots;   /* id + 1, 0 = empty; power-of-two size */
    size_t mask;
    uint32_t crc;
};

/* Finds the slot of TOK: the slot holding it, or the empty one where it
 * would go. */
static size_t vocab_slot(const agn_vocab *v, const char *tok, size_t len)
{
    size_t i = (size_t)agn_hash_bytes(tok, len) & v->mask;
    for (;;) {
        uint32_t s = v->slots[i];
        if (s == 0) return i;
        uint32_t id = s - 1;
        if (v->tok_len[id] == len && memcmp(v->arena + v->tok_off[id], tok, len) == 0) return i;
        i = (i + 1) & v->mask;
    }
}

void agn_vocab_free(agn_vocab *v)
{
    if (!v) return;
    free(v->text);
    free(v->arena);
    free(v->tok_off);
    free(v->tok_len);
    free(v->slots);
    free(v);
}

agn_vocab *agn_vocab_parse(const char *buf, size_t len, const char *name)
{
    agn_vocab *v = agn_xcalloc(1, sizeof *v);
    v->text = agn_xmalloc(len + 1);
    memcpy(v->text, buf, len);
    v->text[len] = '\0';
    v->text_len = len;

    /* Count lines first so the table is sized once. */
    size_t lines = 0;
    for (const char *p = buf, *e = buf + len; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        lines++;
        p = nl ? nl + 1 : e;
    }
    size_t cap = 16;
    while (cap < 2 * lines + 2) cap *= 2;
    v->slots = agn_xcalloc(cap, sizeof *v->slots);
    v->mask = cap - 1;
    v->tok_off = agn_xmalloc((lines + 1) * sizeof *v->tok_off);
    v->tok_len = agn_xmalloc((lines + 1) * sizeof *v->tok_len);
    v->arena = agn_xmalloc(len + 1);
    size_t used = 0;
    uLong crc = crc32(0L, Z_NULL, 0);

    unsigned long long lineno = 0;
    int in_header = 1;
    for (const char *p = buf, *e = buf + len; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        const char *le = nl ? nl : e;
        lineno++;
        const char *next = nl ? nl + 1 : e;
        if (in_header && le > p && *p == '#') {
            p = next;
            continue;
        }
        in_header = 0;
        if (memchr(p, '\0', (size_t)(le - p))) {
            agn_seterr("%s:%llu: NUL byte in the line", name, lineno);
            goto fail;
        }
        if (le > p && le[-1] == '\r') {
            agn_seterr("%s:%llu: the line ends in CR LF (a file saved on Windows?); agn's "
                       "vocabulary has LF line ends: convert it with dos2unix or tr -d '\\r'",
                       name, lineno);
            goto fail;
        }
        const char *tab = memchr(p, '\t', (size_t)(le - p));
        if (!tab) {
            agn_seterr("%s:%llu: no tab (expected token<TAB>count)", name, lineno);
            goto fail;
        }
        size_t tl = (size_t)(tab - p);
        if (tl == 0) {
            agn_seterr("%s:%llu: empty token", name, lineno);
            goto fail;
        }
        if (memchr(p, ' ', tl) || memchr(p, '\r', tl)) {
            agn_seterr("%s:%llu: token holds a space or a carriage return", name, lineno);
            goto fail;
        }
        const char *c = tab + 1;
        if (c == le) {
            agn_seterr("%s:%llu: missing count after the tab", name, lineno);
            goto fail;
        }
        uint64_t count = 0;
        for (; c < le; c++) {
            if (*c < '0' || *c > '9' || count > (UINT64_MAX - 9) / 10) {
                agn_seterr("%s:%llu: bad count '%.*s' (expected a decimal number)", name, lineno,
                           (int)((le - tab - 1) > 30 ? 30 : (le - tab - 1)), tab + 1);
                goto fail;
            }
            count = count * 10 + (uint64_t)(*c - '0');
        }
        if (v->size >= INT32_MAX) {
            agn_seterr("%s:%llu: too many tokens", name, lineno);
            goto fail;
        }
        uint32_t id = v->size;
        if (id == AGN_PAD_ID || id == AGN_UNK_ID) {
            const char *want = id == AGN_PAD_ID ? AGN_PAD_TOKEN : AGN_UNK_TOKEN;
            if (tl != strlen(want) || memcmp(p, want, tl) != 0) {
                agn_seterr("%s:%llu: id %u must be '%s', found '%.*s'", name, lineno, id, want,
                           (int)(tl > 40 ? 40 : tl), p);
                goto fail;
            }
        }
        size_t slot = vocab_slot(v, p, tl);
        if (v->slots[slot]) {
            agn_seterr("%s:%llu: duplicate token '%.*s' (first at id %u)", name, lineno,
                       (int)(tl > 40 ? 40 : tl), p, v->slots[slot] - 1);
            goto fail;
        }
        memcpy(v->arena + used, p, tl);
        v->arena[used + tl] = '\0';
        v->tok_off[id] = used;
        v->tok_len[id] = (uint32_t)tl;
        used += tl + 1;
        v->slots[slot] = id + 1;
        v->size++;
        crc = crc32(crc, (const Bytef *)p, (uInt)tl);
        crc = crc32(crc, (const Bytef *)"\n", 1);
        p = next;
    }
    if (v->size < 2) {
        agn_seterr("%s: no '%s' and '%s' entries (a vocabulary starts with them)", name,
                   AGN_PAD_TOKEN, AGN_UNK_TOKEN);
        goto fail;
    }
    v->crc = (uint32_t)crc;
    return v;
fail:
    agn_vocab_free(v);
    return NULL;
}

agn_vocab *agn_vocab_load(const char *path)
{
    size_t len;
    char *buf = agn_read_file(path, &len);
    if (!buf) return NULL;
    agn_vocab *v = agn_vocab_parse(buf, len, path);
    free(buf);
    return v;
}

uint32_t agn_vocab_size(const agn_vocab *v) { return v->size; }

int32_t agn_vocab_lookup(const agn_vocab *v, const char *tok, size_t len)
{
    uint32_t s = v->slots[vocab_slot(v, tok, len)];
    return s > AGN_PAD_ID + 1 ? (int32_t)(s - 1) : AGN_UNK_ID; /* absent, or "<pad>" */
}

const char *agn_vocab_token(const agn_vocab *v, int32_t id)
{
    if (id < 0 || (uint32_t)id >= v->size) return NULL;
    return v->arena + v->tok_off[id];
}

uint32_t agn_vocab_crc(const agn_vocab *v) { return v->crc; }

const char *agn_vocab_text(const agn_vocab *v, size_t *len)
{
    if (len) *len = v->text_len;
    return v->text;
}

/* ---- counting tokens ----------------------------------------------------- */

/* The hot loop of agn-vocab: millions of short tokens (in AG News 99.99% of
 * them have at most 16 bytes), a few tens of thousands of them distinct.
 * So a slot holds the first 16 bytes of its token inline, zero-padded, and
 * a lookup of a short token is a hash of two words and, in the slot it
 * lands on, three compares: no memcmp, no visit to the arena.  A token of
 * more than 16 bytes keeps its full 64-bit hash in the slot instead and is
 * compared with memcmp against the arena.  Every token also goes into the
 * arena once, when it is first seen, so that entries can point at it. */

typedef struct {
    uint64_t w0, w1; /* len <= 16: the bytes, zero-padded; longer: w0 = hash, w1 = 0 */
    uint64_t count;
    uint32_t len;    /* 0 = empty slot */
    uint32_t id;     /* index into off[] */
} tc_slot;

struct agn_tokcount {
    tc_slot *slots;
    size_t mask, n;
    unsigned shift;   /* 64 - log2(slots) */
    char *arena;
    size_t used, cap;
    uint64_t *off;    /* [id] offset of the token in the arena */
    size_t ids, off_cap;
};

#define TC_SHORT 16

/* 8 bytes as a little-endian number, whatever the machine: the inline
 * keys are built both from loads and masks and from copies, which must
 * agree. */
static inline uint64_t load64(const void *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/* The hash of a short token from its padded words: one multiply folds the
 * second word in, a second (Fibonacci hashing) spreads all the bits into
 * the top ones, which index.  Cheap, and enough: every probe compares the
 * whole key. */
static inline uint64_t tc_hash_short(uint64_t w0, uint64_t w1, size_t len)
{
    return ((w1 * 0xe7037ed1a0b428dbull + (uint64_t)len) ^ w0) * 0x9e3779b97f4a7c15ull;
}

static inline uint64_t tc_hash_long(const char *tok, size_t len)
{
    return agn_hash_bytes(tok, len) * 0x9e3779b97f4a7c15ull;
}

/* The words of a short token (LEN 1..16) read from TOK; safe anywhere. */
static inline void tc_words(const char *tok, size_t len, uint64_t *w0, uint64_t *w1)
{
    unsigned char b[TC_SHORT] = {0};
    memcpy(b, tok, len);
    *w0 = load64(b);
    *w1 = load64(b + 8);
}

/* delim_mask64 below: 16-byte compares (AGN_SIMD sse2 and up; simd.h), else
 * a byte loop. */
static int tc_sse2;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static void tc_choose(void) { tc_sse2 = agn_simd_level_now() >= AGN_SIMD_SSE2; }

agn_tokcount *agn_tokcount_new(void)
{
    pthread_once(&tc_once, tc_choose);
    agn_tokcount *t = agn_xcalloc(1, sizeof *t);
    t->mask = (1u << 14) - 1;
    t->shift = 64 - 14;
    t->slots = agn_xcalloc(t->mask + 1, sizeof *t->slots);
    t->cap = 1u << 16;
    t->arena = agn_xmalloc(t->cap);
    t->off_cap = 1u << 12;
    t->off = agn_xmalloc(t->off_cap * sizeof *t->off);
    return t;
}

void agn_tokcount_free(agn_tokcount *t)
{
    if (!t) return;
    free(t->slots);
    free(t->arena);
    free(t->off);
    free(t);
}

static inline uint64_t tc_slot_hash(const tc_slot *s)
{
    return s->len <= TC_SHORT ? tc_hash_short(s->w0, s->w1, s->len) : s->w0;
}

static void tc_grow(agn_tokcount *t)
{
    size_t ncap = (t->mask + 1) * 2;
    unsigned nshift = t->shift - 1;
    tc_slot *ns = agn_xcalloc(ncap, sizeof *ns);
    for (size_t i = 0; i <= t->mask; i++) {
        tc_slot *s = &t->slots[i];
        if (!s->len) continue;
        size_t j = (size_t)(tc_slot_hash(s) >> nshift);
        while (ns[j].len) j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(t->slots);
    t->slots = ns;
    t->mask = ncap - 1;
    t->shift = nshift;
}

/* A new token in slot S (empty): its bytes to the arena. */
static void tc_insert(agn_tokcount *t, tc_slot *s, const char *tok, size_t len, uint64_t w0,
                      uint64_t w1, uint64_t n)
{
    if (len > t->cap - t->used) {
        while (len > t->cap - t->used) t->cap *= 2;
        t->arena = agn_xrealloc(t->arena, t->cap);
    }
    if (t->ids == t->off_cap) {
        t->off_cap *= 2;
        t->off = agn_xrealloc(t->off, t->off_cap * sizeof *t->off);
    }
    memcpy(t->arena + t->used, tok, len);
    t->off[t->ids] = t->used;
    s->w0 = w0;
    s->w1 = w1;
    s->count = n;
    s->len = (uint32_t)len;
    s->id = (uint32_t)t->ids++;
    t->used += len;
    t->n++;
    if (t->n * 10 > (t->mask + 1) * 7) tc_grow(t); /* load factor 0.7 */
}

/* Adds N to a short token given by its words and hash H. */
static inline void tc_add_short(agn_tokcount *t, const char *tok, size_t len, uint64_t w0,
                                uint64_t w1, uint64_t h, uint64_t n)
{
    size_t i = (size_t)(h >> t->shift);
    for (;;) {
        tc_slot *s = &t->slots[i];
        if (s->w0 == w0 && s->w1 == w1 && s->len == len) {
            s->count += n;
            return;
        }
        if (!s->len) {
            if (n) tc_insert(t, s, tok, len, w0, w1, n);
            return;
        }
        i = (i + 1) & t->mask;
    }
}

static void tc_add_long(agn_tokcount *t, const char *tok, size_t len, uint64_t n)
{
    uint64_t h = tc_hash_long(tok, len);
    size_t i = (size_t)(h >> t->shift);
    for (;;) {
        tc_slot *s = &t->slots[i];
        if (!s->len) {
            if (n) tc_insert(t, s, tok, len, h, 0, n);
            return;
        }
        if (s->w0 == h && s->len == len && memcmp(t->arena + t->off[s->id], tok, len) == 0) {
            s->count += n;
            return;
        }
        i = (i + 1) & t->mask;
    }
}

void agn_tokcount_add(agn_tokcount *t, const char *tok, size_t len, uint64_t n)
{
    if (len > TC_SHORT) {
        tc_add_long(t, tok, len, n);
        return;
    }
    uint64_t w0, w1;
    tc_words(tok, len, &w0, &w1);
    tc_add_short(t, tok, len, w0, w1, tc_hash_short(w0, w1, len), n);
}

/* Masks that keep the first LEN bytes of the two words of a token. */
static const uint64_t keep0[TC_SHORT + 1] = {
    0, 0xffull, 0xffffull, 0xffffffull, 0xffffffffull, 0xffffffffffull, 0xffffffffffffull,
    0xffffffffffffffull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull};
static const uint64_t keep1[TC_SHORT + 1] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0xffull, 0xffffull, 0xffffffull, 0xffffffffull,
    0xffffffffffull, 0xffffffffffffull, 0xffffffffffffffull, ~0ull};

/* agn_tokcount_add_text finds tokens faster than the table can take them
 * when each lookup waits for its slot to come from memory, so it gathers
 * them in batches: the words and hash of each, and a prefetch of its slot,
 * then the lookups, whose slots are by then on their way.  A batch is
 * looked up after the 64-byte block that brings it to TC_BATCH tokens or
 * more (a block adds at most 32, the end of the text one more: room for
 * TC_BATCH + 64). */
#define TC_BATCH 64

typedef struct {
    const char *tok;
    uint64_t w0, w1, h;
    size_t len; /* > TC_SHORT: a long token, looked up in full */
} tc_pending;

static inline void tc_flush(agn_tokcount *t, const tc_pending *b, int n)
{
    for (int k = 0; k < n; k++) {
        if (__builtin_expect(b[k].len <= TC_SHORT, 1))
            tc_add_short(t, b[k].tok, b[k].len, b[k].w0, b[k].w1, b[k].h, 1);
        else
            tc_add_long(t, b[k].tok, b[k].len, 1);
    }
}

/* Queues the token [TOK, TOK+LEN) of the text [B, E). */
static inline void tc_queue(const agn_tokcount *t, tc_pending *p, const char *tok, size_t len,
                            const char *b, const char *e)
{
    uint64_t w0 = 0, w1 = 0;
    p->tok = tok;
    p->len = len;
    if (__builtin_expect(len <= TC_SHORT && e - tok >= TC_SHORT, 1)) {
        /* 16 bytes can be read in place; the masks drop what follows */
        w0 = load64(tok) & keep0[len];
        w1 = load64(tok + 8) & keep1[len];
    } else if (len <= TC_SHORT && e - b >= TC_SHORT) {
        /* near the end: the 16 bytes that end at E, shifted down to TOK */
        uint64_t lo = load64(e - 16), hi = load64(e - 8);
        unsigned k = 8 * (unsigned)(tok - (e - 16)); /* 8..120 */
        if (k < 64) {
            w0 = lo >> k | hi << (64 - k);
            w1 = hi >> k;
        } else {
            w0 = hi >> (k - 64);
        }
        w0 &= keep0[len];
        w1 &= keep1[len];
    } else if (len <= TC_SHORT) {
        tc_words(tok, len, &w0, &w1);
    } else {
        return; /* hashed when looked up */
    }
    p->w0 = w0;
    p->w1 = w1;
    p->h = tc_hash_short(w0, w1, len);
    __builtin_prefetch(&t->slots[p->h >> t->shift]);
}

/* Bit i set where P[i] is a space or a tab, for the 64 bytes at P. */
static inline uint64_t delim_mask64(const char *p)
{
#ifdef __SSE2__
    if (tc_sse2) {
        const __m128i sp = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t');
        uint64_t m = 0;
        for (int k = 0; k < 4; k++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
            __m128i d = _mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(v, tab));
            m |= (uint64_t)(uint32_t)_mm_movemask_epi8(d) << (16 * k);
        }
        return m;
    }
#endif
    uint64_t m = 0;
    for (int k = 0; k < 64; k++) m |= (uint64_t)(p[k] == ' ' || p[k] == '\t') << k;
    return m;
}

/* Built for x86-64-v3 (BMI, AVX2) too, picked by the loader where the
 * processor has it: 6% faster there. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
uint64_t agn_tokcount_add_text(agn_tokcount *t, const char *text, size_t len)
{
    /* The text is read 64 bytes at a time into a mask M of its separators.
     * With P = M << 1 | the last bit of the previous mask, the tokens start
     * at the bits of ~M & P and end at those of M & ~P; within a block they
     * pair up in order, but for a token that began in an earlier block
     * (its end comes first) and one that goes on into the next (its start
     * comes last).  The lookups wait in the batch until a block is done
     * with 32 or more of them. */
    const char *e = text + len, *start = NULL;
    uint64_t ntok = 0, carry = 1; /* before the text: a separator */
    tc_pending batch[TC_BATCH + 64];
    int nb = 0;
    for (size_t off = 0; off < len; off += 64) {
        const char *p = text + off;
        uint64_t m;
        size_t n = len - off;
        if (n >= 64) {
            m = delim_mask64(p);
        } else {
            char tail[64];
            memcpy(tail, p, n);
            memset(tail + n, ' ', 64 - n);
            m = delim_mask64(tail);
        }
        uint64_t prev = m << 1 | carry, starts = ~m & prev, ends = m & ~prev;
        carry = m >> 63;
        if (start) {
            if (!ends) continue; /* the whole block inside one token */
            tc_queue(t, &batch[nb++], start, (size_t)(p + __builtin_ctzll(ends) - start), text, e);
            ends &= ends - 1;
            start = NULL;
        }
        while (ends) {
            const char *a = p + __builtin_ctzll(starts), *b = p + __builtin_ctzll(ends);
            starts &= starts - 1;
            ends &= ends - 1;
            tc_queue(t, &batch[nb++], a, (size_t)(b - a), text, e);
        }
        if (starts) start = p + __builtin_ctzll(starts);
        if (nb >= TC_BATCH) {
            tc_flush(t, batch, nb);
            ntok += (uint64_t)nb;
            nb = 0;
        }
    }
    if (start) tc_queue(t, &batch[nb++], start, (size_t)(e - start), text, e); /* runs to the end */
    tc_flush(t, batch, nb);
    return ntok + (uint64_t)nb;
}

size_t agn_tokcount_distinct(const agn_tokcount *t) { return t->n; }

static int entry_cmp(const void *a, const void *b)
{
    const agn_tokcount_entry *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    uint32_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->tok, y->tok, m);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

agn_tokcount_entry *agn_tokcount_sorted(const agn_tokcount *t, size_t *n)
{
    agn_tokcount_entry *e = agn_xmalloc((t->n ? t->n : 1) * sizeof *e);
    size_t k = 0;
    for (size_t i = 0; i <= t->mask; i++) {
        const tc_slot *s = &t->slots[i];
        if (!s->len) continue;
        e[k].tok = t->arena + t->off[s->id];
        e[k].len = s->len;
        e[k].count = s->count;
        k++;
    }
    qsort(e, k, sizeof *e, entry_cmp);
    *n = k;
    return e;
}

agn_tokcount_entry *agn_tokcount_take_sorted(agn_tokcount *t, size_t *n)
{
    _Static_assert(sizeof(agn_tokcount_entry) <= sizeof(tc_slot),
                   "entries are written over the slots they come from");
    /* Entry k is written over slot k <= i after slot i has been read. */
    agn_tokcount_entry *e = (agn_tokcount_entry *)(void *)t->slots;
    size_t k = 0;
    for (size_t i = 0; i <= t->mask; i++) {
        tc_slot s = t->slots[i];
        if (!s.len) continue;
        agn_tokcount_entry x = {t->arena + t->off[s.id], s.len, s.count};
        e[k++] = x;
    }
    qsort(e, k, sizeof *e, entry_cmp);
    e = agn_xrealloc(e, (k ? k : 1) * sizeof *e);
    /* a fresh, empty index */
    t->mask = 15;
    t->shift = 64 - 4;
    t->slots = agn_xcalloc(t->mask + 1, sizeof *t->slots);
    t->n = 0;
    *n = k;
    return e;
}
