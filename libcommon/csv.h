/* csv.h: a streaming RFC 4180 parser over an agn_input: quoted fields,
 * doubled quotes, newlines inside quotes, LF or CRLF line ends, an optional
 * UTF-8 byte order mark at the start, and line numbers for messages.
 *
 * The parser holds one record at a time (its fields are copied into one
 * buffer that grows to the longest record and never beyond the limit given
 * to agn_csv_new), so memory does not grow with the input.
 *
 * Leniency, chosen to match what CSV writers produce: a '"' inside an
 * unquoted field is kept as a character; an empty line (LF or CRLF alone) is
 * skipped, not read as a record of one empty field.  Strictness: text after
 * a closing quote other than ',' or the line end, and a quoted field still
 * open at the end of the input, make the record bad. */
#ifndef AGN_CSV_H
#define AGN_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "input.h"

/* Fields kept per record; a record may have more (nfields counts them all)
 * but only the first AGN_CSV_MAX_FIELDS are returned. */
#define AGN_CSV_MAX_FIELDS 16

typedef struct {
    int nfields;
    const char *field[AGN_CSV_MAX_FIELDS]; /* not NUL-terminated */
    size_t len[AGN_CSV_MAX_FIELDS];
    uint64_t line; /* line on which the record starts, from 1 */
} agn_csv_record;

typedef struct agn_csv agn_csv;

/* A parser reading from IN (which stays the caller's), refusing records of
 * more than MAX_RECORD bytes of field data. */
agn_csv *agn_csv_new(agn_input *in, size_t max_record);
void agn_csv_free(agn_csv *c);

enum {
    AGN_CSV_END = 0,    /* no more records */
    AGN_CSV_RECORD = 1, /* *R holds a record; its fields stay valid until the next call */
    AGN_CSV_BAD = 2,    /* a malformed record was read and dropped; the message
                           ("NAME:LINE: reason") is in agn_errmsg(); parsing can go on */
    AGN_CSV_ERROR = -1  /* the input failed (I/O, gzip); stop */
};
int agn_csv_next(agn_csv *c, agn_csv_record *r);

/* Physical lines read so far (the line number of the last byte parsed). */
uint64_t agn_csv_lineno(const agn_csv *c);

#endif
