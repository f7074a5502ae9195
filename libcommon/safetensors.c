/* safetensors.c: the safetensors writer and the checking reader described
 * in safetensors.h, with a small strict JSON parser for the flat header. */
#include "config.h"
#include "safetensors.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- dtypes ------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
} dtypes[AGN_ST_NDTYPES] = {
    [AGN_ST_F64] = {"F64", 8}, [AGN_ST_F32] = {"F32", 4}, [AGN_ST_F16] = {"F16", 2},
    [AGN_ST_BF16] = {"BF16", 2}, [AGN_ST_I64] = {"I64", 8}, [AGN_ST_I32] = {"I32", 4},
    [AGN_ST_I16] = {"I16", 2}, [AGN_ST_I8] = {"I8", 1}, [AGN_ST_U64] = {"U64", 8},
    [AGN_ST_U32] = {"U32", 4}, [AGN_ST_U16] = {"U16", 2}, [AGN_ST_U8] = {"U8", 1},
    [AGN_ST_BOOL] = {"BOOL", 1},
};

const char *agn_st_dtype_name(agn_st_dtype t)
{
    return (unsigned)t < AGN_ST_NDTYPES ? dtypes[t].name : "?";
}

size_t agn_st_dtype_size(agn_st_dtype t) { return (unsigned)t < AGN_ST_NDTYPES ? dtypes[t].size : 0; }

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < AGN_ST_NDTYPES; i++)
        if (strcmp(s, dtypes[i].name) == 0) return i;
    return -1;
}

/* Element count of a shape, or -1 when a dimension is negative or the
 * product (times ELSIZE) overflows. */
static int shape_bytes(int ndim, const int64_t *shape, size_t elsize, size_t *numel,
                       size_t *nbytes)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > UINT64_MAX / (uint64_t)shape[i]) return -1;
        n *= (uint64_t)shape[i];
    }
    if (n > SIZE_MAX / elsize) return -1;
    *numel = (size_t)n;
    *nbytes = (size_t)n * elsize;
    return 0;
}

