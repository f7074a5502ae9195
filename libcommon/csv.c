/* csv.c: the streaming RFC 4180 parser of csv.h.
 *
 * A state machine fed block by block from agn_input, so that a record may
 * straddle any number of blocks.  Quoted fields, the common case in AG News,
 * are scanned with memchr for the closing quote; field bytes are copied into
 * one record buffer, which is what keeps the parser simple at block edges.
 * A bad record is parsed to its real end before it is reported, so that
 * --skip-bad resumes on the next record rather than in the middle of one. */
#include "config.h"
#include "csv.h"

#include "simd.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum {
    S_BOM,   /* start of the input: maybe a UTF-8 byte order mark */
    S_START, /* start of a field */
    S_UNQ,   /* inside an unquoted field */
    S_QUO,   /* inside a quoted field */
    S_QQ,    /* a quote seen inside a quoted field: doubled, or the end? */
    S_QCR    /* CR after a closing quote: must be followed by LF */
};

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

struct agn_csv {
    agn_input *in;
    const char *p, *e; /* unparsed part of the current block */
    int eof, at_start;
    char *rec;         /* field bytes of the current record */
    size_t rlen, rcap, max;
    size_t fbeg[AGN_CSV_MAX_FIELDS], fend[AGN_CSV_MAX_FIELDS];
    int nf;
    size_t cur_beg;
    int first_quoted;
    int bom_pos;
    uint64_t line;       /* current physical line, from 1 */
    uint64_t quote_line; /* where the open quoted field began */
    int too_long, bad;
    uint64_t bad_line;
    char badmsg[160];
};

static int csv_sse2; /* the 16-byte loop (AGN_SIMD sse2 and up; simd.h) */
static pthread_once_t csv_once = PTHREAD_ONCE_INIT;
static void csv_choose(void) { csv_sse2 = agn_simd_level_now() >= AGN_SIMD_SSE2; }

agn_csv *agn_csv_new(agn_input *in, size_t max_record)
{
    pthread_once(&csv_once, csv_choose);
    agn_csv *c = agn_xcalloc(1, sizeof *c);
    c->in = in;
    c->max = max_record ? max_record : 1;
    c->line = 1;
    c->at_start = 1;
    c->rcap = c->max < 4096 ? c->max : 4096;
    c->rec = agn_xmalloc(c->rcap);
    return c;
}

void agn_csv_free(agn_csv *c)
{
    if (!c) return;
    free(c->rec);
    free(c);
}

uint64_t agn_csv_lineno(const agn_csv *c) { return c->line; }

/* ---- record building ----------------------------------------------------- */

static void mark_bad(agn_csv *c, uint64_t line, const char *msg)
{
    if (c->bad) return; /* the first problem of a record is the one reported */
    c->bad = 1;
    c->bad_line = line;
    snprintf(c->badmsg, sizeof c->badmsg, "%s", msg);
}

static void put(agn_csv *c, const char *s, size_t n)
{
    if (c->too_long || n == 0) return;
    if (n > c->max - c->rlen) {
        /* Keep parsing to the end of the record, storing nothing more. */
        char msg[160];
        snprintf(msg, sizeof msg, "record longer than %zu bytes (see --max-record)", c->max);
        c->too_long = 1;
        c->bad = 0; /* this problem wins: it explains any other */
        mark_bad(c, c->line, msg);
        return;
    }
    if (c->rlen + n > c->rcap) {
        size_t cap = c->rcap;
        while (cap < c->rlen + n) cap *= 2;
        if (cap > c->max) cap = c->max;
        c->rec = agn_xrealloc(c->rec, cap);
        c->rcap = cap;
    }
    memcpy(c->rec + c->rlen, s, n);
    c->rlen += n;
}

static void end_field(agn_csv *c)
{
    if (c->nf < AGN_CSV_MAX_FIELDS) {
        c->fbeg[c->nf] = c->cur_beg;
        c->fend[c->nf] = c->rlen;
    }
    if (c->nf < 1 << 30) c->nf++;
}

static void bad_char_after_quote(agn_csv *c, unsigned char ch)
{
    char msg[96];
    if (ch >= 0x20 && ch < 0x7f)
        snprintf(msg, sizeof msg, "unexpected '%c' after a closing quote", ch);
    else
        snprintf(msg, sizeof msg, "unexpected byte 0x%02x after a closing quote", ch);
    mark_bad(c, c->line, msg);
}

/* ---- the parser -------------------------------------------------------- */

/* The first '"' or '\n' in [P, E), or E: one pass for what would be two
 * memchr calls (a quoted field is scanned for its end and its line feeds),
 * 16 bytes at a time. */
static inline const char *quote_or_lf(const char *p, const char *e)
{
#ifdef __SSE2__
    if (csv_sse2) {
        const __m128i qu = _mm_set1_epi8('"'), lf = _mm_set1_epi8('\n');
        for (; e - p >= 16; p += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, qu), _mm_cmpeq_epi8(v, lf)));
            if (m) return p + __builtin_ctz(m);
        }
    }
#endif
    while (p < e && *p != '"' && *p != '\n') p++;
    return p;
}

