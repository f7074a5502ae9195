/* shard.c: writing and reading .agns shards (layout in shard.h and
 * agn-formats(5)).  The writer buffers one shard in its stored form and
 * streams it through zlib when asked; the reader checks every size against
 * the file length, both CRCs and the structure of the payload before it
 * hands a single example to the caller.  The host is little-endian
 * (configure refuses others), so arrays are written and read as they are. */
#include "config.h"
#include "shard.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

typedef unsigned long long ull;

/* zlib never expands data by more than this factor when inflating (its
 * documented maximum is 1032:1); a header claiming more is rejected before
 * anything is allocated. */
#define ZLIB_MAX_RATIO 1032u

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* Raw payload size from the counts; -1 on overflow. */
static int raw_size(uint64_t n, uint64_t n_tokens, unsigned width, uint64_t *out,
                    uint64_t *off_bytes, uint64_t *lab_bytes)
{
    uint64_t a, b, c, s;
    if (n > UINT64_MAX - 8) return -1;
    if (__builtin_mul_overflow(n + 1, (uint64_t)8, &a)) return -1;
    b = pad8(n);
    if (__builtin_mul_overflow(n_tokens, (uint64_t)width, &c)) return -1;
    if (__builtin_add_overflow(a, b, &s) || __builtin_add_overflow(s, c, &s)) return -1;
    *out = s;
    if (off_bytes) *off_bytes = a;
    if (lab_bytes) *lab_bytes = b;
    return 0;
}

/* ---- writing ------------------------------------------------------------- */

void agn_shard_writer_init(agn_shard_writer *w, uint32_t vocab_size, uint32_t max_len,
                           uint32_t n_classes, uint32_t vocab_crc, int zlevel)
{
    memset(w, 0, sizeof *w);
    w->vocab_size = vocab_size;
    w->max_len = max_len;
    w->n_classes = n_classes;
    w->vocab_crc = vocab_crc;
    w->zlevel = zlevel;
    w->wide = vocab_size > 65536;
    w->cap_ex = 1024;
    w->offsets = agn_xmalloc((w->cap_ex + 1) * sizeof *w->offsets);
    w->labels = agn_xmalloc(w->cap_ex);
    w->cap_tok = 16384;
    w->tokens = agn_xmalloc(w->cap_tok * (w->wide ? 4 : 2));
    w->offsets[0] = 0;
}

void agn_shard_writer_free(agn_shard_writer *w)
{
    free(w->offsets);
    free(w->labels);
    free(w->tokens);
    memset(w, 0, sizeof *w);
}

int agn_shard_writer_add(agn_shard_writer *w, int label, const int32_t *ids, size_t n)
{
    if (n == 0 || n > w->max_len)
        return agn_seterr("example of %zu tokens (must be 1..%u)", n, w->max_len);
    if (label != AGN_LABEL_UNKNOWN && (label < 0 || (uint32_t)label >= w->n_classes))
        return agn_seterr("label %d is not a class 0..%u", label, w->n_classes - 1);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= w->vocab_size)
            return agn_seterr("token id %d outside the vocabulary of %u", (int)ids[i],
                              w->vocab_size);
    if (w->n == w->cap_ex) {
        w->cap_ex *= 2;
        w->offsets = agn_xrealloc(w->offsets, (w->cap_ex + 1) * sizeof *w->offsets);
        w->labels = agn_xrealloc(w->labels, w->cap_ex);
    }
    if (w->n_tokens + n > w->cap_tok) {
        while (w->n_tokens + n > w->cap_tok) w->cap_tok *= 2;
        w->tokens = agn_xrealloc(w->tokens, w->cap_tok * (w->wide ? 4 : 2));
    }
    if (w->wide) {
        uint32_t *t = (uint32_t *)w->tokens + w->n_tokens;
        for (size_t i = 0; i < n; i++) t[i] = (uint32_t)ids[i];
    } else {
        uint16_t *t = (uint16_t *)w->tokens + w->n_tokens;
        for (size_t i = 0; i < n; i++) t[i] = (uint16_t)ids[i];
    }
    w->labels[w->n] = (uint8_t)label;
    w->n_tokens += n;
    w->n++;
    w->offsets[w->n] = w->n_tokens;
    return 0;
}

