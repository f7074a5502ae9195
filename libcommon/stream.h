/* stream.h: reading the token stream (DESIGN.md, Formats; agn-formats(5)):
 * "LABEL<TAB>tok tok ...", one example per line, from a file or stdin,
 * plain or gzip, line by line with line numbers, through the buffered
 * reader of input.h (memory: its blocks and the longest line).  Callers iterate the tokens of a line with
 * agn_stream_next_token(). */
#ifndef AGN_STREAM_H
#define AGN_STREAM_H

#include <stddef.h>
#include <stdint.h>

/* The label of an example whose class is unknown ("-" in the stream). */
#define AGN_STREAM_LABEL_UNKNOWN 255

struct agn_input;

typedef struct {
    struct agn_input *in;
    const char *name; /* file name for messages, "(stdin)" for "-" */
    uint64_t lineno;  /* number of the line last returned, from 1 */
    uint64_t bytes;   /* bytes read so far (after decompression) */
} agn_stream;

/* One line of the stream; the text points into the stream's buffer and is
 * valid until the next call of agn_stream_next(). */
typedef struct {
    int label;        /* 0..254, or AGN_STREAM_LABEL_UNKNOWN */
    const char *text; /* after the tab, without the newline (and a final CR) */
    size_t len;
} agn_stream_line;

/* Opens PATH ("-" = stdin; gzip recognised by its magic); -1 with
 * "PATH: reason". */
int agn_stream_open(agn_stream *s, const char *path);
/* Reads the next line: 1 with *LINE filled, 0 at the end, -1 with
 * "FILE:LINE: reason" (no tab, bad label, NUL byte, a line over 64 MiB) or
 * an I/O or gzip error. */
int agn_stream_next(agn_stream *s, agn_stream_line *line);
void agn_stream_close(agn_stream *s);

/* Splits off the next token of *P (LEFT bytes left), skipping spaces and
 * tabs; 1 with *TOK and *LEN set, 0 when none is left. */
static inline int agn_stream_next_token(const char **p, size_t *left, const char **tok,
                                        size_t *len)
{
    const char *s = *p, *e = *p + *left;
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    if (s == e) {
        *p = s;
        *left = 0;
        return 0;
    }
    const char *t = s;
    while (t < e && *t != ' ' && *t != '\t') t++;
    *tok = s;
    *len = (size_t)(t - s);
    *p = t;
    *left = (size_t)(e - t);
    return 1;
}

#endif
