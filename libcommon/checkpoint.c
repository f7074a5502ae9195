/* checkpoint.c: the agn checkpoint (checkpoint.h) on the generic
 * safetensors reader and writer (safetensors.h).  The parameter table of the
 * model gives the tensor names and shapes; the metadata carries what a
 * checkpoint needs to stand alone (config, class names, vocabulary) and to
 * resume exactly (the training position). */
#include "config.h"
#include "checkpoint.h"

#include "safetensors.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "agn-checkpoint"
#define CKPT_VERSION "1"

struct agn_ckpt {
    agn_st_file *f;
    agn_ckpt_meta meta;
    int has_optim;
};

/* ---- helpers ------------------------------------------------------------------ */

/* Whether BUF[0..LEN) is valid UTF-8 without NUL (what safetensors metadata
 * must be). */
static int utf8_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) { i++; continue; }
        int n;
        unsigned min;
        if ((c & 0xe0) == 0xc0) { n = 1; min = 0x80; c &= 0x1f; }
        else if ((c & 0xf0) == 0xe0) { n = 2; min = 0x800; c &= 0x0f; }
        else if ((c & 0xf8) == 0xf0) { n = 3; min = 0x10000; c &= 0x07; }
        else return 0;
        if (i + (size_t)n >= len) return 0;
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            c = c << 6 | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        i += (size_t)n + 1;
    }
    return 1;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *s, size_t len)
{
    char *out = agn_xmalloc((len + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < len ? s[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static char *b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n % 4) return NULL;
    char *out = agn_xmalloc(n / 4 * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            const char *p = s[i + j] == '=' ? NULL : strchr(b64, s[i + j]);
            if (s[i + j] == '=' && i + 4 == n && j >= 2) { pad++; v <<= 6; continue; }
            if (!p || !s[i + j] || pad) { free(out); return NULL; }
            v = v << 6 | (uint32_t)(p - b64);
        }
        out[k++] = (char)(v >> 16);
        if (pad < 2) out[k++] = (char)(v >> 8);
        if (pad < 1) out[k++] = (char)v;
    }
    out[k] = '\0';
    *len = k;
    return out;
}

/* ---- writing --------------------------------------------------------------------- */

int agn_checkpoint_save(const char *path, const agn_model *m, const float *adam_m, const float *adam_v,
                        const agn_ckpt_meta *meta)
{
    agn_st_writer *w = agn_st_writer_new();
    char name[128], num[64];
    int rc = 0;
    for (int pass = 0; pass < 3 && rc == 0; pass++) {
        const float *base = pass == 0 ? m->params : pass == 1 ? adam_m : adam_v;
        if (!base) continue;
        for (int i = 0; i < m->n_tensors && rc == 0; i++) {
            const agn_tensor *t = &m->tensors[i];
            int64_t shape[2] = {t->shape[0], t->shape[1]};
            snprintf(name, sizeof name, "%s%s", pass == 0 ? "" : pass == 1 ? "optim.m." : "optim.v.", t->name);
            rc = agn_st_add_f32(w, name, base + t->offset, t->ndim, shape);
        }
    }
    if (rc == 0) rc = agn_st_add_meta(w, "format", CKPT_FORMAT);
    if (rc == 0) rc = agn_st_add_meta(w, "version", CKPT_VERSION);
    if (rc == 0 && meta->config_yaml) rc = agn_st_add_meta(w, "config", meta->config_yaml);
    if (rc == 0 && meta->n_classes > 0) {
        size_t n = 1;
        for (int c = 0; c < meta->n_classes; c++) n += strlen(meta->class_names[c]) + 1;
        char *s = agn_xmalloc(n), *p = s;
        for (int c = 0; c < meta->n_classes; c++) p += sprintf(p, "%s\n", meta->class_names[c]);
        rc = agn_st_add_meta(w, "class_names", s);
        free(s);
    }
    if (rc == 0 && meta->vocab_text) {
        if (utf8_ok((const unsigned char *)meta->vocab_text, meta->vocab_len)) {
            char *s = agn_xmalloc(meta->vocab_len + 1);
            memcpy(s, meta->vocab_text, meta->vocab_len);
            s[meta->vocab_len] = '\0';
            rc = agn_st_add_meta(w, "vocab", s);
            free(s);
        } else {
            char *s = b64_encode((const unsigned char *)meta->vocab_text, meta->vocab_len);
            rc = agn_st_add_meta(w, "vocab_base64", s);
            free(s);
        }
    }
    snprintf(num, sizeof num, "%08" PRIx32, meta->vocab_crc);
    if (rc == 0) rc = agn_st_add_meta(w, "vocab_crc", num);
    if (rc == 0 && meta->has_pos) {
        const agn_train_pos *p = &meta->pos;
        struct { const char *k; uint64_t v; } u[] = {
            {"epoch", p->epoch}, {"step", p->step}, {"cursor", p->cursor}, {"seed", p->seed},
            {"total_steps", p->total_steps}, {"epoch_examples", p->epoch_examples},
            {"world_size", (uint64_t)p->world_size},
        };
        for (size_t i = 0; i < AGN_ARRAY_LEN(u) && rc == 0; i++) {
            snprintf(num, sizeof num, "%" PRIu64, u[i].v);
            rc = agn_st_add_meta(w, u[i].k, num);
        }
        snprintf(num, sizeof num, "%08" PRIx32, p->data_id);
        if (rc == 0) rc = agn_st_add_meta(w, "data_id", num);
        snprintf(num, sizeof num, "%.17g", p->best_val_acc);
        if (rc == 0) rc = agn_st_add_meta(w, "best_val_acc", num);
    }
    if (rc == 0) rc = agn_st_write(w, path);
    agn_st_writer_free(w);
    return rc;
}

/* ---- reading --------------------------------------------------------------------- */

static int meta_u64(const agn_st_file *f, const char *key, uint64_t *out)
{
    const char *s = agn_st_meta(f, key);
    if (!s) return agn_seterr("%s: metadata lacks '%s'", agn_st_path(f), key);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] == '-')
        return agn_seterr("%s: metadata '%s' is not a count: '%s'", agn_st_path(f), key, s);
    *out = v;
    return 0;
}