/* The payload goes out through this: raw, or deflated; either way the CRC
 * and the count are of the bytes as stored. */
typedef struct {
    FILE *fp;
    const char *path;
    z_stream zs;
    int deflating;
    uLong crc;
    uint64_t stored;
    unsigned char out[1 << 16];
} payload_sink;

static int sink_put(payload_sink *k, const void *buf, size_t n, int finish)
{
    if (!k->deflating) {
        if (n && fwrite(buf, 1, n, k->fp) != n) return agn_seterr_errno("%s", k->path);
        for (size_t done = 0; done < n;) {
            size_t c = n - done > (1u << 30) ? (1u << 30) : n - done;
            k->crc = crc32(k->crc, (const Bytef *)buf + done, (uInt)c);
            done += c;
        }
        k->stored += n;
        return 0;
    }
    const unsigned char *p = buf;
    size_t left = n;
    for (;;) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        k->zs.next_in = (Bytef *)p;
        k->zs.avail_in = chunk;
        int flush = (finish && chunk == left) ? Z_FINISH : Z_NO_FLUSH;
        int rc;
        do {
            k->zs.next_out = k->out;
            k->zs.avail_out = sizeof k->out;
            rc = deflate(&k->zs, flush);
            if (rc == Z_STREAM_ERROR) return agn_seterr("%s: zlib deflate failed", k->path);
            size_t have = sizeof k->out - k->zs.avail_out;
            if (have && fwrite(k->out, 1, have, k->fp) != have)
                return agn_seterr_errno("%s", k->path);
            k->crc = crc32(k->crc, k->out, (uInt)have);
            k->stored += have;
        } while (k->zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
        p += chunk;
        left -= chunk;
        if (left == 0) return 0;
    }
}

/* Writes the buffered examples as a shard into the open output O (named
 * PATH in messages), and finishes O (flushed, fsync'd, closed, not yet
 * renamed); *HCRC gets the header CRC.  O is aborted on failure. */
static int shard_write(agn_shard_writer *w, agn_out *o, const char *path, uint32_t *hcrc)
{
    unsigned char hdr[AGN_SHARD_HEADER_SIZE] = {0};
    payload_sink *k = agn_xcalloc(1, sizeof *k);
    k->fp = o->fp;
    k->path = path;
    k->crc = crc32(0L, Z_NULL, 0);
    if (fwrite(hdr, 1, sizeof hdr, o->fp) != sizeof hdr) {
        agn_seterr_errno("%s", path);
        goto fail;
    }
    if (w->zlevel > 0) {
        if (deflateInit(&k->zs, w->zlevel) != Z_OK) {
            agn_seterr("%s: zlib deflateInit failed", path);
            goto fail;
        }
        k->deflating = 1;
    }
    static const unsigned char zeros[8] = {0};
    unsigned width = w->wide ? 4 : 2;
    if (sink_put(k, w->offsets, (w->n + 1) * sizeof(uint64_t), 0) != 0 ||
        sink_put(k, w->labels, w->n, 0) != 0 ||
        sink_put(k, zeros, pad8(w->n) - w->n, 0) != 0 ||
        sink_put(k, w->tokens, w->n_tokens * width, 1) != 0)
        goto fail;
    if (k->deflating) {
        deflateEnd(&k->zs);
        k->deflating = 0;
    }

    memcpy(hdr, AGN_SHARD_MAGIC, 8);
    agn_put_u32(hdr + 8, AGN_SHARD_VERSION);
    agn_put_u32(hdr + 12, (w->wide ? AGN_SHARD_FLAG_U32 : 0) |
                              (w->zlevel > 0 ? AGN_SHARD_FLAG_ZLIB : 0));
    agn_put_u64(hdr + 16, w->n);
    agn_put_u64(hdr + 24, w->n_tokens);
    agn_put_u32(hdr + 32, w->vocab_size);
    agn_put_u32(hdr + 36, w->max_len);
    agn_put_u32(hdr + 40, w->n_classes);
    agn_put_u32(hdr + 44, w->vocab_crc);
    agn_put_u64(hdr + 48, k->stored);
    agn_put_u32(hdr + 56, (uint32_t)k->crc);
    *hcrc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), hdr, 60);
    agn_put_u32(hdr + 60, *hcrc);
    if (fseek(o->fp, 0, SEEK_SET) != 0 || fwrite(hdr, 1, sizeof hdr, o->fp) != sizeof hdr) {
        agn_seterr_errno("%s", path);
        goto fail;
    }
    free(k);
    if (agn_out_finish(o) != 0) {
        agn_out_abort(o);
        return -1;
    }
    w->n = w->n_tokens = 0;
    w->offsets[0] = 0;
    return 0;
