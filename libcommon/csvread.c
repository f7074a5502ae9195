/* csvread.c: reads comma-separated records with RFC 4180 quoting, one
 * record at a time, remembering where each began.  See csvread.h. */
#include "csvread.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct agn_csvread {
    FILE *fp;
    int own;       /* close fp at the end (not stdin) */
    char *name;
    long line;     /* current physical line (1-based) */
    long rec_line; /* line where the last record started */
    char *buf;     /* the fields' bytes, NUL-separated */
    size_t len, cap;
    size_t *offs;  /* start of each field in buf */
    char **fields;
    int nf, fcap;
    unsigned char pend[4]; /* bytes read ahead, returned before the stream's */
    int npend;
};

agn_csvread *agn_csvread_open(const char *path)
{
    FILE *fp;
    int own = 1;
    if (strcmp(path, "-") == 0) {
        fp = stdin;
        own = 0;
    } else if (!(fp = fopen(path, "rb"))) {
        agn_seterr_errno("%s", path);
        return NULL;
    }
    agn_csvread *r = agn_xcalloc(1, sizeof *r);
    r->fp = fp;
    r->own = own;
    r->name = agn_xstrdup(own ? path : "(stdin)");
    r->line = 1;
    /* a UTF-8 byte-order mark (a spreadsheet's "CSV UTF-8") is not part of
     * the first column's name */
    int c0 = getc(fp), c1 = c0 == 0xef ? getc(fp) : EOF, c2 = c1 == 0xbb ? getc(fp) : EOF;
    if (!(c0 == 0xef && c1 == 0xbb && c2 == 0xbf)) {
        int got[3] = {c0, c1, c2};
        for (int i = 0; i < 3 && got[i] != EOF; i++) r->pend[r->npend++] = (unsigned char)got[i];
    }
    return r;
}

static int rgetc(agn_csvread *r)
{
    if (r->npend) {
        int c = r->pend[0];
        memmove(r->pend, r->pend + 1, (size_t)--r->npend);
        return c;
    }
    return getc(r->fp);
}

static void runget(agn_csvread *r, int c)
{
    memmove(r->pend + 1, r->pend, (size_t)r->npend++);
    r->pend[0] = (unsigned char)c;
}

static void put(agn_csvread *r, char c)
{
    if (r->len == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->buf = agn_xrealloc(r->buf, r->cap);
    }
    r->buf[r->len++] = c;
}

static void start_field(agn_csvread *r)
{
    if (r->nf == r->fcap) {
        r->fcap = r->fcap ? 2 * r->fcap : 32;
        r->offs = agn_xrealloc(r->offs, (size_t)r->fcap * sizeof *r->offs);
    }
    r->offs[r->nf++] = r->len;
}

int agn_csvread_next(agn_csvread *r, char ***fields, int *n)
{
    for (;;) {
        r->len = 0;
        r->nf = 0;
        r->rec_line = r->line;
        int c = rgetc(r);
        if (c == EOF) {
            if (ferror(r->fp)) return agn_seterr_errno("%s", r->name);
            return 0;
        }
        /* blank line (LF, CRLF or a bare CR, which also ends records): skip;
         * one character pushed back at most, all C promises */
        if (c == '\n') { r->line++; continue; }
        if (c == '\r') {
            int d = rgetc(r);
            if (d != '\n' && d != EOF) runget(r, d);
            r->line++;
            continue;
        }
        runget(r, c);

        start_field(r);
        int quoted = 0, after_quote = 0, done = 0;
        while (!done) {
            c = rgetc(r);
            if (c == EOF) {
                if (ferror(r->fp)) return agn_seterr_errno("%s", r->name);
                if (quoted)
                    return agn_seterr("%s:%ld: quoted field not closed before the end of the file",
                                      r->name, r->rec_line);
                break;
            }
            if (c == '\0')
                return agn_seterr("%s:%ld: NUL byte in the file (not a text CSV file?)", r->name,
                                  r->line);
            if (quoted) {
                if (c == '"') {
                    int d = rgetc(r);
                    if (d == '"') put(r, '"');
                    else {
                        if (d != EOF) runget(r, d);
                        quoted = 0;
                        after_quote = 1;
                    }
                } else {
                    if (c == '\n') r->line++;
                    put(r, (char)c);
                }
                continue;
            }
            switch (c) {
            case ',':
                put(r, '\0');
                start_field(r);
                after_quote = 0;
                break;
            case '\r': {
                int d = rgetc(r);
                if (d != '\n' && d != EOF) runget(r, d);
                r->line++;
                done = 1;
                break;
            }
            case '\n':
                r->line++;
                done = 1;
                break;
            case '"':
                if (r->len != r->offs[r->nf - 1] || after_quote)
                    return agn_seterr("%s:%ld: field %d: a quote inside an unquoted field",
                                      r->name, r->line, r->nf);
                quoted = 1;
                break;
            default:
                if (after_quote)
                    return agn_seterr("%s:%ld: field %d: text after a closing quote", r->name,
                                      r->line, r->nf);
                put(r, (char)c);
            }
        }
        put(r, '\0');
        if (r->fcap > 0) {
            r->fields = agn_xrealloc(r->fields, (size_t)r->fcap * sizeof *r->fields);
            for (int i = 0; i < r->nf; i++) r->fields[i] = r->buf + r->offs[i];
        }
        *fields = r->fields;
        *n = r->nf;
        return 1;
    }
}

long agn_csvread_line(const agn_csvread *r) { return r->rec_line; }
const char *agn_csvread_name(const agn_csvread *r) { return r->name; }

void agn_csvread_close(agn_csvread *r)
{
    if (!r) return;
    if (r->own) fclose(r->fp);
    free(r->name);
    free(r->buf);
    free(r->offs);
    free(r->fields);
    free(r);
}