int agn_csv_next(agn_csv *c, agn_csv_record *r)
{
    int st;
    uint64_t start_line;
restart:
    c->rlen = 0;
    c->nf = 0;
    c->cur_beg = 0;
    c->first_quoted = 0;
    c->too_long = 0;
    c->bad = 0;
    st = c->at_start ? S_BOM : S_START;
    start_line = c->line;
    for (;;) {
        if (c->p == c->e) {
            if (!c->eof) {
                const char *b;
                ssize_t n = agn_input_read(c->in, &b);
                if (n < 0) return AGN_CSV_ERROR;
                if (n > 0) {
                    c->p = b;
                    c->e = b + n;
                    continue;
                }
                c->eof = 1;
            }
            /* The end of the input: close whatever is open. */
            switch (st) {
            case S_BOM:
                c->at_start = 0;
                if (c->bom_pos == 0) return AGN_CSV_END;
                put(c, (const char *)BOM, (size_t)c->bom_pos); /* a partial mark is data */
                end_field(c);
                break;
            case S_START:
                if (c->nf == 0) return AGN_CSV_END;
                end_field(c); /* after a final ',' */
                break;
            case S_UNQ:
                if (c->rlen > c->cur_beg && c->rec[c->rlen - 1] == '\r' && !c->too_long) c->rlen--;
                end_field(c);
                break;
            case S_QQ:
            case S_QCR:
                end_field(c);
                break;
            case S_QUO: {
                char msg[96];
                snprintf(msg, sizeof msg, "unterminated quoted field at end of input");
                c->bad = 0;
                mark_bad(c, c->quote_line, msg);
                break;
            }
            }
            goto done;
        }

        switch (st) {
        case S_BOM: {
            unsigned char ch = (unsigned char)*c->p;
            if (ch == BOM[c->bom_pos]) {
                c->p++;
                if (++c->bom_pos == 3) {
                    c->at_start = 0;
                    st = S_START;
                }
            } else {
                c->at_start = 0;
                if (c->bom_pos == 0) {
                    st = S_START;
                } else { /* not a mark after all: those bytes are data */
                    put(c, (const char *)BOM, (size_t)c->bom_pos);
                    st = S_UNQ;
                }
            }
            break;
        }
        case S_START: {
            char ch = *c->p;
            c->cur_beg = c->rlen;
            if (ch == '"') {
                c->p++;
                if (c->nf == 0) c->first_quoted = 1;
                c->quote_line = c->line;
                st = S_QUO;
            } else if (ch == ',') {
                c->p++;
                end_field(c);
            } else if (ch == '\n') {
                c->p++;
                end_field(c);
                c->line++;
                goto done;
            } else {
                st = S_UNQ;
            }
            break;
        }
        case S_UNQ: {
            const char *q = c->p, *e = c->e;
            while (q < e && *q != ',' && *q != '\n') q++;
            put(c, c->p, (size_t)(q - c->p));
            c->p = q;
            if (q == e) break;
            c->p++;
            if (*q == ',') {
                end_field(c);
                st = S_START;
                break;
            }
            if (c->rlen > c->cur_beg && c->rec[c->rlen - 1] == '\r' && !c->too_long) c->rlen--;
            end_field(c);
            c->line++;
            goto done;
        }
        case S_QUO: {
            /* the closing quote, counting the line feeds on the way */
            const char *q = c->p;
            for (;;) {
                q = quote_or_lf(q, c->e);
                if (q == c->e || *q == '"') break;
                c->line++;
                q++;
            }
            put(c, c->p, (size_t)(q - c->p));
            if (q < c->e) {
                c->p = q + 1;
                st = S_QQ;
            } else {
                c->p = c->e;
            }
            break;
        }
        case S_QQ: {
            char ch = *c->p;
            if (ch == '"') { /* a doubled quote stands for one */
                put(c, "\"", 1);
                c->p++;
                st = S_QUO;
            } else if (ch == ',') {
                c->p++;
                end_field(c);
                st = S_START;
            } else if (ch == '\n') {
                c->p++;
                end_field(c);
                c->line++;
                goto done;
            } else if (ch == '\r') {
                c->p++;
                st = S_QCR;
            } else {
                /* Not CSV: report the record, but read it to its end as if
                 * the rest of the field were unquoted text. */
                bad_char_after_quote(c, (unsigned char)ch);
                st = S_UNQ;
            }
            break;
        }
        case S_QCR:
            if (*c->p == '\n') {
                c->p++;
                end_field(c);
                c->line++;
                goto done;
            }
            mark_bad(c, c->line, "carriage return after a closing quote without a line feed");
            put(c, "\r", 1);
            st = S_UNQ;
            break;
        }
    }

done:
    /* An empty line (LF or CRLF alone) is not a record. */
    if (!c->bad && c->nf == 1 && c->fend[0] == c->fbeg[0] && !c->first_quoted) goto restart;
    if (c->bad) {
        agn_seterr("%s:%llu: %s", agn_input_name(c->in), (unsigned long long)c->bad_line,
                   c->badmsg);
        return AGN_CSV_BAD;
    }
    r->nfields = c->nf;
    int k = c->nf < AGN_CSV_MAX_FIELDS ? c->nf : AGN_CSV_MAX_FIELDS;
    for (int i = 0; i < k; i++) {
        r->field[i] = c->rec + c->fbeg[i];
        r->len[i] = c->fend[i] - c->fbeg[i];
    }
    r->line = start_line;
    return AGN_CSV_RECORD;
}
