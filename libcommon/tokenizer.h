/* tokenizer.h: the AG News clean-up and the basic_english-style split
 * (DESIGN.md, Formats: Tokenizer; the rules in full are in agn-tokenize(1)).
 *
 * Two passes over the text of one example (title and description joined by a
 * space):
 *   1. clean-up: every backslash becomes a space (AG News writes its lost
 *      line breaks as a backslash glued to the next word, "dwindling\band",
 *      and escapes dollars as "\$"); HTML character references are decoded,
 *      named ones (&amp; &lt; &gt; &quot; &apos; &nbsp; &hellip; and some
 *      typographic and Latin-1 ones) and numeric ones (&#39; &#x27;), and,
 *      as AG News lost many an '&', the bare forms "#39;" (any decimal
 *      number from 32) and "amp;" "lt;" "gt;" "quot;" "apos;" "nbsp;"
 *      "hellip;" when no letter or digit comes just before them; a bare
 *      form is never taken right after a ';' (or a decoded reference), so
 *      decoded text is not decoded again ("&amp;lt;" gives "&lt;").
 *   2. split: HTML tags with a known name ("<b>", "</A>", "<a href=...>",
 *      "<br/>", "<!-- -->"), literal or decoded, become a space; then
 *      lower-casing and the split into tokens: a run of letters and digits
 *      is one token, every other printable character is a token of its own,
 *      white space and control characters separate tokens.
 *
 * Bytes beyond ASCII are read as UTF-8.  A valid non-ASCII character is a
 * letter (kept, lower-cased for Latin-1, Latin Extended-A, Greek and
 * Cyrillic capitals) unless it is one of: a space (no-break space, the
 * U+2000 spaces, ideographic space, C1 controls), which separates; a format
 * character (soft hyphen, zero-width space and joiners, BOM), which is
 * dropped without splitting; a typographic quote, dash or ellipsis, which
 * becomes its ASCII form (' " - ...); a symbol or punctuation mark (Latin-1
 * signs, general punctuation, currency, arrows and other symbols, CJK and
 * full-width punctuation, emoji), which is a token of its own.  Invalid
 * UTF-8 is never an error: each maximal ill-formed subsequence (as Unicode
 * and Python's "replace" define it) becomes U+FFFD, a token of its own.  So
 * the output is always valid UTF-8 and no token holds a space, tab, newline
 * or control character. */
#ifndef AGN_TOKENIZER_H
#define AGN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct agn_tokenizer agn_tokenizer;

/* What a call of agn_tokenize met, for warnings. */
typedef struct {
    uint64_t invalid_utf8; /* ill-formed subsequences replaced by U+FFFD */
    uint64_t controls;     /* control characters (NUL included) read as spaces */
} agn_tok_stats;

agn_tokenizer *agn_tokenizer_new(void);
void agn_tokenizer_free(agn_tokenizer *t);

/* Bytes agn_tokenize may write for texts of N bytes in all: at most four
 * bytes per input byte (an invalid byte becomes U+FFFD and a space). */
#define AGN_TOKENIZE_BOUND(n, ntexts) (4 * ((size_t)(n) + (size_t)(ntexts)) + 8)

/* Cleans, lower-cases and splits the NTEXTS texts, joined by spaces, and
 * writes the tokens separated by single spaces (none before the first or
 * after the last) to OUT, which has room for AGN_TOKENIZE_BOUND bytes.
 * Returns the bytes written; *NTOK (if not NULL) gets the number of tokens;
 * ST (if not NULL) is added to. */
size_t agn_tokenize(agn_tokenizer *t, int ntexts, const char *const text[], const size_t len[],
                    char *out, size_t *ntok, agn_tok_stats *st);

/* The two passes on their own, for tests.  agn_tok_clean writes at most N
 * bytes to OUT (pass 1).  agn_tok_split reads S[0..N) with S[N] == '\0'
 * (pass 2) and writes at most 4N bytes. */
size_t agn_tok_clean(const char *s, size_t n, char *out);
size_t agn_tok_split(const char *s, size_t n, char *out, size_t *ntok, agn_tok_stats *st);
/* Pass 2 as a plain loop over bytes: the reference that tests hold the
 * block loop of agn_tok_split to (same arguments, same results). */
size_t agn_tok_split_ref(const char *s, size_t n, char *out, size_t *ntok, agn_tok_stats *st);

/* The path agn_tok_split and agn_tok_clean take on this processor under
 * AGN_SIMD (simd.h): "scalar", "sse2", "avx2" or "avx512". */
const char *agn_tok_split_path(void);

#endif