/* Whether S[0..n) is valid UTF-8 (no overlong forms, no surrogates, at most
 * U+10FFFF) without NUL. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) { i++; continue; }
        int k;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= (size_t)k) return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

/* ---- a growable byte buffer ------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = agn_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_str(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_put(b, tmp, n > 0 ? (size_t)n : 0);
}

/* A JSON string literal; S is valid UTF-8 (checked by the callers). */
static void buf_json_string(buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': buf_str(b, "\\\""); break;
        case '\\': buf_str(b, "\\\\"); break;
        case '\n': buf_str(b, "\\n"); break;
        case '\t': buf_str(b, "\\t"); break;
        case '\r': buf_str(b, "\\r"); break;
        default:
            if (*p < 0x20) buf_printf(b, "\\u%04x", *p);
            else buf_put(b, p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

/* ---- writer ---------------------------------------------------------------------- */

typedef struct {
    char *name;
    agn_st_dtype dtype;
    int ndim;
    int64_t shape[AGN_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
} wtensor;

struct agn_st_writer {
    wtensor *t;
    int nt, capt;
    char **key, **val;
    int nm, capm;
};

agn_st_writer *agn_st_writer_new(void) { return agn_xcalloc(1, sizeof(agn_st_writer)); }

void agn_st_writer_free(agn_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->nt; i++) free(w->t[i].name);
    for (int i = 0; i < w->nm; i++) {
        free(w->key[i]);
        free(w->val[i]);
    }
    free(w->t);
    free(w->key);
    free(w->val);
    free(w);
}

static int check_string(const char *what, const char *s)
{
    if (!utf8_valid((const unsigned char *)s, strlen(s)))
        return agn_seterr("safetensors: %s is not valid UTF-8", what);
    return 0;
}

int agn_st_add(agn_st_writer *w, const char *name, agn_st_dtype dtype, int ndim,
               const int64_t *shape, const void *data)
{
    if (!name[0] || strcmp(name, "__metadata__") == 0)
        return agn_seterr("safetensors: invalid tensor name '%s'", name);
    if (check_string("a tensor name", name) != 0) return -1;
    if ((unsigned)dtype >= AGN_ST_NDTYPES)
        return agn_seterr("safetensors: tensor %s: unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > AGN_ST_MAX_DIMS)
        return agn_seterr("safetensors: tensor %s: %d dimensions", name, ndim);
    size_t numel, nbytes;
    if (shape_bytes(ndim, shape, dtypes[dtype].size, &numel, &nbytes) != 0)
        return agn_seterr("safetensors: tensor %s: invalid shape", name);
    if (nbytes > 0 && !data) return agn_seterr("safetensors: tensor %s: no data", name);
    for (int i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return agn_seterr("safetensors: tensor %s added twice", name);
    if (w->nt == w->capt) {
        w->capt = w->capt ? 2 * w->capt : 64;
        w->t = agn_xrealloc(w->t, (size_t)w->capt * sizeof *w->t);
    }
    wtensor *t = &w->t[w->nt++];
    memset(t, 0, sizeof *t);
    t->name = agn_xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = nbytes;
    t->data = data;
    return 0;
}

int agn_st_add_f32(agn_st_writer *w, const char *name, const float *data, int ndim,
                   const int64_t *shape)
{
    return agn_st_add(w, name, AGN_ST_F32, ndim, shape, data);
}

static int set_meta(agn_st_writer *w, const char *key, const char *value)
{
    for (int i = 0; i < w->nm; i++)
        if (strcmp(w->key[i], key) == 0) {
            free(w->val[i]);
            w->val[i] = agn_xstrdup(value);
            return 0;
        }
    if (w->nm == w->capm) {
        w->capm = w->capm ? 2 * w->capm : 16;
        w->key = agn_xrealloc(w->key, (size_t)w->capm * sizeof *w->key);
        w->val = agn_xrealloc(w->val, (size_t)w->capm * sizeof *w->val);
    }
    w->key[w->nm] = agn_xstrdup(key);
    w->val[w->nm] = agn_xstrdup(value);
    w->nm++;
    return 0;
}

int agn_st_add_meta(agn_st_writer *w, const char *key, const char *value)
{
    if (strcmp(key, "data_crc") == 0)
        return agn_seterr("safetensors: metadata key data_crc is reserved");
    if (check_string("a metadata key", key) != 0) return -1;
    if (!utf8_valid((const unsigned char *)value, strlen(value)))
        return agn_seterr("safetensors: metadata %s: value is not valid UTF-8", key);
    return set_meta(w, key, value);
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

int agn_st_write(agn_st_writer *w, const char *path)
{
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    for (int i = 0; i < w->nt; i++) crc = crc_update(crc, w->t[i].data, w->t[i].nbytes);
    char crcs[16];
    snprintf(crcs, sizeof crcs, "%08x", (unsigned)crc);
    set_meta(w, "data_crc", crcs);

    buf h = {0};
    buf_str(&h, "{\"__metadata__\":{");
    for (int i = 0; i < w->nm; i++) {
        if (i) buf_str(&h, ",");
        buf_json_string(&h, w->key[i]);
        buf_str(&h, ":");
        buf_json_string(&h, w->val[i]);
    }
    buf_str(&h, "}");
    size_t off = 0;
    for (int i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        buf_str(&h, ",");
        buf_json_string(&h, t->name);
        buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) buf_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    buf_str(&h, "}");
    while ((8 + h.n) % 8 != 0) buf_str(&h, " ");
    if (h.n > AGN_ST_MAX_HEADER) {
        free(h.p);
        return agn_seterr("%s: safetensors header of %zu bytes exceeds the limit of %u", path, h.n,
                          AGN_ST_MAX_HEADER);
    }

    agn_out o;
    if (agn_out_open_mode(&o, path, 1) != 0) {
        free(h.p);
        return -1;
    }
    unsigned char len8[8];
    agn_put_u64(len8, (uint64_t)h.n);
    int bad = fwrite(len8, 1, 8, o.fp) != 8 || fwrite(h.p, 1, h.n, o.fp) != h.n;
    for (int i = 0; i < w->nt && !bad; i++)
        if (w->t[i].nbytes && fwrite(w->t[i].data, 1, w->t[i].nbytes, o.fp) != w->t[i].nbytes)
            bad = 1;
    free(h.p);
    if (bad) {
        agn_seterr_errno("%s", path);
        agn_out_abort(&o);
        return -1;
    }
    return agn_out_commit(&o);
}

/* ---- reader: the file --------------------------------------------------------------- */

typedef struct {
    char *key, *val;
} meta_kv;

/* Names (of tensors, of metadata keys) to their positions, by hash: a
 * header may hold millions of names, and a duplicate must be found without
 * comparing each with all the others. */
typedef struct {
    const char *name; /* owned by the tensor or the metadata entry */
    int pos;
} name_slot;

typedef struct {
    name_slot *s;
    size_t cap, n; /* cap: 0 or a power of two above 2n */
} name_index;

struct agn_st_file {
    char *path;
    unsigned char *image; /* the whole file */
    size_t size;
    agn_st_tensor *t;
    int nt, capt;
    meta_kv *meta;
    int nm, capm;
    name_index tix, mix; /* f->t by name, f->meta by key */
    int has_meta, has_crc;
};

static size_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h ^ h >> 32);
}

/* The position of NAME, or -1. */
static int index_find(const name_index *x, const char *name)
{
    if (x->cap == 0) return -1;
    for (size_t i = name_hash(name) & (x->cap - 1);; i = (i + 1) & (x->cap - 1)) {
        if (!x->s[i].name) return -1;
        if (strcmp(x->s[i].name, name) == 0) return x->s[i].pos;
    }
}

static void index_put(name_slot *s, size_t cap, const char *name, int pos)
{
    size_t i = name_hash(name) & (cap - 1);
    while (s[i].name) i = (i + 1) & (cap - 1);
    s[i].name = name;
    s[i].pos = pos;
}

/* Adds NAME (not there yet; it must outlive the index) at POS. */
static void index_add(name_index *x, const char *name, int pos)
{
    if (2 * (x->n + 1) > x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        name_slot *s = agn_xcalloc(cap, sizeof *s);
        for (size_t i = 0; i < x->cap; i++)
            if (x->s[i].name) index_put(s, cap, x->s[i].name, x->s[i].pos);
        free(x->s);
        x->s = s;
        x->cap = cap;
    }
    index_put(x->s, x->cap, name, pos);
    x->n++;
}

void agn_st_close(agn_st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->nt; i++) free((char *)f->t[i].name);
    for (int i = 0; i < f->nm; i++) {
        free(f->meta[i].key);
        free(f->meta[i].val);
    }
    free(f->t);
    free(f->meta);
    free(f->tix.s);
    free(f->mix.s);
    free(f->image);
    free(f->path);
    free(f);
}

/* ---- reader: strict JSON for the flat header ------------------------------------------ */

typedef struct {
    const unsigned char *p, *end, *start;
    const char *path;
} lexer;

static int jerr(lexer *lx, const char *what)
{
    return agn_seterr("%s: bad safetensors header: %s at byte %zu of the JSON", lx->path, what,
                      (size_t)(lx->p - lx->start));
}

static void skip_ws(lexer *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
        lx->p++;
}

static int expect(lexer *lx, char c)
{
    skip_ws(lx);
    if (lx->p >= lx->end || *lx->p != (unsigned char)c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return jerr(lx, what);
    }
    lx->p++;
    return 0;
}

static int peek(lexer *lx, char c)
{
    skip_ws(lx);
    return lx->p < lx->end && *lx->p == (unsigned char)c;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static void put_utf8(buf *b, unsigned cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (unsigned char)(0xc0 | cp >> 6); u[1] = (unsigned char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12); u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18); u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)); u[3] = (unsigned char)(0x80 | (cp & 0x3f)); n = 4;
    }
    buf_put(b, u, n);
}