fail:
    if (k->deflating) deflateEnd(&k->zs);
    free(k);
    agn_out_abort(o);
    return -1;
}

int agn_shard_writer_flush(agn_shard_writer *w, const char *path)
{
    agn_out o;
    uint32_t hcrc;
    if (agn_out_open_mode(&o, path, 1) != 0) return -1;
    if (shard_write(w, &o, path, &hcrc) != 0) return -1;
    return agn_out_publish(&o);
}

/* ---- shard sets ------------------------------------------------------------ */

static char *set_member_name(const char *prefix, unsigned long k)
{
    size_t n = strlen(prefix) + 32;
    char *s = agn_xmalloc(n);
    snprintf(s, n, "%s-%05lu.agns", prefix, k);
    return s;
}

static char *set_manifest_name(const char *prefix)
{
    size_t n = strlen(prefix) + sizeof AGN_SHARDSET_SUFFIX;
    char *s = agn_xmalloc(n);
    snprintf(s, n, "%s%s", prefix, AGN_SHARDSET_SUFFIX);
    return s;
}

void agn_shardset_begin(agn_shardset *s, const char *prefix)
{
    memset(s, 0, sizeof *s);
    s->prefix = agn_xstrdup(prefix);
    /* temporaries of writers killed before they could remove them: the
     * manifest's and those of the first shards (a dead writer's staged
     * shards all carry its pid; scanning every possible name is not needed,
     * as each of them is looked for below when its shard is written) */
    char *m = set_manifest_name(prefix);
    agn_remove_stale_tmp(m);
    free(m);
}

int agn_shardset_add(agn_shardset *s, agn_shard_writer *w)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->e = agn_xrealloc(s->e, s->cap * sizeof *s->e);
    }
    struct agn_shardset_entry *e = &s->e[s->n];
    memset(e, 0, sizeof *e);
    e->name = set_member_name(s->prefix, (unsigned long)s->n);
    agn_remove_stale_tmp(e->name);
    agn_out *o = agn_xmalloc(sizeof *o);
    e->n_examples = w->n;
    if (agn_out_open_mode(o, e->name, 1) != 0 || shard_write(w, o, e->name, &e->header_crc) != 0) {
        free(o);
        free(e->name);
        return -1;
    }
    e->out = o;
    s->n++;
    return 0;
}

static void shardset_free(agn_shardset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->e[i].out) {
            agn_out_abort(s->e[i].out);
            free(s->e[i].out);
        }
        free(s->e[i].name);
    }
    free(s->e);
    free(s->prefix);
    memset(s, 0, sizeof *s);
}

void agn_shardset_abort(agn_shardset *s) { shardset_free(s); }

