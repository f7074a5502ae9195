/* input.c: the byte and line reader of input.h: plain files, gzip through
 * zlib's inflate, and stdin, in blocks of 256 KiB.
 *
 * inflate is driven directly rather than through gzread: gzread reports a
 * truncated file only as a "warning" that a caller must go and ask for, and
 * silently ignores garbage after the last member; here both are errors. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include "config.h"
#include "input.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define BLOCK (256u * 1024u)
#define DEFAULT_MAX_LINE ((size_t)64 << 20)

struct agn_input {
    char *name;
    int fd, own_fd;
    size_t block;       /* bytes per read(2) and per inflated block */
    int gzip;
    int raw_eof;        /* read(2) returned 0 */
    int done;           /* all data delivered */
    unsigned char *raw; /* bytes as read */
    size_t raw_len;     /* plain: bytes in raw not yet delivered (the sniffed head) */
    z_stream z;
    int z_ready, member_end;
    unsigned char *out; /* gzip: inflated block */
    const char *pbuf;   /* current block not yet consumed by the line reader */
    size_t plen;
    uint64_t bytes;
    char *line;         /* line reader: a line that straddles blocks */
    size_t line_len, line_cap, max_line;
    int max_set; /* the program set max_line from an option (--max-record) */
    uint64_t lineno;
};

/* ---- opening ----------------------------------------------------------- */

void agn_pipe_grow(int fd)
{
#ifdef F_SETPIPE_SZ
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(fd, F_GETPIPE_SZ) < AGN_PIPE_SIZE)
        (void)fcntl(fd, F_SETPIPE_SZ, AGN_PIPE_SIZE); /* refused above the user's limit: fine */
#else
    (void)fd;
#endif
}

static ssize_t read_some(agn_input *in, unsigned char *buf, size_t n)
{
    for (;;) {
        ssize_t r = read(in->fd, buf, n);
        if (r >= 0) return r;
        if (errno != EINTR) return agn_seterr_errno("%s", in->name);
    }
}

/* Bytes looked at before the first line: the longest magic below. */
#define SNIFF 10

/* The compressor that made a stream starting with P (N bytes), for those agn
 * does not read; NULL if none of them. */
static const char *compressed_by(const unsigned char *p, size_t n)
{
    static const unsigned char xz[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
    static const unsigned char zstd[4] = {0x28, 0xb5, 0x2f, 0xfd};
    /* bzip2: "BZh", the block size 1..9, then the magic of a block (pi)
     * or of the end of the stream (sqrt(pi)): text rarely starts so */
    static const unsigned char bz_block[6] = {0x31, 0x41, 0x59, 0x26, 0x53, 0x59};
    static const unsigned char bz_end[6] = {0x17, 0x72, 0x45, 0x38, 0x50, 0x90};
    if (n >= 6 && memcmp(p, xz, 6) == 0) return "xz";
    if (n >= 4 && memcmp(p, zstd, 4) == 0) return "zstd";
    if (n >= 10 && memcmp(p, "BZh", 3) == 0 && p[3] >= '1' && p[3] <= '9' &&
        (memcmp(p + 4, bz_block, 6) == 0 || memcmp(p + 4, bz_end, 6) == 0))
        return "bzip2";
    return NULL;
}

static agn_input *open_common(int fd, int own, const char *name, size_t block)
{
    agn_input *in = agn_xcalloc(1, sizeof *in);
    in->name = agn_xstrdup(name);
    in->fd = fd;
    in->own_fd = own;
    in->block = block ? block : BLOCK;
    in->max_line = DEFAULT_MAX_LINE;
    agn_pipe_grow(fd);
    in->raw = agn_xmalloc(in->block < 2 ? 2 : in->block);
    /* Sniff: enough bytes to see the magic of gzip and of the formats agn
     * does not read, or the end. */
    size_t cap = in->block < 2 ? 2 : in->block;
    /* no more than a magic needs: an interactive line may be short */
    for (size_t need = 2; in->raw_len < need && !in->raw_eof;) {
        ssize_t r = read_some(in, in->raw + in->raw_len, (in->block < 2 ? 2 : in->block) - in->raw_len);
        if (r < 0) {
            agn_input_close(in);
            return NULL;
        }
        if (r == 0) in->raw_eof = 1;
        in->raw_len += (size_t)r;
        if (in->raw_len >= 1) {
            unsigned char c = in->raw[0];
            need = c == 0xfd ? 6 : c == 0x28 ? 4 : c == 'B' ? SNIFF : 2;
            if (need > cap) need = cap;
        }
    }
    const char *other = compressed_by(in->raw, in->raw_len);
    if (other) {
        agn_seterr("%s: %s-compressed, which agn does not read; decompress it into a pipe: "
                   "%s -dc %s | %s -", in->name, other, other,
                   strcmp(in->name, "(stdin)") == 0 ? "FILE" : in->name, agn_progname);
        agn_input_close(in);
        return NULL;
    }
    if (in->raw_len >= 2 && in->raw[0] == 0x1f && in->raw[1] == 0x8b) {
        in->gzip = 1;
        in->out = agn_xmalloc(in->block);
        if (inflateInit2(&in->z, 15 + 16) != Z_OK) {
            agn_seterr("%s: cannot initialise zlib", in->name);
            agn_input_close(in);
            return NULL;
        }
        in->z_ready = 1;
        in->z.next_in = in->raw;
        in->z.avail_in = (uInt)in->raw_len;
        in->raw_len = 0;
    }
    return in;
}

agn_input *agn_input_open_block(const char *path, size_t block)
{
    if (strcmp(path, "-") == 0) return open_common(STDIN_FILENO, 0, "(stdin)", block);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        agn_seterr_errno("%s", path);
        return NULL;
    }
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    return open_common(fd, 1, path, block);
}