/* A string literal into a malloc'ed C string (NUL, even as \u0000, refused). */
static int parse_string(lexer *lx, char **out)
{
    *out = NULL;
    if (expect(lx, '"') != 0) return -1;
    buf b = {0};
    buf_put(&b, "", 0);
    for (;;) {
        if (lx->p >= lx->end) { free(b.p); return jerr(lx, "unterminated string"); }
        unsigned c = *lx->p;
        if (c == '"') { lx->p++; break; }
        if (c < 0x20) { free(b.p); return jerr(lx, "control character in a string"); }
        if (c != '\\') {
            /* a run of raw bytes up to the next quote, backslash or control */
            const unsigned char *q = lx->p;
            while (q < lx->end && *q != '"' && *q != '\\' && *q >= 0x20) q++;
            if (!utf8_valid(lx->p, (size_t)(q - lx->p))) { free(b.p); return jerr(lx, "invalid UTF-8 in a string"); }
            buf_put(&b, lx->p, (size_t)(q - lx->p));
            lx->p = q;
            continue;
        }
        if (lx->end - lx->p < 2) { free(b.p); return jerr(lx, "unterminated escape"); }
        unsigned e = lx->p[1];
        lx->p += 2;
        const char *simple = NULL;
        switch (e) {
        case '"': simple = "\""; break;
        case '\\': simple = "\\"; break;
        case '/': simple = "/"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        case 'u': break;
        default: free(b.p); lx->p -= 2; return jerr(lx, "invalid escape");
        }
        if (simple) { buf_put(&b, simple, 1); continue; }
        unsigned cp;
        if (lx->end - lx->p < 4 || hex4(lx->p, &cp) != 0) { free(b.p); return jerr(lx, "invalid \\u escape"); }
        lx->p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            unsigned lo;
            if (lx->end - lx->p < 6 || lx->p[0] != '\\' || lx->p[1] != 'u' || hex4(lx->p + 2, &lo) != 0 ||
                lo < 0xdc00 || lo > 0xdfff) {
                free(b.p);
                return jerr(lx, "unpaired surrogate in a \\u escape");
            }
            lx->p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            free(b.p);
            return jerr(lx, "unpaired surrogate in a \\u escape");
        }
        if (cp == 0) { free(b.p); return jerr(lx, "NUL in a string"); }
        put_utf8(&b, cp);
    }
    *out = b.p;
    return 0;
}

