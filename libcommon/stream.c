/* stream.c: the token stream reader.  Reads with read(2) into a buffer that
 * holds at least one whole line (it grows to the longest line, never with
 * the input), so agn-vocab and agn-shard stream inputs of any size. */
#include "config.h"
#include "stream.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM_CHUNK (1u << 18)

int agn_stream_open(agn_stream *s, const char *path)
{
    memset(s, 0, sizeof *s);
    if (strcmp(path, "-") == 0) {
        s->fd = STDIN_FILENO;
        s->name = agn_xstrdup("(stdin)");
    } else {
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) return agn_seterr_errno("%s", path);
        s->own_fd = 1;
        s->name = agn_xstrdup(path);
    }
    s->cap = STREAM_CHUNK;
    s->buf = agn_xmalloc(s->cap);
    return 0;
}

void agn_stream_close(agn_stream *s)
{
    if (s->own_fd && s->fd >= 0) close(s->fd);
    free(s->buf);
    free(s->name);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/* Moves the unread bytes to the front, grows the buffer when it is full,
 * and reads more; 0 when nothing more can come (eof set), -1 on error. */
static int fill(agn_stream *s)
{
    if (s->beg > 0) {
        memmove(s->buf, s->buf + s->beg, s->end - s->beg);
        s->end -= s->beg;
        s->beg = 0;
    }
    if (s->end == s->cap) {
        s->cap *= 2;
        s->buf = agn_xrealloc(s->buf, s->cap);
    }
    for (;;) {
        ssize_t n = read(s->fd, s->buf + s->end, s->cap - s->end);
        if (n < 0) {
            if (errno == EINTR) continue;
            return agn_seterr_errno("%s", s->name);
        }
        if (n == 0) s->eof = 1;
        s->end += (size_t)n;
        s->bytes += (uint64_t)n;
        return 0;
    }
}

int agn_stream_next(agn_stream *s, agn_stream_line *line)
{
    char *nl;
    size_t scanned = 0;
    for (;;) {
        nl = memchr(s->buf + s->beg + scanned, '\n', s->end - s->beg - scanned);
        if (nl) break;
        scanned = s->end - s->beg;
        if (s->eof) {
            if (scanned == 0) return 0;
            /* last line without a newline: terminate it in the buffer */
            if (s->end == s->cap) {
                s->cap += 1;
                s->buf = agn_xrealloc(s->buf, s->cap);
            }
            s->buf[s->end] = '\n';
            nl = s->buf + s->end;
            s->end++;
            break;
        }
        if (fill(s) != 0) return -1;
    }
    char *p = s->buf + s->beg, *e = nl;
    s->beg = (size_t)(nl - s->buf) + 1;
    s->lineno++;
    if (e > p && e[-1] == '\r') e--;
    if (memchr(p, '\0', (size_t)(e - p)))
        return agn_seterr("%s:%llu: NUL byte in the line", s->name, (unsigned long long)s->lineno);
    char *tab = memchr(p, '\t', (size_t)(e - p));
    if (!tab)
        return agn_seterr("%s:%llu: no tab after the label (expected LABEL<TAB>tokens)", s->name,
                          (unsigned long long)s->lineno);
    if (tab - p == 1 && p[0] == '-') {
        line->label = AGN_STREAM_LABEL_UNKNOWN;
    } else {
        int v = 0;
        if (tab == p || tab - p > 3) goto bad_label;
        for (char *q = p; q < tab; q++) {
            if (*q < '0' || *q > '9') goto bad_label;
            v = v * 10 + (*q - '0');
        }
        if (v > 254) goto bad_label;
        line->label = v;
    }
    line->text = tab + 1;
    line->len = (size_t)(e - tab - 1);
    return 1;
bad_label:
    return agn_seterr("%s:%llu: bad label '%.*s' (expected a class 0..254 or '-')", s->name,
                      (unsigned long long)s->lineno, (int)((tab - p) > 20 ? 20 : (tab - p)), p);
}