static int meta_hex32(const agn_st_file *f, const char *key, uint32_t *out)
{
    const char *s = agn_st_meta(f, key);
    if (!s) return agn_seterr("%s: metadata lacks '%s'", agn_st_path(f), key);
    /* exactly 8 hex digits: strtoul alone also takes a sign, spaces and 0x */
    if (strlen(s) != 8 || strspn(s, "0123456789abcdefABCDEF") != 8)
        return agn_seterr("%s: metadata '%s' is not 8 hex digits: '%s'", agn_st_path(f), key, s);
    unsigned long v = strtoul(s, NULL, 16);
    *out = (uint32_t)v;
    return 0;
}

agn_ckpt *agn_checkpoint_load(const char *path)
{
    agn_st_file *f = agn_st_open(path);
    if (!f) return NULL;
    agn_ckpt *ck = agn_xcalloc(1, sizeof *ck);
    ck->f = f;
    agn_ckpt_meta *m = &ck->meta;
    const char *fmt = agn_st_meta(f, "format");
    int rc = 0;
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
        rc = agn_seterr("%s: a safetensors file, but not an agn checkpoint (no format \"%s\" in its metadata)", path,
                        CKPT_FORMAT);
    const char *ver = agn_st_meta(f, "version");
    if (rc == 0 && (!ver || strcmp(ver, CKPT_VERSION) != 0))
        rc = agn_seterr("%s: checkpoint version %s, this agn reads version %s", path, ver ? ver : "(none)",
                        CKPT_VERSION);
    if (rc == 0 && !agn_st_has_crc(f))
        rc = agn_seterr("%s: the checkpoint carries no data_crc; it was not written by agn or was edited", path);
    const char *cfg = agn_st_meta(f, "config");
    if (rc == 0 && !cfg) rc = agn_seterr("%s: metadata lacks 'config'", path);
    if (rc == 0) m->config_yaml = agn_xstrdup(cfg);
    const char *cn = agn_st_meta(f, "class_names");
    /* each name ends in a newline, the last too: a value cut short would
     * lose its last name without a word */
    if (rc == 0 && cn && *cn && cn[strlen(cn) - 1] != '\n')
        rc = agn_seterr("%s: metadata 'class_names' does not end in a newline (cut short?)", path);
    if (rc == 0 && cn) {
        int n = 0;
        for (const char *p = cn; *p; p++) n += *p == '\n';
        m->class_names = agn_xcalloc((size_t)n + 1, sizeof *m->class_names);
        const char *p = cn;
        for (int i = 0; i < n; i++) {
            const char *e = strchr(p, '\n');
            m->class_names[i] = agn_xmalloc((size_t)(e - p) + 1);
            memcpy(m->class_names[i], p, (size_t)(e - p));
            m->class_names[i][e - p] = '\0';
            p = e + 1;
        }
        m->n_classes = n;
    }
    const char *voc = agn_st_meta(f, "vocab"), *voc64 = agn_st_meta(f, "vocab_base64");
    if (rc == 0 && voc) {
        m->vocab_len = strlen(voc);
        m->vocab_text = agn_xstrdup(voc);
    } else if (rc == 0 && voc64) {
        m->vocab_text = b64_decode(voc64, &m->vocab_len);
        if (!m->vocab_text) rc = agn_seterr("%s: metadata 'vocab_base64' is not base64", path);
    }
    if (rc == 0) rc = meta_hex32(f, "vocab_crc", &m->vocab_crc);
    if (rc == 0 && agn_st_meta(f, "step")) {
        agn_train_pos *p = &m->pos;
        uint64_t epoch = 0, ws = 0;
        rc = meta_u64(f, "epoch", &epoch);
        if (rc == 0) rc = meta_u64(f, "step", &p->step);
        if (rc == 0) rc = meta_u64(f, "cursor", &p->cursor);
        if (rc == 0) rc = meta_u64(f, "seed", &p->seed);
        if (rc == 0) rc = meta_u64(f, "total_steps", &p->total_steps);
        if (rc == 0) rc = meta_u64(f, "epoch_examples", &p->epoch_examples);
        if (rc == 0) rc = meta_u64(f, "world_size", &ws);
        if (rc == 0) rc = meta_hex32(f, "data_id", &p->data_id);
        const char *bv = agn_st_meta(f, "best_val_acc");
        char *end = NULL;
        if (rc == 0 && bv) p->best_val_acc = strtod(bv, &end);
        if (rc == 0 && (!bv || end == bv || *end))
            rc = agn_seterr("%s: metadata 'best_val_acc' is missing or not a number", path);
        if (rc == 0 && (epoch > UINT32_MAX || ws > 1000000))
            rc = agn_seterr("%s: metadata 'epoch' or 'world_size' out of range", path);
        p->epoch = (uint32_t)epoch;
        p->world_size = (int)ws;
        m->has_pos = rc == 0;
    }
    ck->has_optim = agn_st_find(f, "optim.m.tok_emb") && agn_st_find(f, "optim.v.tok_emb");
    if (rc != 0) {
        agn_checkpoint_free(ck);
        return NULL;
    }
    return ck;
}