int agn_shardset_commit(agn_shardset *s, unsigned long *stale)
{
    *stale = 0;
    char *mpath = set_manifest_name(s->prefix);
    agn_out m;
    if (agn_out_open(&m, mpath) != 0) goto fail;
    fprintf(m.fp, "agn-shardset 1\ncount %zu\n", s->n);
    for (size_t i = 0; i < s->n; i++) {
        const char *base = strrchr(s->e[i].name, '/');
        fprintf(m.fp, "shard %s %llu %08x\n", base ? base + 1 : s->e[i].name,
                (ull)s->e[i].n_examples, s->e[i].header_crc);
    }
    fputs("end\n", m.fp);
    if (ferror(m.fp)) {
        agn_seterr_errno("%s", mpath);
        agn_out_abort(&m);
        goto fail;
    }
    /* From the manifest's rename on, the new set is the set; a SIGINT or
     * SIGTERM waits until its shards are in place. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if (agn_out_commit(&m) != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        goto fail;
    }
    int rc = 0;
    char first[512] = "";
    for (size_t i = 0; i < s->n; i++) {
        agn_out *o = s->e[i].out;
        s->e[i].out = NULL;
        if (agn_out_publish(o) != 0 && rc == 0) {
            rc = -1;
            snprintf(first, sizeof first, "%s", agn_errmsg());
        }
        free(o);
    }
    /* shards of an earlier, longer set would be picked up by PREFIX-*.agns */
    for (unsigned long k = (unsigned long)s->n;; k++) {
        char name[PATH_MAX]; /* no allocation between the commit and the last rename */
        snprintf(name, sizeof name, "%s-%05lu.agns", s->prefix, k);
        if (unlink(name) != 0) break;
        (*stale)++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        agn_seterr("%s; the set %s is committed but incomplete on disk, and readers refuse it: "
                   "run agn-shard again", first, mpath);
    free(mpath);
    shardset_free(s);
    return rc ? -2 : 0;
fail:
    free(mpath);
    shardset_free(s);
    return -1;
}

char *agn_shardset_manifest_of(const char *path)
{
    size_t n = strlen(path);
    const char *suffix = ".agns";
    if (n < 5 || strcmp(path + n - 5, suffix) != 0) return NULL;
    size_t d = 0;
    while (d < n - 5 && path[n - 6 - d] >= '0' && path[n - 6 - d] <= '9') d++;
    if (d < 5 || d == n - 5 || path[n - 6 - d] != '-') return NULL;
    size_t plen = n - 6 - d;
    if (plen == 0 || path[plen - 1] == '/') return NULL;
    char *m = agn_xmalloc(plen + sizeof AGN_SHARDSET_SUFFIX);
    memcpy(m, path, plen);
    memcpy(m + plen, AGN_SHARDSET_SUFFIX, sizeof AGN_SHARDSET_SUFFIX);
    return m;
}

/* The manifest last checked, kept while it does not change on disk, so that
 * loading a set of many shards reads and verifies it once. */
typedef struct {
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    size_t n;
    char **names;   /* basenames */
    uint32_t *crcs;
} manifest;
static manifest cached;
static pthread_mutex_t cached_lock = PTHREAD_MUTEX_INITIALIZER;

static void manifest_free(manifest *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->names[i]);
    free(m->names);
    free(m->crcs);
    free(m->path);
    memset(m, 0, sizeof *m);
}

/* Parses the manifest at MPATH into M, then checks every shard it lists:
 * present under its name, with the header CRC it lists. */