agn_input *agn_input_open(const char *path) { return agn_input_open_block(path, 0); }

agn_input *agn_input_open_fd(int fd, const char *name) { return open_common(fd, 0, name, 0); }

void agn_input_close(agn_input *in)
{
    if (!in) return;
    if (in->z_ready) inflateEnd(&in->z);
    if (in->own_fd) close(in->fd);
    free(in->raw);
    free(in->out);
    free(in->line);
    free(in->name);
    free(in);
}

const char *agn_input_name(const agn_input *in) { return in->name; }
int agn_input_is_gzip(const agn_input *in) { return in->gzip; }
uint64_t agn_input_bytes(const agn_input *in) { return in->bytes; }
uint64_t agn_input_lineno(const agn_input *in) { return in->lineno; }
void agn_input_set_max_line(agn_input *in, size_t max)
{
    in->max_line = max ? max : 1;
    in->max_set = 1;
}

/* ---- blocks ------------------------------------------------------------ */

/* Refills the compressed input; 0 at its end, -1 on error. */
static int fill_raw(agn_input *in)
{
    ssize_t r = read_some(in, in->raw, in->block);
    if (r < 0) return -1;
    if (r == 0) in->raw_eof = 1;
    in->z.next_in = in->raw;
    in->z.avail_in = (uInt)r;
    return r > 0;
}

static ssize_t next_gzip(agn_input *in, const char **buf)
{
    for (;;) {
        if (in->member_end) {
            /* Another member may follow (as `cat a.gz b.gz` makes); anything
             * else after a complete member is an error, as gzip -t says. */
            if (in->z.avail_in == 0) {
                int r = in->raw_eof ? 0 : fill_raw(in);
                if (r < 0) return -1;
                if (r == 0) return 0;
            }
            if (in->z.next_in[0] != 0x1f)
                return agn_seterr("%s: trailing garbage after gzip data", in->name);
            inflateReset(&in->z);
            in->member_end = 0;
        }
        if (in->z.avail_in == 0 && !in->raw_eof && fill_raw(in) < 0) return -1;
        uInt avail_before = in->z.avail_in;
        in->z.next_out = in->out;
        in->z.avail_out = (uInt)in->block;
        int ret = inflate(&in->z, Z_NO_FLUSH);
        size_t got = in->block - in->z.avail_out;
        switch (ret) {
        case Z_STREAM_END:
            in->member_end = 1;
            break;
        case Z_OK:
        case Z_BUF_ERROR:
            if (got == 0 && in->z.avail_in == 0 && in->raw_eof)
                return agn_seterr("%s: truncated gzip data (unexpected end of file)", in->name);
            if (got == 0 && in->z.avail_in == avail_before && avail_before > 0)
                return agn_seterr("%s: corrupt gzip data (inflate made no progress)", in->name);
            break;
        case Z_MEM_ERROR:
            return agn_seterr("%s: out of memory inflating gzip data", in->name);
        default: /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            return agn_seterr("%s: corrupt gzip data (%s)", in->name,
                              in->z.msg ? in->z.msg : "inflate failed");
        }
        if (got) {
            *buf = (const char *)in->out;
            return (ssize_t)got;
        }
    }
}