void agn_ckpt_meta_free(agn_ckpt_meta *m)
{
    free(m->config_yaml);
    for (int i = 0; i < m->n_classes; i++) free(m->class_names[i]);
    free(m->class_names);
    free(m->vocab_text);
    memset(m, 0, sizeof *m);
}

void agn_checkpoint_free(agn_ckpt *ck)
{
    if (!ck) return;
    agn_ckpt_meta_free(&ck->meta);
    agn_st_close(ck->f);
    free(ck);
}

const agn_ckpt_meta *agn_checkpoint_meta(const agn_ckpt *ck) { return &ck->meta; }
int agn_checkpoint_has_optim(const agn_ckpt *ck) { return ck->has_optim; }

int agn_checkpoint_restore(const agn_ckpt *ck, agn_model *m, float *adam_m, float *adam_v)
{
    char name[128];
    if ((adam_m || adam_v) && !ck->has_optim)
        return agn_seterr("%s: holds no optimizer state (optim.m.*, optim.v.*)", agn_st_path(ck->f));
    for (int pass = 0; pass < 3; pass++) {
        float *base = pass == 0 ? m->params : pass == 1 ? adam_m : adam_v;
        if (!base) continue;
        for (int i = 0; i < m->n_tensors; i++) {
            const agn_tensor *t = &m->tensors[i];
            int64_t shape[2] = {t->shape[0], t->shape[1]};
            snprintf(name, sizeof name, "%s%s", pass == 0 ? "" : pass == 1 ? "optim.m." : "optim.v.", t->name);
            if (agn_st_read_f32(ck->f, name, base + t->offset, t->ndim, shape) != 0) return -1;
        }
    }
    return 0;
}