static int manifest_load(manifest *m, const char *mpath, const struct stat *st)
{
    memset(m, 0, sizeof *m);
    size_t len;
    char *text = agn_read_file(mpath, &len);
    if (!text) return -1;
    unsigned long line = 0, count = 0;
    int ended = 0, rc = 0;
    char *save = NULL;
    size_t cap = 0;
    if (memchr(text, '\0', len)) {
        rc = agn_seterr("%s: not a shard set manifest (NUL bytes)", mpath);
        goto out;
    }
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char name[4096];
        unsigned long long ex;
        unsigned crc;
        int used = 0;
        if (ended) {
            rc = agn_seterr("%s:%lu: text after \"end\"", mpath, line);
            goto out;
        }
        if (line == 1) {
            if (strcmp(l, "agn-shardset 1") != 0) {
                rc = agn_seterr("%s:1: not a shard set manifest of version 1", mpath);
                goto out;
            }
        } else if (line == 2) {
            if (sscanf(l, "count %lu%n", &count, &used) != 1 || l[used] || count > (1ul << 32)) {
                rc = agn_seterr("%s:2: expected \"count N\"", mpath);
                goto out;
            }
        } else if (strcmp(l, "end") == 0) {
            ended = 1;
        } else if (sscanf(l, "shard %4095s %llu %8x%n", name, &ex, &crc, &used) == 3 && !l[used] &&
                   !strchr(name, '/')) {
            if (m->n == cap) {
                cap = cap ? 2 * cap : 16;
                m->names = agn_xrealloc(m->names, cap * sizeof *m->names);
                m->crcs = agn_xrealloc(m->crcs, cap * sizeof *m->crcs);
            }
            m->names[m->n] = agn_xstrdup(name);
            m->crcs[m->n++] = crc;
        } else {
            rc = agn_seterr("%s:%lu: expected \"shard NAME EXAMPLES CRC\" or \"end\"", mpath, line);
            goto out;
        }
    }
    if (!ended || m->n != count) {
        rc = agn_seterr("%s: truncated manifest (%zu of %lu shards listed%s)", mpath, m->n, count,
                        ended ? "" : ", no \"end\"");
        goto out;
    }
    /* the shards on disk */
    char *dir = agn_xstrdup(mpath);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = '\0';
    else dir[0] = '\0';
    size_t present = 0;
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        size_t n = strlen(dir) + strlen(m->names[i]) + 1;
        char *p = agn_xmalloc(n);
        snprintf(p, n, "%s%s", dir, m->names[i]);
        unsigned char h[AGN_SHARD_HEADER_SIZE];
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd < 0 ? -1 : pread(fd, h, sizeof h, 0);
        if (fd >= 0) close(fd);
        if (fd < 0) {
            if (errno == ENOENT) {
                for (size_t j = i; j < m->n; j++) {
                    snprintf(p, n, "%s%s", dir, m->names[j]);
                    present += access(p, F_OK) == 0;
                }
                rc = agn_seterr("%s: incomplete shard set: %s%s is missing (%zu of %zu shards "
                                "present); run agn-shard again", mpath, dir, m->names[i], present,
                                m->n);
            } else {
                rc = agn_seterr_errno("%s", p);
            }
        } else if (got != (ssize_t)sizeof h || agn_get_u32(h + 60) != m->crcs[i]) {
            rc = agn_seterr("%s: mixed shard set: %s is not the shard the manifest lists (from "
                            "another agn-shard run, one that was interrupted?); run agn-shard "
                            "again", mpath, p);
        }
        present++;
        free(p);
    }
    free(dir);
    if (rc == 0) {
        m->path = agn_xstrdup(mpath);
        m->dev = st->st_dev;
        m->ino = st->st_ino;
        m->size = st->st_size;
        m->mtime = st->st_mtim;
    }
out:
    free(text);
    if (rc != 0) manifest_free(m);
    return rc;
}

/* Checks the shard PATH, whose header CRC is HCRC, against its set. */
static int shardset_check(const char *path, uint32_t hcrc)
{
    char *mpath = agn_shardset_manifest_of(path);
    if (!mpath) return 0;
    struct stat st;
    if (stat(mpath, &st) != 0) {
        int e = errno;
        free(mpath);
        if (e == ENOENT) return 0; /* a shard of its own, or of an older agn */
        errno = e;
        return agn_seterr_errno("%s", path);
    }
    pthread_mutex_lock(&cached_lock);
    int rc = 0;
    if (!cached.path || strcmp(cached.path, mpath) != 0 || cached.dev != st.st_dev ||
        cached.ino != st.st_ino || cached.size != st.st_size ||
        cached.mtime.tv_sec != st.st_mtim.tv_sec || cached.mtime.tv_nsec != st.st_mtim.tv_nsec) {
        manifest_free(&cached);
        rc = manifest_load(&cached, mpath, &st);
    }
    if (rc == 0) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t i = 0;
        while (i < cached.n && strcmp(cached.names[i], base) != 0) i++;
        if (i == cached.n)
            rc = agn_seterr("%s: not a shard of the set %s (%zu shards): left over from another "
                            "agn-shard run; run agn-shard again, or remove it", path, mpath,
                            cached.n);
        else if (cached.crcs[i] != hcrc)
            rc = agn_seterr("%s: mixed shard set: not the shard %s lists; run agn-shard again",
                            path, mpath);
    }
    pthread_mutex_unlock(&cached_lock);
    free(mpath);
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

void agn_dataset_free(agn_dataset *d)
{
    free(d->offsets);
    free(d->labels);
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

static int read_file(const char *path, unsigned char **buf, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return agn_seterr_errno("%s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        agn_seterr_errno("%s", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return agn_seterr("%s: not a regular file", path);
    }
    uint64_t n = (uint64_t)st.st_size;
    unsigned char *b = agn_xmalloc(n ? n : 1);
    uint64_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got > (1u << 30) ? (1u << 30) : n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            agn_seterr_errno("%s", path);
            free(b);
            close(fd);
            return -1;
        }
        if (r == 0) break; /* shrank while reading: checked below as truncation */
        got += (uint64_t)r;
    }
    close(fd);
    *buf = b;
    *size = got;
    return 0;
}