static ssize_t next_block(agn_input *in, const char **buf)
{
    if (in->done) return 0;
    ssize_t n;
    if (in->gzip) {
        n = next_gzip(in, buf);
    } else if (in->raw_len) { /* the bytes read while sniffing */
        n = (ssize_t)in->raw_len;
        in->raw_len = 0;
        *buf = (const char *)in->raw;
    } else if (in->raw_eof) {
        n = 0;
    } else {
        n = read_some(in, in->raw, in->block);
        if (n == 0) in->raw_eof = 1;
        *buf = (const char *)in->raw;
    }
    if (n == 0) in->done = 1;
    if (n > 0) in->bytes += (uint64_t)n;
    return n;
}

ssize_t agn_input_read(agn_input *in, const char **buf)
{
    if (in->plen) {
        ssize_t n = (ssize_t)in->plen;
        *buf = in->pbuf;
        in->plen = 0;
        return n;
    }
    return next_block(in, buf);
}

/* ---- lines ------------------------------------------------------------- */

/* Reads up to and including the next '\n' and drops it: what is left of a
 * line that is too long.  0 when done, -1 on an input error. */
static int skip_rest_of_line(agn_input *in)
{
    for (;;) {
        if (in->plen == 0) {
            ssize_t n = next_block(in, &in->pbuf);
            if (n <= 0) return (int)n;
            in->plen = (size_t)n;
        }
        const char *nl = memchr(in->pbuf, '\n', in->plen);
        if (nl) {
            in->plen -= (size_t)(nl + 1 - in->pbuf);
            in->pbuf = nl + 1;
            return 0;
        }
        in->plen = 0;
    }
}

static int too_long(agn_input *in)
{
    in->lineno++;
    /* only agn-tokenize has an option for the limit */
    agn_seterr("%s:%llu: line longer than %zu bytes%s", in->name, (unsigned long long)in->lineno,
               in->max_line, in->max_set ? " (see --max-record)" : " (the longest line it reads)");
    char save[1024];
    snprintf(save, sizeof save, "%s", agn_errmsg());
    if (skip_rest_of_line(in) < 0) return -1;
    agn_seterr("%s", save);
    in->line_len = 0;
    return 2;
}

static int line_append(agn_input *in, const char *p, size_t n)
{
    if (in->line_len + n > in->max_line) return -1;
    if (in->line_len + n > in->line_cap) {
        size_t cap = in->line_cap ? in->line_cap : 4096;
        while (cap < in->line_len + n) cap *= 2;
        in->line = agn_xrealloc(in->line, cap);
        in->line_cap = cap;
    }
    memcpy(in->line + in->line_len, p, n);
    in->line_len += n;
    return 0;
}

int agn_input_getline(agn_input *in, const char **line, size_t *len)
{
    in->line_len = 0;
    for (;;) {
        if (in->plen == 0) {
            ssize_t n = next_block(in, &in->pbuf);
            if (n < 0) return -1;
            if (n == 0) {
                if (in->line_len == 0) return 0;
                break; /* a last line without '\n' */
            }
            in->plen = (size_t)n;
        }
        const char *nl = memchr(in->pbuf, '\n', in->plen);
        if (nl) {
            size_t n = (size_t)(nl - in->pbuf);
            if (in->line_len == 0 && n <= in->max_line) { /* the common case: no copy */
                *line = in->pbuf;
                *len = n;
                in->pbuf += n + 1;
                in->plen -= n + 1;
                in->lineno++;
                if (*len && (*line)[*len - 1] == '\r') (*len)--;
                return 1;
            }
            if (line_append(in, in->pbuf, n) < 0) return too_long(in);
            in->pbuf += n + 1;
            in->plen -= n + 1;
            break;
        }
        if (line_append(in, in->pbuf, in->plen) < 0) return too_long(in);
        in->plen = 0;
    }
    in->lineno++;
    *line = in->line;
    *len = in->line_len;
    if (*len && (*line)[*len - 1] == '\r') (*len)--;
    return 1;
}