/* A non-negative integer (JSON number without sign, fraction or exponent). */
static int parse_uint(lexer *lx, uint64_t *out)
{
    skip_ws(lx);
    const unsigned char *q = lx->p;
    if (q >= lx->end || *q < '0' || *q > '9') return jerr(lx, "expected a non-negative integer");
    if (*q == '0' && q + 1 < lx->end && q[1] >= '0' && q[1] <= '9') return jerr(lx, "leading zero in a number");
    uint64_t v = 0;
    while (q < lx->end && *q >= '0' && *q <= '9') {
        unsigned d = *q - '0';
        if (v > (UINT64_MAX - d) / 10) return jerr(lx, "integer too large");
        v = v * 10 + d;
        q++;
    }
    if (q < lx->end && (*q == '.' || *q == 'e' || *q == 'E')) return jerr(lx, "expected an integer");
    lx->p = q;
    *out = v;
    return 0;
}

/* [n, n, ...] into V (at most MAX); returns the count or -1. */
static int parse_uint_array(lexer *lx, uint64_t *v, int max)
{
    if (expect(lx, '[') != 0) return -1;
    int n = 0;
    if (peek(lx, ']')) { lx->p++; return 0; }
    for (;;) {
        if (n == max) return jerr(lx, "too many elements in an array");
        if (parse_uint(lx, &v[n++]) != 0) return -1;
        if (peek(lx, ',')) { lx->p++; continue; }
        if (expect(lx, ']') != 0) return -1;
        return n;
    }
}

static int parse_metadata(lexer *lx, agn_st_file *f)
{
    if (f->has_meta) return jerr(lx, "duplicate key __metadata__");
    f->has_meta = 1;
    if (expect(lx, '{') != 0) return -1;
    if (peek(lx, '}')) { lx->p++; return 0; }
    for (;;) {
        char *k, *v;
        if (parse_string(lx, &k) != 0) return -1;
        if (index_find(&f->mix, k) >= 0) { free(k); return jerr(lx, "duplicate metadata key"); }
        if (expect(lx, ':') != 0) { free(k); return -1; }
        skip_ws(lx);
        if (lx->p < lx->end && *lx->p != '"') { free(k); return jerr(lx, "metadata value is not a string"); }
        if (parse_string(lx, &v) != 0) { free(k); return -1; }
        if (f->nm == f->capm) {
            f->capm = f->capm ? 2 * f->capm : 16;
            f->meta = agn_xrealloc(f->meta, (size_t)f->capm * sizeof *f->meta);
        }
        f->meta[f->nm].key = k;
        f->meta[f->nm].val = v;
        index_add(&f->mix, k, f->nm);
        f->nm++;
        if (peek(lx, ',')) { lx->p++; continue; }
        return expect(lx, '}');
    }
}