static int inflate_exact(const char *path, const unsigned char *in, uint64_t in_len,
                         unsigned char *out, uint64_t out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) return agn_seterr("%s: zlib inflateInit failed", path);
    uint64_t in_left = in_len, out_left = out_len;
    int rc = Z_OK;
    zs.next_in = (Bytef *)in;
    zs.next_out = out;
    while (rc == Z_OK) {
        if (zs.avail_in == 0 && in_left) {
            zs.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left) {
            zs.avail_out = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            out_left -= zs.avail_out;
        }
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR && (zs.avail_in || in_left) && zs.avail_out == 0 && !out_left) {
            inflateEnd(&zs);
            return agn_seterr("%s: compressed payload inflates to more than the %llu bytes "
                              "the header implies", path, (ull)out_len);
        }
    }
    uint64_t produced = out_len - out_left - zs.avail_out;
    uint64_t consumed = in_len - in_left - zs.avail_in;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        if (rc == Z_BUF_ERROR)
            return agn_seterr("%s: compressed payload ends early (%llu of %llu bytes inflated)",
                              path, (ull)produced, (ull)out_len);
        return agn_seterr("%s: corrupt compressed payload (zlib: %s)", path,
                          zs.msg ? zs.msg : "error");
    }
    if (produced != out_len)
        return agn_seterr("%s: compressed payload inflates to %llu bytes, the header implies %llu",
                          path, (ull)produced, (ull)out_len);
    if (consumed != in_len)
        return agn_seterr("%s: %llu bytes after the end of the compressed payload", path,
                          (ull)(in_len - consumed));
    return 0;
}

