/* stream.c: the token stream reader: lines from input.h's reader (plain,
 * gzip or stdin), each checked and split into its label and its text, so
 * agn-vocab and agn-shard stream inputs of any size. */
#include "config.h"
#include "stream.h"
#include "input.h"
#include "util.h"

#include <string.h>

int agn_stream_open(agn_stream *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->in = agn_input_open(path);
    if (!s->in) return -1;
    s->name = agn_input_name(s->in);
    return 0;
}

void agn_stream_close(agn_stream *s)
{
    if (s->in) agn_input_close(s->in);
    memset(s, 0, sizeof *s);
}

int agn_stream_next(agn_stream *s, agn_stream_line *line)
{
    const char *p;
    size_t len;
    int rc = agn_input_getline(s->in, &p, &len);
    s->lineno = agn_input_lineno(s->in);
    s->bytes = agn_input_bytes(s->in);
    if (rc == 0) return 0;
    if (rc != 1) return -1; /* an error, or a line over the limit (2): both stop */
    const char *e = p + len;
    if (memchr(p, '\0', len))
        return agn_seterr("%s:%llu: NUL byte in the line", s->name, (unsigned long long)s->lineno);
    const char *tab = memchr(p, '\t', len);
    if (!tab)
        return agn_seterr("%s:%llu: no tab after the label (expected LABEL<TAB>tokens)", s->name,
                          (unsigned long long)s->lineno);
    if (tab - p == 1 && p[0] == '-') {
        line->label = AGN_STREAM_LABEL_UNKNOWN;
    } else {
        int v = 0;
        if (tab == p || tab - p > 3) goto bad_label;
        for (const char *q = p; q < tab; q++) {
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