static int parse_tensor(lexer *lx, agn_st_file *f, char *name)
{
    if (index_find(&f->tix, name) >= 0) { free(name); return jerr(lx, "duplicate tensor name"); }
    if (f->nt == f->capt) {
        f->capt = f->capt ? 2 * f->capt : 64;
        f->t = agn_xrealloc(f->t, (size_t)f->capt * sizeof *f->t);
    }
    agn_st_tensor *t = &f->t[f->nt];
    memset(t, 0, sizeof *t);
    t->name = name;
    index_add(&f->tix, name, f->nt++);
    t->dtype = AGN_ST_NDTYPES;
    t->ndim = -1;
    /* data_offsets parked in shape's tail until checked: keep them apart */
    uint64_t offs[2] = {0, 0};
    int have_dtype = 0, have_shape = 0, have_offs = 0;
    if (expect(lx, '{') != 0) return -1;
    if (peek(lx, '}')) return jerr(lx, "empty tensor entry");
    for (;;) {
        char *k;
        if (parse_string(lx, &k) != 0) return -1;
        if (expect(lx, ':') != 0) { free(k); return -1; }
        if (strcmp(k, "dtype") == 0 && !have_dtype) {
            char *d;
            free(k);
            skip_ws(lx);
            if (lx->p < lx->end && *lx->p != '"') return jerr(lx, "dtype is not a string");
            if (parse_string(lx, &d) != 0) return -1;
            int dt = dtype_from_name(d);
            free(d);
            if (dt < 0) return jerr(lx, "unknown dtype");
            t->dtype = (agn_st_dtype)dt;
            have_dtype = 1;
        } else if (strcmp(k, "shape") == 0 && !have_shape) {
            free(k);
            uint64_t s[AGN_ST_MAX_DIMS];
            int n = parse_uint_array(lx, s, AGN_ST_MAX_DIMS);
            if (n < 0) return -1;
            t->ndim = n;
            for (int i = 0; i < n; i++) {
                if (s[i] > (uint64_t)INT64_MAX) return jerr(lx, "dimension too large");
                t->shape[i] = (int64_t)s[i];
            }
            have_shape = 1;
        } else if (strcmp(k, "data_offsets") == 0 && !have_offs) {
            free(k);
            int n = parse_uint_array(lx, offs, 2);
            if (n < 0) return -1;
            if (n != 2) return jerr(lx, "data_offsets needs two integers");
            have_offs = 1;
        } else {
            int dup = !strcmp(k, "dtype") || !strcmp(k, "shape") || !strcmp(k, "data_offsets");
            free(k);
            return jerr(lx, dup ? "duplicate key in a tensor entry" : "unknown key in a tensor entry");
        }
        if (peek(lx, ',')) { lx->p++; continue; }
        if (expect(lx, '}') != 0) return -1;
        break;
    }
    if (!have_dtype || !have_shape || !have_offs)
        return agn_seterr("%s: bad safetensors header: tensor %s lacks %s", lx->path, t->name,
                          !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    /* offsets are validated against the data section by the caller; stash
     * them in nbytes/data for now */
    if (offs[1] < offs[0])
        return agn_seterr("%s: tensor %s: data_offsets [%llu, %llu] run backwards", lx->path, t->name,
                          (unsigned long long)offs[0], (unsigned long long)offs[1]);
    if (shape_bytes(t->ndim, t->shape, dtypes[t->dtype].size, &t->numel, &t->nbytes) != 0)
        return agn_seterr("%s: tensor %s: shape too large", lx->path, t->name);
    if (offs[1] - offs[0] != (uint64_t)t->nbytes)
        return agn_seterr("%s: tensor %s: data_offsets [%llu, %llu] span %llu bytes, its dtype and "
                          "shape need %zu", lx->path, t->name, (unsigned long long)offs[0],
                          (unsigned long long)offs[1], (unsigned long long)(offs[1] - offs[0]),
                          t->nbytes);
    t->data = (const unsigned char *)(uintptr_t)offs[0]; /* resolved once the header is done */
    return 0;
}

static int parse_header(agn_st_file *f, const unsigned char *json, size_t n)
{
    lexer lx = {json, json + n, json, f->path};
    if (expect(&lx, '{') != 0) return -1;
    if (!peek(&lx, '}')) {
        for (;;) {
            char *k;
            if (parse_string(&lx, &k) != 0) return -1;
            if (expect(&lx, ':') != 0) { free(k); return -1; }
            if (strcmp(k, "__metadata__") == 0) {
                free(k);
                if (parse_metadata(&lx, f) != 0) return -1;
            } else {
                if (!k[0]) { free(k); return jerr(&lx, "empty tensor name"); }
                if (parse_tensor(&lx, f, k) != 0) return -1;
            }
            if (peek(&lx, ',')) { lx.p++; continue; }
            break;
        }
    }
    if (expect(&lx, '}') != 0) return -1;
    skip_ws(&lx);
    if (lx.p != lx.end) return jerr(&lx, "trailing bytes after the JSON object");
    return 0;
}

/* ---- reader: checks ----------------------------------------------------------------------- */

static int cmp_begin(const void *a, const void *b)
{
    const agn_st_tensor *x = *(agn_st_tensor *const *)a, *y = *(agn_st_tensor *const *)b;
    uintptr_t bx = (uintptr_t)x->data, by = (uintptr_t)y->data;
    if (bx != by) return bx < by ? -1 : 1;
    /* equal begins: the empty tensor first, then by name (a total order) */
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int check_layout(agn_st_file *f, const unsigned char *data, size_t dlen)
{
    if (f->nt == 0) {
        if (dlen != 0) return agn_seterr("%s: %zu bytes of data but no tensors", f->path, dlen);
        return 0;
    }
    agn_st_tensor **order = agn_xmalloc((size_t)f->nt * sizeof *order);
    for (int i = 0; i < f->nt; i++) order[i] = &f->t[i];
    qsort(order, (size_t)f->nt, sizeof *order, cmp_begin);
    uint64_t at = 0;
    int rc = 0;
    for (int i = 0; i < f->nt; i++) {
        uint64_t b = (uintptr_t)order[i]->data;
        if (b != at) {
            rc = agn_seterr("%s: tensor %s starts at byte %llu of the data, expected %llu (%s)",
                            f->path, order[i]->name, (unsigned long long)b, (unsigned long long)at,
                            b < at ? "overlap" : "hole");
            break;
        }
        at += order[i]->nbytes;
        if (at > dlen) {
            rc = agn_seterr("%s: tensor %s ends at byte %llu, beyond the %zu bytes of data "
                            "(truncated file?)", f->path, order[i]->name, (unsigned long long)at,
                            dlen);
            break;
        }
    }
    if (rc == 0 && at != dlen)
        rc = agn_seterr("%s: the tensors cover %llu bytes of the %zu in the data section",
                        f->path, (unsigned long long)at, dlen);
    free(order);
    if (rc != 0) return -1;
    for (int i = 0; i < f->nt; i++) f->t[i].data = data + (uintptr_t)f->t[i].data;
    return 0;
}

static int check_crc(agn_st_file *f, const unsigned char *data, size_t dlen)
{
    const char *want = agn_st_meta(f, "data_crc");
    if (!want) return 0;
    f->has_crc = 1;
    unsigned long v = 0;
    if (strlen(want) != 8) return agn_seterr("%s: data_crc '%s' is not 8 hex digits", f->path, want);
    for (int i = 0; i < 8; i++) {
        char c = want[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return agn_seterr("%s: data_crc '%s' is not 8 hex digits", f->path, want);
        v = v << 4 | (unsigned long)d;
    }
    uint32_t got = crc_update((uint32_t)crc32(0L, Z_NULL, 0), data, dlen);
    if (got != (uint32_t)v)
        return agn_seterr("%s: CRC error: the data section has CRC-32 %08x, the header says %s "
                          "(corrupted file)", f->path, (unsigned)got, want);
    return 0;
}

static agn_st_file *open_image(unsigned char *image, size_t size, const char *path)
{
    agn_st_file *f = agn_xcalloc(1, sizeof *f);
    f->path = agn_xstrdup(path);
    f->image = image;
    f->size = size;
    if (size < 8) {
        agn_seterr("%s: not a safetensors file (%zu bytes, shorter than the 8-byte header length)",
                   path, size);
        goto fail;
    }
    uint64_t hlen = agn_get_u64(image);
    if (hlen < 2 || hlen > AGN_ST_MAX_HEADER) {
        agn_seterr("%s: not a safetensors file (header length %llu)", path, (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > size - 8) {
        agn_seterr("%s: header length %llu exceeds the %zu bytes after it (truncated or not a "
                   "safetensors file)", path, (unsigned long long)hlen, size - 8);
        goto fail;
    }
    if (image[8] != '{') {
        agn_seterr("%s: not a safetensors file (the header does not start with '{')", path);
        goto fail;
    }
    if (parse_header(f, image + 8, (size_t)hlen) != 0) goto fail;
    const unsigned char *data = image + 8 + hlen;
    size_t dlen = size - 8 - (size_t)hlen;
    if (check_layout(f, data, dlen) != 0) goto fail;
    if (check_crc(f, data, dlen) != 0) goto fail;
    return f;
fail:
    /* tensors whose data still holds an offset: nothing to free there */
    agn_st_close(f);
    return NULL;
}

agn_st_file *agn_st_open_mem(const void *b, size_t len, const char *name)
{
    unsigned char *image = agn_xmalloc(len ? len : 1);
    if (len) memcpy(image, b, len);
    return open_image(image, len, name);
}

agn_st_file *agn_st_open(const char *path)
{
    size_t n;
    char *image = strcmp(path, "-") == 0 ? agn_read_stream(stdin, path, &n) : agn_read_file(path, &n);
    if (!image) return NULL;
    return open_image((unsigned char *)image, n, path);
}

/* ---- reader: access -------------------------------------------------------------------------- */

int agn_st_count(const agn_st_file *f) { return f->nt; }

const agn_st_tensor *agn_st_tensor_at(const agn_st_file *f, int i)
{
    return i >= 0 && i < f->nt ? &f->t[i] : NULL;
}

const agn_st_tensor *agn_st_find(const agn_st_file *f, const char *name)
{
    int i = index_find(&f->tix, name);
    return i < 0 ? NULL : &f->t[i];
}

int agn_st_read_f32(const agn_st_file *f, const char *name, float *dst, int ndim,
                    const int64_t *shape)
{
    const agn_st_tensor *t = agn_st_find(f, name);
    if (!t) return agn_seterr("%s: tensor %s is missing", f->path, name);
    if (t->dtype != AGN_ST_F32)
        return agn_seterr("%s: tensor %s is %s, expected F32", f->path, name, dtypes[t->dtype].name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char got[160] = "", want[160] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "", (long long)t->shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "", (long long)shape[i]);
        return agn_seterr("%s: tensor %s has shape [%s], expected [%s]", f->path, name, got, want);
    }
    if (t->nbytes) memcpy(dst, t->data, t->nbytes);
    return 0;
}

const char *agn_st_meta(const agn_st_file *f, const char *key)
{
    int i = index_find(&f->mix, key);
    return i < 0 ? NULL : f->meta[i].val;
}

int agn_st_meta_count(const agn_st_file *f) { return f->nm; }

void agn_st_meta_at(const agn_st_file *f, int i, const char **key, const char **value)
{
    *key = i >= 0 && i < f->nm ? f->meta[i].key : NULL;
    *value = i >= 0 && i < f->nm ? f->meta[i].val : NULL;
}

int agn_st_has_crc(const agn_st_file *f) { return f->has_crc; }

const char *agn_st_path(const agn_st_file *f) { return f->path; }