int agn_shard_read_ex(agn_dataset *d, agn_shard_header *hp, const char *path)
{
    memset(d, 0, sizeof *d);
    unsigned char *file = NULL, *raw = NULL;
    uint64_t size = 0;
    if (read_file(path, &file, &size) != 0) return -1;
    const unsigned char *h = file;
    agn_shard_header H;
    if (size < AGN_SHARD_HEADER_SIZE) {
        agn_seterr("%s: truncated: the file ends inside the header (%llu of %d bytes)", path,
                   (ull)size, AGN_SHARD_HEADER_SIZE);
        goto fail;
    }
    if (memcmp(h, AGN_SHARD_MAGIC, 8) != 0) {
        agn_seterr("%s: bad magic (not an agn shard)", path);
        goto fail;
    }
    H.version = agn_get_u32(h + 8);
    H.flags = agn_get_u32(h + 12);
    H.n_examples = agn_get_u64(h + 16);
    H.n_tokens = agn_get_u64(h + 24);
    H.vocab_size = agn_get_u32(h + 32);
    H.max_len = agn_get_u32(h + 36);
    H.n_classes = agn_get_u32(h + 40);
    H.vocab_crc = agn_get_u32(h + 44);
    H.payload_bytes = agn_get_u64(h + 48);
    H.payload_crc = agn_get_u32(h + 56);
    H.header_crc = agn_get_u32(h + 60);
    if (H.version != AGN_SHARD_VERSION) {
        agn_seterr("%s: format version %u, this program reads version %d", path, H.version,
                   AGN_SHARD_VERSION);
        goto fail;
    }
    uint32_t hcrc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 60);
    if (hcrc != H.header_crc) {
        agn_seterr("%s: header CRC mismatch (stored %08x, computed %08x): the header is damaged",
                   path, H.header_crc, hcrc);
        goto fail;
    }
    if (H.flags & ~(AGN_SHARD_FLAG_U32 | AGN_SHARD_FLAG_ZLIB)) {
        agn_seterr("%s: unknown flags 0x%x", path, H.flags);
        goto fail;
    }
    if (H.vocab_size < 2 || H.max_len < 1 || H.n_classes < 1 || H.n_classes > 255) {
        agn_seterr("%s: bad header: vocab_size %u, max_len %u, n_classes %u", path, H.vocab_size,
                   H.max_len, H.n_classes);
        goto fail;
    }
    if (!(H.flags & AGN_SHARD_FLAG_U32) && H.vocab_size > 65536) {
        agn_seterr("%s: bad header: u16 token ids with a vocabulary of %u", path, H.vocab_size);
        goto fail;
    }
    unsigned width = (H.flags & AGN_SHARD_FLAG_U32) ? 4 : 2;
    int zipped = (H.flags & AGN_SHARD_FLAG_ZLIB) != 0;
    uint64_t raw_len, off_bytes, lab_bytes;
    if (raw_size(H.n_examples, H.n_tokens, width, &raw_len, &off_bytes, &lab_bytes) != 0) {
        agn_seterr("%s: bad header: %llu examples and %llu tokens overflow the payload size",
                   path, (ull)H.n_examples, (ull)H.n_tokens);
        goto fail;
    }
    uint64_t have = size - AGN_SHARD_HEADER_SIZE;
    if (have < H.payload_bytes) {
        const char *region = "compressed payload";
        if (!zipped && H.payload_bytes == raw_len)
            region = have < off_bytes ? "offsets" : have < off_bytes + lab_bytes ? "labels"
                                                                                  : "tokens";
        agn_seterr("%s: truncated: the file ends inside the %s region (payload %llu of %llu "
                   "bytes)", path, region, (ull)have, (ull)H.payload_bytes);
        goto fail;
    }
    if (have > H.payload_bytes) {
        agn_seterr("%s: %llu bytes of trailing data after the payload", path,
                   (ull)(have - H.payload_bytes));
        goto fail;
    }
    if (!zipped && raw_len != H.payload_bytes) {
        agn_seterr("%s: bad header: %llu examples and %llu tokens need %llu payload bytes, the "
                   "file holds %llu", path, (ull)H.n_examples, (ull)H.n_tokens, (ull)raw_len,
                   (ull)H.payload_bytes);
        goto fail;
    }
    if (zipped && (raw_len / ZLIB_MAX_RATIO > H.payload_bytes)) {
        agn_seterr("%s: bad header: %llu examples and %llu tokens cannot fit in %llu compressed "
                   "bytes", path, (ull)H.n_examples, (ull)H.n_tokens, (ull)H.payload_bytes);
        goto fail;
    }
    const unsigned char *pl = file + AGN_SHARD_HEADER_SIZE;
    uint32_t pcrc = 0;
    for (uint64_t done = 0, c; done < H.payload_bytes; done += c) {
        c = H.payload_bytes - done > (1u << 30) ? (1u << 30) : H.payload_bytes - done;
        pcrc = (uint32_t)crc32(pcrc, pl + done, (uInt)c);
    }
    if (pcrc != H.payload_crc) {
        agn_seterr("%s: payload CRC mismatch (stored %08x, computed %08x): the file is damaged",
                   path, H.payload_crc, pcrc);
        goto fail;
    }
    if (zipped) {
        raw = agn_xmalloc(raw_len ? raw_len : 1);
        if (inflate_exact(path, pl, H.payload_bytes, raw, raw_len) != 0) goto fail;
        pl = raw;
    }

    /* Structure: offsets, labels (and their padding), token ids. */
    uint64_t n = H.n_examples;
    d->offsets = agn_xmalloc(off_bytes);
    memcpy(d->offsets, pl, off_bytes);
    if (d->offsets[0] != 0) {
        agn_seterr("%s: offsets[0] is %llu, not 0", path, (ull)d->offsets[0]);
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t a = d->offsets[i], b = d->offsets[i + 1];
        if (b < a) {
            agn_seterr("%s: offsets decrease at example %llu (%llu, then %llu)", path, (ull)i,
                       (ull)a, (ull)b);
            goto fail;
        }
        if (b == a || b - a > H.max_len) {
            agn_seterr("%s: example %llu has %llu tokens (must be 1..%u)", path, (ull)i,
                       (ull)(b - a), H.max_len);
            goto fail;
        }
    }
    if (d->offsets[n] != H.n_tokens) {
        agn_seterr("%s: offsets end at %llu, the header says %llu tokens", path,
                   (ull)d->offsets[n], (ull)H.n_tokens);
        goto fail;
    }
    const unsigned char *lab = pl + off_bytes;
    for (uint64_t i = 0; i < lab_bytes; i++) {
        if (i < n && lab[i] != AGN_LABEL_UNKNOWN && lab[i] >= H.n_classes) {
            agn_seterr("%s: example %llu has label %u (classes 0..%u, or 255)", path, (ull)i,
                       lab[i], H.n_classes - 1);
            goto fail;
        }
        if (i >= n && lab[i] != 0) {
            agn_seterr("%s: nonzero padding after the labels", path);
            goto fail;
        }
    }
    d->labels = agn_xmalloc(n ? n : 1);
    memcpy(d->labels, lab, n);
    const unsigned char *tk = lab + lab_bytes;
    d->tokens = agn_xmalloc((H.n_tokens ? H.n_tokens : 1) * sizeof *d->tokens);
    for (uint64_t i = 0; i < H.n_tokens; i++) {
        uint32_t id;
        if (width == 2) {
            uint16_t v;
            memcpy(&v, tk + 2 * i, 2);
            id = v;
        } else {
            memcpy(&id, tk + 4 * i, 4);
        }
        if (id >= H.vocab_size) {
            agn_seterr("%s: token %llu has id %u, outside the vocabulary of %u", path, (ull)i, id,
                       H.vocab_size);
            goto fail;
        }
        d->tokens[i] = (int32_t)id;
    }
    d->n = n;
    d->n_tokens = H.n_tokens;
    d->vocab_size = H.vocab_size;
    d->max_len = H.max_len;
    d->n_classes = H.n_classes;
    d->vocab_crc = H.vocab_crc;
    if (shardset_check(path, H.header_crc) != 0) goto fail;
    if (hp) *hp = H;
    free(raw);
    free(file);
    return 0;
