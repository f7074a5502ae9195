/* vocab.c: the vocabulary (vocab.h, agn-formats(5)): loading and checking
 * "token<TAB>count" files into an open-addressing hash table for
 * token -> id, and the token counting table agn-vocab builds one with. */
#include "config.h"
#include "vocab.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

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
    FILE *f = fopen(path, "rb");
    if (!f) {
        agn_seterr_errno("%s", path);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = agn_xmalloc(cap);
    for (;;) {
        if (len == cap) buf = agn_xrealloc(buf, cap *= 2);
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        agn_seterr_errno("%s", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
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

typedef struct {
    uint64_t off;   /* into the arena */
    uint64_t count; /* 0 = empty slot */
    uint32_t len;
    uint32_t tag;   /* high bits of the hash, to skip most memcmp calls */
} tc_slot;

struct agn_tokcount {
    tc_slot *slots;
    size_t mask, n;
    char *arena;
    size_t used, cap;
};

agn_tokcount *agn_tokcount_new(void)
{
    agn_tokcount *t = agn_xcalloc(1, sizeof *t);
    t->mask = (1u << 14) - 1;
    t->slots = agn_xcalloc(t->mask + 1, sizeof *t->slots);
    t->cap = 1u << 16;
    t->arena = agn_xmalloc(t->cap);
    return t;
}

void agn_tokcount_free(agn_tokcount *t)
{
    if (!t) return;
    free(t->slots);
    free(t->arena);
    free(t);
}

static void tc_grow(agn_tokcount *t)
{
    size_t ncap = (t->mask + 1) * 2;
    tc_slot *ns = agn_xcalloc(ncap, sizeof *ns);
    for (size_t i = 0; i <= t->mask; i++) {
        tc_slot *s = &t->slots[i];
        if (!s->count) continue;
        size_t j = (size_t)agn_hash_bytes(t->arena + s->off, s->len) & (ncap - 1);
        while (ns[j].count) j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(t->slots);
    t->slots = ns;
    t->mask = ncap - 1;
}

void agn_tokcount_add(agn_tokcount *t, const char *tok, size_t len, uint64_t n)
{
    uint64_t h = agn_hash_bytes(tok, len);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = (size_t)h & t->mask;
    for (;;) {
        tc_slot *s = &t->slots[i];
        if (!s->count) break;
        if (s->tag == tag && s->len == len && memcmp(t->arena + s->off, tok, len) == 0) {
            s->count += n;
            return;
        }
        i = (i + 1) & t->mask;
    }
    if (n == 0) return;
    if (t->used + len > t->cap) {
        while (t->used + len > t->cap) t->cap *= 2;
        t->arena = agn_xrealloc(t->arena, t->cap);
    }
    memcpy(t->arena + t->used, tok, len);
    tc_slot *s = &t->slots[i];
    s->off = t->used;
    s->len = (uint32_t)len;
    s->tag = tag;
    s->count = n;
    t->used += len;
    t->n++;
    if (t->n * 10 > (t->mask + 1) * 7) tc_grow(t); /* load factor 0.7 */
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
        if (!s->count) continue;
        e[k].tok = t->arena + s->off;
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
        if (!s.count) continue;
        agn_tokcount_entry x = {t->arena + s.off, s.len, s.count};
        e[k++] = x;
    }
    qsort(e, k, sizeof *e, entry_cmp);
    e = agn_xrealloc(e, (k ? k : 1) * sizeof *e);
    /* a fresh, empty index */
    t->mask = 15;
    t->slots = agn_xcalloc(t->mask + 1, sizeof *t->slots);
    t->n = 0;
    *n = k;
    return e;
}