fail:
    free(raw);
    free(file);
    agn_dataset_free(d);
    return -1;
}

int agn_shard_read(agn_dataset *d, const char *path) { return agn_shard_read_ex(d, NULL, path); }

int agn_dataset_load(agn_dataset *d, char *const *paths, int n_paths)
{
    memset(d, 0, sizeof *d);
    if (n_paths < 1) return agn_seterr("no shards given");
    for (int k = 0; k < n_paths; k++) {
        agn_dataset s;
        if (agn_shard_read(&s, paths[k]) != 0) goto fail;
        if (k == 0) {
            *d = s;
            continue;
        }
        if (s.vocab_size != d->vocab_size || s.vocab_crc != d->vocab_crc) {
            agn_seterr("%s: built with another vocabulary (size %u, CRC %08x) than %s (size %u, "
                       "CRC %08x); build all shards with one vocabulary", paths[k],
                       s.vocab_size, s.vocab_crc, paths[0], d->vocab_size, d->vocab_crc);
            agn_dataset_free(&s);
            goto fail;
        }
        if (s.n_classes != d->n_classes) {
            agn_seterr("%s: %u classes, %s has %u", paths[k], s.n_classes, paths[0],
                       d->n_classes);
            agn_dataset_free(&s);
            goto fail;
        }
        d->offsets = agn_xrealloc(d->offsets, (d->n + s.n + 1) * sizeof *d->offsets);
        for (uint64_t i = 1; i <= s.n; i++) d->offsets[d->n + i] = d->n_tokens + s.offsets[i];
        d->labels = agn_xrealloc(d->labels, d->n + s.n ? d->n + s.n : 1);
        memcpy(d->labels + d->n, s.labels, s.n);
        d->tokens = agn_xrealloc(d->tokens, (d->n_tokens + s.n_tokens ? d->n_tokens + s.n_tokens
                                                                      : 1) * sizeof *d->tokens);
        memcpy(d->tokens + d->n_tokens, s.tokens, s.n_tokens * sizeof *d->tokens);
        d->n += s.n;
        d->n_tokens += s.n_tokens;
        if (s.max_len > d->max_len) d->max_len = s.max_len;
        agn_dataset_free(&s);
    }
    return 0;
fail:
    agn_dataset_free(d);
    return -1;
}
