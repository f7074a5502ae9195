/* tokenizer.c: the AG News clean-up and split of tokenizer.h.
 *
 * Speed matters (the whole corpus goes through here on every preprocessing
 * run), so both passes are single loops over bytes driven by 256-entry
 * tables; only '\\' and ';' leave the copy loop of pass 1, only '<' and
 * bytes beyond ASCII leave the fast paths of pass 2.  Entities are found
 * looking back from their ';', which is why pass 1 writes into a separate
 * buffer rather than in place.
 *
 * tests/bench/pytok.py implements the same rules with Python regular
 * expressions; tests/tokenize-corpus.sh checks that both agree on the corpus.
 * A change here must be made there too. */
#include "config.h"
#include "tokenizer.h"

#include "util.h"

#include <pthread.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "simd.h"
#include <stdlib.h>
#include <string.h>

struct agn_tokenizer {
    char *scratch; /* pass 1 output */
    size_t cap;
};

agn_tokenizer *agn_tokenizer_new(void) { return agn_xcalloc(1, sizeof(agn_tokenizer)); }

void agn_tokenizer_free(agn_tokenizer *t)
{
    if (!t) return;
    free(t->scratch);
    free(t);
}

/* ---- character tables ---------------------------------------------------- */

enum { C_SPACE, C_WORD, C_PUNCT, C_LT, C_HIGH };

static uint8_t cls[256];        /* pass 2 class of a byte */
static unsigned char low[256];  /* ASCII lower case */
static uint8_t p1special[256];  /* pass 1 stops at these */
static uint8_t isdig[256], isalph[256], ishex[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static int clean_sse2; /* pass 1 looks for its bytes 16 at a time (AGN_SIMD sse2 and up) */

static void choose_split(void);

static void init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        low[c] = (unsigned char)c;
        if (c >= 0x80) cls[c] = C_HIGH;
        else if (c < 0x20 || c == 0x7f || c == ' ') cls[c] = C_SPACE;
        else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) cls[c] = C_WORD;
        else if (c >= 'A' && c <= 'Z') {
            cls[c] = C_WORD;
            low[c] = (unsigned char)(c + 32);
        } else cls[c] = C_PUNCT;
        isdig[c] = c >= '0' && c <= '9';
        isalph[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        ishex[c] = isdig[c] || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    cls['<'] = C_LT;
    clean_sse2 = agn_simd_level_now() >= AGN_SIMD_SSE2;
    choose_split();
    p1special['\\'] = 1;
    p1special[';'] = 1;
}

/* ---- UTF-8 -------------------------------------------------------------- */

static inline unsigned char *put_utf8(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | cp >> 6);
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | cp >> 12);
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | cp >> 18);
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Decodes the character at S (S[0] >= 0x80).  Returns its length and sets
 * *CP, or returns the length of the maximal ill-formed subsequence with *CP
 * = 0xFFFFFFFF.  Reads past S[0] only while the bytes can still belong to
 * the character, so a NUL after the text stops it. */
static inline int decode_utf8(const unsigned char *s, uint32_t *cp)
{
    unsigned c0 = s[0];
    *cp = 0xFFFFFFFFu;
    if (c0 < 0xC2) return 1; /* continuation byte, or overlong C0/C1 */
    if (c0 < 0xE0) {
        if ((s[1] & 0xC0) != 0x80) return 1;
        *cp = (c0 & 0x1Fu) << 6 | (s[1] & 0x3Fu);
        return 2;
    }
    if (c0 < 0xF0) {
        unsigned lo = c0 == 0xE0 ? 0xA0 : 0x80, hi = c0 == 0xED ? 0x9F : 0xBF;
        if (s[1] < lo || s[1] > hi) return 1;
        if ((s[2] & 0xC0) != 0x80) return 2;
        *cp = (c0 & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
        return 3;
    }
    if (c0 < 0xF5) {
        unsigned lo = c0 == 0xF0 ? 0x90 : 0x80, hi = c0 == 0xF4 ? 0x8F : 0xBF;
        if (s[1] < lo || s[1] > hi) return 1;
        if ((s[2] & 0xC0) != 0x80) return 2;
        if ((s[3] & 0xC0) != 0x80) return 3;
        *cp = (c0 & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
        return 4;
    }
    return 1;
}

/* What pass 2 does with a non-ASCII character.  The same table is in
 * tests/bench/pytok.py. */
enum { U_WORD, U_SPACE, U_DROP, U_PUNCT, U_NORM };

static const struct urange {
    uint32_t lo, hi;
    uint8_t what;
    char ascii; /* U_NORM: the ASCII replacement ('.' means "...") */
} uranges[] = {
    {0x0080, 0x00A0, U_SPACE, 0},  /* C1 controls, no-break space */
    {0x00A1, 0x00A9, U_PUNCT, 0},  /* ¡ ¢ £ ¤ ¥ ¦ § ¨ © */
    {0x00AB, 0x00AB, U_NORM, '"'}, /* « */
    {0x00AC, 0x00AC, U_PUNCT, 0},  /* ¬ */
    {0x00AD, 0x00AD, U_DROP, 0},   /* soft hyphen */
    {0x00AE, 0x00B1, U_PUNCT, 0},  /* ® ¯ ° ± */
    {0x00B4, 0x00B4, U_PUNCT, 0},  /* ´ */
    {0x00B6, 0x00B8, U_PUNCT, 0},  /* ¶ · ¸ */
    {0x00BB, 0x00BB, U_NORM, '"'}, /* » */
    {0x00BF, 0x00BF, U_PUNCT, 0},  /* ¿ */
    {0x00D7, 0x00D7, U_PUNCT, 0},  /* × */
    {0x00F7, 0x00F7, U_PUNCT, 0},  /* ÷ */
    {0x1680, 0x1680, U_SPACE, 0},
    {0x2000, 0x200A, U_SPACE, 0},
    {0x200B, 0x200F, U_DROP, 0},   /* zero-width space, joiners, marks */
    {0x2010, 0x2015, U_NORM, '-'}, /* hyphens and dashes */
    {0x2016, 0x2017, U_PUNCT, 0},
    {0x2018, 0x201B, U_NORM, '\''},
    {0x201C, 0x201F, U_NORM, '"'},
    {0x2020, 0x2025, U_PUNCT, 0},
    {0x2026, 0x2026, U_NORM, '.'}, /* … */
    {0x2027, 0x2027, U_PUNCT, 0},
    {0x2028, 0x2029, U_SPACE, 0},
    {0x202A, 0x202E, U_DROP, 0},   /* bidi controls */
    {0x202F, 0x202F, U_SPACE, 0},
    {0x2030, 0x2031, U_PUNCT, 0},
    {0x2032, 0x2032, U_NORM, '\''},
    {0x2033, 0x2033, U_NORM, '"'},
    {0x2034, 0x205E, U_PUNCT, 0},
    {0x205F, 0x205F, U_SPACE, 0},
    {0x2060, 0x2064, U_DROP, 0},
    {0x20A0, 0x20CF, U_PUNCT, 0},  /* currency */
    {0x2190, 0x2211, U_PUNCT, 0},  /* arrows, mathematical operators */
    {0x2212, 0x2212, U_NORM, '-'}, /* minus */
    {0x2213, 0x2BFF, U_PUNCT, 0},  /* operators, technical, shapes, dingbats */
    {0x3000, 0x3000, U_SPACE, 0},
    {0x3001, 0x3003, U_PUNCT, 0},
    {0x3008, 0x3011, U_PUNCT, 0},
    {0x3014, 0x301F, U_PUNCT, 0},
    {0xFEFF, 0xFEFF, U_DROP, 0},
    {0xFF01, 0xFF0F, U_PUNCT, 0},
    {0xFF1A, 0xFF20, U_PUNCT, 0},
    {0xFF3B, 0xFF40, U_PUNCT, 0},
    {0xFF5B, 0xFF65, U_PUNCT, 0},
    {0xFFFD, 0xFFFD, U_PUNCT, 0},
    {0x1F000, 0x1FAFF, U_PUNCT, 0}, /* emoji and pictographs */
};

static const struct urange *ufind(uint32_t cp)
{
    size_t lo = 0, hi = AGN_ARRAY_LEN(uranges);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < uranges[mid].lo) hi = mid;
        else if (cp > uranges[mid].hi) lo = mid + 1;
        else return &uranges[mid];
    }
    return NULL;
}

/* Lower case beyond ASCII: Latin-1, Latin Extended-A, Greek, Cyrillic. */
static uint32_t lower_cp(uint32_t cp)
{
    if (cp < 0xC0) return cp;
    if (cp <= 0xDE) return cp == 0xD7 ? cp : cp + 0x20;
    if (cp < 0x100) return cp;
    if (cp <= 0x17F) {
        if (cp == 0x130) return 'i';
        if (cp == 0x178) return 0xFF;
        if ((cp <= 0x137 || (cp >= 0x14A && cp <= 0x177)) && !(cp & 1)) return cp + 1;
        if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) && (cp & 1))
            return cp + 1;
        return cp;
    }
    if (cp == 0x386) return 0x3AC;
    if (cp >= 0x388 && cp <= 0x38A) return cp + 0x25;
    if (cp == 0x38C) return 0x3CC;
    if (cp == 0x38E || cp == 0x38F) return cp + 0x3F;
    if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;
    if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
    if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
    return cp;
}

/* ---- pass 1: backslashes and character references ------------------------- */

static const struct entity {
    const char *name;
    uint32_t cp;
    int bare; /* also recognised without its '&' */
} entities[] = {
    {"amp", '&', 1}, {"lt", '<', 1}, {"gt", '>', 1}, {"quot", '"', 1}, {"apos", '\'', 1},
    {"nbsp", 0xA0, 1}, {"hellip", 0x2026, 1},
    {"mdash", 0x2014, 0}, {"ndash", 0x2013, 0}, {"minus", 0x2212, 0},
    {"lsquo", 0x2018, 0}, {"rsquo", 0x2019, 0}, {"sbquo", 0x201A, 0},
    {"ldquo", 0x201C, 0}, {"rdquo", 0x201D, 0}, {"bdquo", 0x201E, 0},
    {"laquo", 0xAB, 0}, {"raquo", 0xBB, 0}, {"bull", 0x2022, 0}, {"middot", 0xB7, 0},
    {"copy", 0xA9, 0}, {"reg", 0xAE, 0}, {"trade", 0x2122, 0}, {"deg", 0xB0, 0},
    {"euro", 0x20AC, 0}, {"pound", 0xA3, 0}, {"cent", 0xA2, 0}, {"yen", 0xA5, 0},
    {"sect", 0xA7, 0}, {"para", 0xB6, 0}, {"times", 0xD7, 0}, {"divide", 0xF7, 0},
    {"plusmn", 0xB1, 0}, {"iexcl", 0xA1, 0}, {"iquest", 0xBF, 0}, {"shy", 0xAD, 0},
    {"Agrave", 0xC0, 0}, {"Aacute", 0xC1, 0}, {"Acirc", 0xC2, 0}, {"Atilde", 0xC3, 0},
    {"Auml", 0xC4, 0}, {"Aring", 0xC5, 0}, {"AElig", 0xC6, 0}, {"Ccedil", 0xC7, 0},
    {"Egrave", 0xC8, 0}, {"Eacute", 0xC9, 0}, {"Ecirc", 0xCA, 0}, {"Euml", 0xCB, 0},
    {"Igrave", 0xCC, 0}, {"Iacute", 0xCD, 0}, {"Icirc", 0xCE, 0}, {"Iuml", 0xCF, 0},
    {"Ntilde", 0xD1, 0}, {"Ograve", 0xD2, 0}, {"Oacute", 0xD3, 0}, {"Ocirc", 0xD4, 0},
    {"Otilde", 0xD5, 0}, {"Ouml", 0xD6, 0}, {"Oslash", 0xD8, 0}, {"Ugrave", 0xD9, 0},
    {"Uacute", 0xDA, 0}, {"Ucirc", 0xDB, 0}, {"Uuml", 0xDC, 0}, {"Yacute", 0xDD, 0},
    {"szlig", 0xDF, 0}, {"agrave", 0xE0, 0}, {"aacute", 0xE1, 0}, {"acirc", 0xE2, 0},
    {"atilde", 0xE3, 0}, {"auml", 0xE4, 0}, {"aring", 0xE5, 0}, {"aelig", 0xE6, 0},
    {"ccedil", 0xE7, 0}, {"egrave", 0xE8, 0}, {"eacute", 0xE9, 0}, {"ecirc", 0xEA, 0},
    {"euml", 0xEB, 0}, {"igrave", 0xEC, 0}, {"iacute", 0xED, 0}, {"icirc", 0xEE, 0},
    {"iuml", 0xEF, 0}, {"ntilde", 0xF1, 0}, {"ograve", 0xF2, 0}, {"oacute", 0xF3, 0},
    {"ocirc", 0xF4, 0}, {"otilde", 0xF5, 0}, {"ouml", 0xF6, 0}, {"oslash", 0xF8, 0},
    {"ugrave", 0xF9, 0}, {"uacute", 0xFA, 0}, {"ucirc", 0xFB, 0}, {"uuml", 0xFC, 0},
    {"yacute", 0xFD, 0}, {"yuml", 0xFF, 0},
};

#define ENTITY_NAME_MAX 8

/* Windows-1252 for references to 128..159, which HTML (and AG News, with
 * "#151;" for a dash) read that way; 0 where cp1252 has no character. */
static const uint16_t cp1252[32] = {
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
};

/* The character a numeric reference stands for. */
static uint32_t numeric_cp(uint32_t n)
{
    if (n == 0 || (n >= 0xD800 && n <= 0xDFFF) || n > 0x10FFFF) return 0xFFFD;
    if (n >= 0x80 && n < 0xA0) return cp1252[n - 0x80] ? cp1252[n - 0x80] : ' ';
    if (n < 0x20 || n == 0x7F) return ' ';
    return n;
}

/* O is just past the text before a ';'.  Nothing before BASE may be looked
 * at: it is earlier decoded output (BASE > START) or nothing (BASE == START).
 * If the text ends in a character reference, replaces it with its character
 * and returns the new end; else returns NULL.  A bare reference (no '&') is
 * not taken right after a ';' or a decoded reference, so that decoded text
 * is never decoded again ("&amp;lt;" is "&lt;"). */
static unsigned char *entity(unsigned char *start, unsigned char *base, unsigned char *o)
{
    unsigned char *q = o;
    /* decimal: "&#39" or "#39" */
    while (q > base && o - q <= 7 && isdig[q[-1]]) q--;
    if (q < o && o - q <= 7 && q > base && q[-1] == '#') {
        unsigned char *hash = q - 1;
        int amp = hash > base && hash[-1] == '&';
        if (!amp && (hash > base ? hash[-1] == ';' : base > start)) return NULL;
        uint32_t n = 0;
        for (unsigned char *d = q; d < o; d++) n = n * 10 + (uint32_t)(*d - '0');
        if (amp || n >= 32) return put_utf8(amp ? hash - 1 : hash, numeric_cp(n));
        return NULL;
    }
    /* hexadecimal: "&#x27" only */
    q = o;
    while (q > base && o - q <= 6 && ishex[q[-1]]) q--;
    if (q < o && o - q <= 6 && q - base >= 3 && (q[-1] == 'x' || q[-1] == 'X') && q[-2] == '#' &&
        q[-3] == '&') {
        uint32_t n = 0;
        for (unsigned char *d = q; d < o; d++)
            n = n * 16 + (uint32_t)(isdig[*d] ? *d - '0' : (*d | 0x20) - 'a' + 10);
        return put_utf8(q - 3, numeric_cp(n));
    }
    /* named: "&amp", or a bare "amp" after no letter or digit */
    q = o;
    while (q > base && o - q <= ENTITY_NAME_MAX && isalph[q[-1]]) q--;
    size_t len = (size_t)(o - q);
    if (len < 2 || len > ENTITY_NAME_MAX) return NULL;
    int amp = q > base && q[-1] == '&';
    if (!amp && (q > base ? isdig[q[-1]] || q[-1] == ';' : base > start)) return NULL;
    for (size_t i = 0; i < AGN_ARRAY_LEN(entities); i++) {
        const struct entity *en = &entities[i];
        if ((amp || en->bare) && strlen(en->name) == len && memcmp(en->name, q, len) == 0)
            return put_utf8(amp ? q - 1 : q, en->cp);
    }
    return NULL;
}

/* The first '\\' or ';' in [P, E), or E: one pass for what would be two
 * memchr calls.  S <= P is where the text starts: the last bytes are
 * looked at with a load that ends at E and may begin before P, not
 * before S. */
static inline const char *find_special(const char *s, const char *p, const char *e)
{
#ifdef __SSE2__
    if (clean_sse2) {
        const __m128i bs = _mm_set1_epi8('\\'), sc = _mm_set1_epi8(';');
        for (; e - p >= 16; p += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, bs), _mm_cmpeq_epi8(v, sc)));
            if (m) return p + __builtin_ctz(m);
        }
        if (p < e && e - s >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(e - 16));
            unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, bs), _mm_cmpeq_epi8(v, sc)));
            m >>= 16 - (e - p); /* the bytes from P on */
            return m ? p + __builtin_ctz(m) : e;
        }
    }
#else
    (void)s;
#endif
    while (p < e && *p != '\\' && *p != ';') p++;
    return p;
}

size_t agn_tok_clean(const char *s, size_t n, char *out)
{
    pthread_once(&tables_once, init_tables);
    /* Both special bytes are rare: the runs between them are found with
     * find_special and copied with memcpy. */
    const char *p = s, *e = s + n;
    unsigned char *o = (unsigned char *)out, *base = o, *start = o;
    for (;;) {
        const char *nx = find_special(s, p, e);
        memcpy(o, p, (size_t)(nx - p));
        o += nx - p;
        if (nx == e) break;
        p = nx + 1;
        if (*nx == '\\') {
            *o++ = ' ';
        } else {
            unsigned char *d = entity(start, base, o);
            if (d) base = o = d;
            else *o++ = ';';
        }
    }
    return (size_t)(o - (unsigned char *)out);
}

/* ---- pass 2: tags, lower case, split -------------------------------------- */

static const char *const tag_names[] = {
    "a", "abbr", "acronym", "address", "b", "big", "blockquote", "body", "br", "caption",
    "center", "cite", "code", "dd", "del", "div", "dl", "dt", "em", "embed", "font", "form",
    "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "html", "i", "iframe", "img", "input",
    "ins", "kbd", "li", "link", "meta", "nobr", "object", "ol", "p", "param", "pre", "q", "s",
    "script", "small", "span", "strike", "strong", "style", "sub", "sup", "table", "tbody", "td",
    "th", "title", "tr", "tt", "u", "ul", "wbr",
};
#define TAG_NAME_MAX 10
#define TAG_MAX 1024 /* bytes from the name to the '>' */

static int is_tag_space(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* If S (at a '<') starts an HTML tag or comment, its length; else 0. */
static size_t tag_len(const unsigned char *s, const unsigned char *e)
{
    const unsigned char *p = s + 1;
    if (p < e && *p == '!') {
        p++;
    } else {
        if (p < e && *p == '/') p++;
        const unsigned char *name = p;
        while (p < e && p - name <= TAG_NAME_MAX && (isalph[*p] || isdig[*p])) p++;
        size_t len = (size_t)(p - name);
        if (len == 0 || len > TAG_NAME_MAX || p == e) return 0;
        if (!is_tag_space(*p) && *p != '/' && *p != '>') return 0;
        char lname[TAG_NAME_MAX + 1];
        for (size_t i = 0; i < len; i++) lname[i] = (char)low[name[i]];
        lname[len] = '\0';
        size_t lo = 0, hi = AGN_ARRAY_LEN(tag_names);
        int found = 0;
        while (lo < hi) { /* tag_names is sorted */
            size_t mid = (lo + hi) / 2;
            int cmp = strcmp(lname, tag_names[mid]);
            if (cmp == 0) {
                found = 1;
                break;
            }
            if (cmp < 0) hi = mid;
            else lo = mid + 1;
        }
        if (!found) return 0;
    }
    const unsigned char *start = p;
    while (p < e && p - start <= TAG_MAX && *p != '>' && *p != '<') p++;
    if (p == e || *p != '>' || p - start > TAG_MAX) return 0;
    return (size_t)(p + 1 - s);
}

/* What pass 2 carries from one item to the next. */
typedef struct {
    unsigned char *o;  /* output */
    size_t ntok;
    unsigned inword;   /* the last byte read belongs to a word: a word byte continues it */
    unsigned started;  /* a token was written: the next one gets a space before it */
    uint64_t bad, ctl;
} split_state;

#define SEP(st) do { *(st)->o = ' '; (st)->o += (st)->started; (st)->started = 1; (st)->ntok++; } while (0)

/* The items that leave the fast paths: a '<' (a tag, or punctuation), a
 * control character, a non-ASCII character, at S (S < E, S[E - S] == 0).
 * Returns the position after the item. */
static const unsigned char *split_slow(split_state *st, const unsigned char *s,
                                       const unsigned char *e)
{
    unsigned c = *s;
    switch (cls[c]) {
    case C_SPACE: /* a control character */
        st->ctl++;
        st->inword = 0;
        return s + 1;
    case C_LT: {
        size_t k = tag_len(s, e);
        st->inword = 0;
        if (k) return s + k;
        SEP(st); /* a '<' that starts no tag is punctuation */
        *st->o++ = '<';
        return s + 1;
    }
    default: /* C_HIGH */
        break;
    }
    uint32_t cp;
    int k = decode_utf8(s, &cp);
    s += k;
    if (cp == 0xFFFFFFFFu) {
        st->bad++;
        SEP(st);
        st->o = put_utf8(st->o, 0xFFFD);
        st->inword = 0;
        return s;
    }
    const struct urange *r = ufind(cp);
    if (!r) {
        if (!st->inword) {
            SEP(st);
            st->inword = 1;
        }
        st->o = put_utf8(st->o, lower_cp(cp));
        return s;
    }
    switch (r->what) {
    case U_SPACE:
        if (cp < 0xA0) st->ctl++;
        st->inword = 0;
        break;
    case U_DROP:
        break;
    case U_NORM:
        for (int i = 0; i < (r->ascii == '.' ? 3 : 1); i++) {
            SEP(st);
            *st->o++ = (unsigned char)r->ascii;
        }
        st->inword = 0;
        break;
    default: /* U_PUNCT */
        SEP(st);
        st->o = put_utf8(st->o, cp);
        st->inword = 0;
        break;
    }
    return s;
}

size_t agn_tok_split_ref(const char *text, size_t n, char *out, size_t *ntok_out, agn_tok_stats *st)
{
    pthread_once(&tables_once, init_tables);
    const unsigned char *s = (const unsigned char *)text, *e = s + n;
    split_state x = {(unsigned char *)out, 0, 0, 0, 0, 0};
    while (s < e) {
        unsigned c = *s;
        switch (cls[c]) {
        case C_WORD:
            if (!x.inword) SEP(&x);
            *x.o++ = low[c];
            x.inword = 1;
            s++;
            break;
        case C_PUNCT:
            SEP(&x);
            *x.o++ = (unsigned char)c;
            x.inword = 0;
            s++;
            break;
        default:
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                x.inword = 0;
                s++;
            } else {
                s = split_slow(&x, s, e);
            }
            break;
        }
    }
    if (ntok_out) *ntok_out = x.ntok;
    if (st) {
        st->invalid_utf8 += x.bad;
        st->controls += x.ctl;
    }
    return (size_t)(x.o - (unsigned char *)out);
}

/* The block loop of agn_tok_split looks at 64 bytes at a time: it copies
 * them lower-cased to a local buffer and makes three masks, bit i for
 * byte i: a word byte (ASCII letter or digit), a plain space (space, tab,
 * CR, LF: dropped), a byte for split_slow ('<', another control
 * character, a byte beyond ASCII); every other byte is punctuation.
 * From the masks, the tokens start at punctuation and at a word byte after
 * a non-word byte, and each token (or the part of a word in this block)
 * ends at the next start, space or slow byte.
 *
 * Four paths (simd.h; AGN_SIMD forces a lower one, and tests compare them
 * with the byte loop above):
 *   scalar  masks byte by byte; each token copied with one 16-byte copy
 *   sse2    masks with 16-byte compares; tokens as scalar
 *   avx2    masks with 32-byte compares; the block written in 16 steps of
 *           4 bytes, each one table lookup and byte shuffle (no branch per
 *           token)
 *   avx512  masks as avx2; the block written with two compress steps
 *           (needs AVX-512 VBMI2)
 * So the cost is per token (scalar, sse2) or per block (avx2, avx512), not
 * per byte. */
typedef struct {
    uint64_t word, space, slow;
} block_masks;

enum { PATH_SCALAR = AGN_SIMD_SCALAR, PATH_SSE2 = AGN_SIMD_SSE2, PATH_AVX2 = AGN_SIMD_AVX2,
       PATH_AVX512 = AGN_SIMD_AVX512 };

/* The 64 bytes at SRC to LBUF, lower-cased, and their masks: portable. */
static inline void load_block_c(const unsigned char *src, unsigned char *lbuf, block_masks *m)
{
    uint64_t w = 0, sp = 0, sl = 0;
    for (int i = 0; i < 64; i++) {
        unsigned c = src[i];
        lbuf[i] = low[c];
        if (cls[c] == C_WORD) w |= (uint64_t)1 << i;
        else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') sp |= (uint64_t)1 << i;
        else if (cls[c] != C_PUNCT) sl |= (uint64_t)1 << i;
    }
    m->word = w;
    m->space = sp;
    m->slow = sl;
}

#if defined(__x86_64__) && defined(__SSE2__) && (__GNUC__ >= 9 || defined(__clang__))
#define AGN_TOK_X86 1
#include <immintrin.h>
#define AVX2_TARGET __attribute__((target("avx2,bmi,bmi2,popcnt")))
#define WIDE_TARGET __attribute__((target("avx2,bmi,bmi2,popcnt,avx512f,avx512bw,avx512vbmi,avx512vbmi2")))

/* Bytes of V in [LO, LO + N) (N < 128): a signed compare after a shift. */
static inline __m128i in_range(__m128i v, int lo, int n)
{
    return _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((char)(-128 - lo))),
                          _mm_set1_epi8((char)(-128 + n)));
}

/* load_block_c with 16-byte compares. */
static inline void load_block_sse2(const unsigned char *src, unsigned char *lbuf, block_masks *m)
{
    uint64_t w = 0, sp = 0, sl = 0;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(src + 16 * k));
        v = _mm_or_si128(v, _mm_and_si128(in_range(v, 'A', 26), _mm_set1_epi8(0x20)));
        _mm_storeu_si128((__m128i *)(void *)(lbuf + 16 * k), v);
        __m128i isw = _mm_or_si128(in_range(v, 'a', 26), in_range(v, '0', 10));
        __m128i iss = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))),
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))));
        /* below 0x20 as signed bytes: controls and everything beyond ASCII */
        __m128i isl = _mm_andnot_si128(iss, _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        isl = _mm_or_si128(isl, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)),
                                             _mm_cmpeq_epi8(v, _mm_set1_epi8('<'))));
        w |= (uint64_t)(uint32_t)_mm_movemask_epi8(isw) << (16 * k);
        sp |= (uint64_t)(uint32_t)_mm_movemask_epi8(iss) << (16 * k);
        sl |= (uint64_t)(uint32_t)_mm_movemask_epi8(isl) << (16 * k);
    }
    m->word = w;
    m->space = sp;
    m->slow = sl;
}

AVX2_TARGET static inline __m256i in_range256(__m256i v, int lo, int n)
{
    return _mm256_cmpgt_epi8(_mm256_set1_epi8((char)(-128 + n)),
                             _mm256_add_epi8(v, _mm256_set1_epi8((char)(-128 - lo))));
}

/* load_block_c with 32-byte compares. */
AVX2_TARGET static inline void load_block_avx2(const unsigned char *src, unsigned char *lbuf,
                                               block_masks *m)
{
    uint64_t w = 0, sp = 0, sl = 0;
    for (int k = 0; k < 2; k++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(src + 32 * k));
        v = _mm256_or_si256(v, _mm256_and_si256(in_range256(v, 'A', 26), _mm256_set1_epi8(0x20)));
        _mm256_storeu_si256((__m256i *)(void *)(lbuf + 32 * k), v);
        __m256i isw = _mm256_or_si256(in_range256(v, 'a', 26), in_range256(v, '0', 10));
        __m256i iss = _mm256_or_si256(
            _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(' ')),
                            _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\t'))),
            _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('\n')),
                            _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\r'))));
        __m256i isl = _mm256_andnot_si256(iss, _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v));
        isl = _mm256_or_si256(isl, _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7f)),
                                                   _mm256_cmpeq_epi8(v, _mm256_set1_epi8('<'))));
        w |= (uint64_t)(uint32_t)_mm256_movemask_epi8(isw) << (32 * k);
        sp |= (uint64_t)(uint32_t)_mm256_movemask_epi8(iss) << (32 * k);
        sl |= (uint64_t)(uint32_t)_mm256_movemask_epi8(isl) << (32 * k);
    }
    m->word = w;
    m->space = sp;
    m->slow = sl;
}

/* The avx2 step: for 4 bytes, the 4 bits of SEP (a space before the byte)
 * and the 4 of KEEP (the byte is written) index a table of byte shuffles
 * that pick the kept bytes and leave a 0 where a space goes; the 0 becomes
 * a space by an unsigned maximum with ' ', as every kept byte is above it. */
static uint8_t shuf4[256][8];

static void init_shuf4(void)
{
    for (unsigned idx = 0; idx < 256; idx++) {
        unsigned sep = idx & 15, keep = idx >> 4, k = 0;
        memset(shuf4[idx], 0x80, 8);
        for (unsigned j = 0; j < 4; j++) {
            if ((sep >> j) & 1) shuf4[idx][k++] = 0x80;
            if ((keep >> j) & 1) shuf4[idx][k++] = (uint8_t)j;
        }
    }
}

/* The bytes of a block that pass 2 keeps (KEEP) with a space before those
 * that start a token (SEP, a subset of KEEP), written at O; writes up to
 * 128 + 8 bytes at O; returns the new end. */
AVX2_TARGET static inline unsigned char *emit_block256(const unsigned char *lbuf, uint64_t sep,
                                                       uint64_t keep, unsigned char *o)
{
    const __m128i space = _mm_set1_epi8(' ');
    /* Each half of the block starts at a place known in advance, so the
     * two chains of store addresses do not wait for each other; the first
     * half is written first, as its last store may run into the second
     * half's first bytes. */
    unsigned char *half[2] = {o, o + _mm_popcnt_u32((uint32_t)sep) + _mm_popcnt_u32((uint32_t)keep)};
    unsigned char *end = half[1] + _mm_popcnt_u32((uint32_t)(sep >> 32)) +
                         _mm_popcnt_u32((uint32_t)(keep >> 32));
    for (int h = 0; h < 2; h++) {
        unsigned char *p = half[h];
        for (int l = 32 * h; l < 32 * h + 32; l += 16) {
            __m128i lane = _mm_loadu_si128((const __m128i *)(const void *)(lbuf + l));
            for (int c = 0; c < 16; c += 4) {
                unsigned idx = (unsigned)((sep >> (l + c)) & 15) | (unsigned)((keep >> (l + c)) & 15) << 4;
                __m128i ctl = _mm_add_epi8(_mm_loadl_epi64((const __m128i *)(const void *)shuf4[idx]),
                                           _mm_set1_epi8((char)c));
                __m128i r = _mm_max_epu8(_mm_shuffle_epi8(lane, ctl), space);
                _mm_storel_epi64((__m128i *)(void *)p, r);
                p += _mm_popcnt_u32(idx); /* not a table: the store addresses form a chain */
            }
        }
    }
    return end;
}

/* The avx512 step: the block is spread to 128 bytes, a space before each
 * byte, and the bytes whose bits are set in the interleaved masks are
 * packed together in two compress steps.  Writes up to 128 bytes at O;
 * returns the new end. */
WIDE_TARGET static inline unsigned char *emit_block512(const unsigned char *lbuf, uint64_t sep,
                                                       uint64_t keep, unsigned char *o)
{
    static const uint8_t idx[128] = {
#define P(j) 64, j
        P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7), P(8), P(9), P(10), P(11), P(12), P(13),
        P(14), P(15), P(16), P(17), P(18), P(19), P(20), P(21), P(22), P(23), P(24), P(25), P(26),
        P(27), P(28), P(29), P(30), P(31), P(32), P(33), P(34), P(35), P(36), P(37), P(38), P(39),
        P(40), P(41), P(42), P(43), P(44), P(45), P(46), P(47), P(48), P(49), P(50), P(51), P(52),
        P(53), P(54), P(55), P(56), P(57), P(58), P(59), P(60), P(61), P(62), P(63),
#undef P
    };
    const uint64_t even = 0x5555555555555555ull, odd = 0xAAAAAAAAAAAAAAAAull;
    __m512i v = _mm512_loadu_si512((const void *)lbuf), sp = _mm512_set1_epi8(' ');
    __m512i a = _mm512_permutex2var_epi8(v, _mm512_loadu_si512((const void *)idx), sp);
    __m512i b = _mm512_permutex2var_epi8(v, _mm512_loadu_si512((const void *)(idx + 64)), sp);
    uint64_t m0 = _pdep_u64(sep, even) | _pdep_u64(keep, odd);
    uint64_t m1 = _pdep_u64(sep >> 32, even) | _pdep_u64(keep >> 32, odd);
    _mm512_storeu_si512((void *)o, _mm512_maskz_compress_epi8(m0, a));
    o += _mm_popcnt_u64(m0);
    _mm512_storeu_si512((void *)o, _mm512_maskz_compress_epi8(m1, b));
    return o + _mm_popcnt_u64(m1);
}
#endif

/* The block loop, for the path PATH (a constant where it is inlined). */
static inline __attribute__((always_inline)) size_t
split_blocks(const char *text, size_t n, char *out, size_t *ntok_out, agn_tok_stats *st, int path)
{
    const unsigned char *s = (const unsigned char *)text, *e = s + n;
    unsigned char *o = (unsigned char *)out;
    /* out has room for 4N bytes: a token is stored with 16 bytes while
     * that many are left, else copied to its length */
    const unsigned char *olim = o + 4 * n;
    unsigned char lbuf[64 + 16], tail[64];
    memset(lbuf + 64, ' ', 16);
    size_t ntok = 0;
    unsigned started = 0;
    uint64_t inword = 0;
    split_state x = {o, 0, 0, 0, 0, 0};

    while (s < e) {
        size_t avail = (size_t)(e - s), lim = avail < 64 ? avail : 64;
        const unsigned char *src = s;
        block_masks m;
        if (avail < 64) { /* the last bytes, padded with spaces */
            memcpy(tail, s, avail);
            memset(tail + avail, ' ', 64 - avail);
            src = tail;
        }
        switch (path) {
#ifdef AGN_TOK_X86
        case PATH_SSE2: load_block_sse2(src, lbuf, &m); break;
        case PATH_AVX2:
        case PATH_AVX512: load_block_avx2(src, lbuf, &m); break;
#endif
        default: load_block_c(src, lbuf, &m); break;
        }
        uint64_t w = m.word, punct = ~(w | m.space | m.slow);
        uint64_t starts = punct | (w & ~(w << 1 | inword));
        uint64_t ends = starts | m.space | m.slow; /* a piece ends at its next bit */
        size_t stop = m.slow ? (size_t)__builtin_ctzll(m.slow) : lim; /* bytes done here */
        if (stop < 64) starts &= ((uint64_t)1 << stop) - 1;
        uint64_t piece = inword & w; /* a word carried over from the last block */
#ifdef AGN_TOK_X86
        if (path >= PATH_AVX2 && olim - o >= 128 + 8) {
            /* every byte kept up to STOP, a space before each start but the
             * first of the text */
            uint64_t keep = (w | punct) & (stop < 64 ? ((uint64_t)1 << stop) - 1 : ~(uint64_t)0);
            ntok += (size_t)__builtin_popcountll(starts);
            if (!started && starts) {
                starts &= starts - 1;
                started = 1;
            }
            if (path == PATH_AVX512) o = emit_block512(lbuf, starts, keep, o);
            else o = emit_block256(lbuf, starts, keep, o);
            starts = piece = 0;
        }
#endif
        /* the tokens one by one; a word carried over goes on without a space */
        while (piece | starts) {
            size_t t = 0;
            if (!piece) {
                t = (size_t)__builtin_ctzll(starts);
                starts &= starts - 1;
                *o = ' ';
                o += started;
                started = 1;
                ntok++;
            }
            piece = 0;
            uint64_t rest = ends >> t >> 1;
            size_t len = rest ? (size_t)__builtin_ctzll(rest) + 1 : 64 - t;
            if (__builtin_expect(len <= 16 && olim - o >= 16, 1)) memcpy(o, lbuf + t, 16);
            else memcpy(o, lbuf + t, len);
            o += len;
        }
        if (stop == lim) {
            inword = lim == 64 ? w >> 63 : 0;
            s += lim;
            continue;
        }
        /* a byte for the slow path */
        x.o = o;
        x.ntok = ntok;
        x.started = started;
        x.inword = (unsigned)(stop ? (w >> (stop - 1)) & 1 : inword);
        s = split_slow(&x, s + stop, e);
        o = x.o;
        ntok = x.ntok;
        started = x.started;
        inword = x.inword;
    }
    if (ntok_out) *ntok_out = ntok;
    if (st) {
        st->invalid_utf8 += x.bad;
        st->controls += x.ctl;
    }
    return (size_t)(o - (unsigned char *)out);
}

typedef size_t split_func(const char *, size_t, char *, size_t *, agn_tok_stats *);

static size_t split_scalar(const char *text, size_t n, char *out, size_t *ntok, agn_tok_stats *st)
{
    return split_blocks(text, n, out, ntok, st, PATH_SCALAR);
}

#ifdef AGN_TOK_X86
static size_t split_sse2(const char *text, size_t n, char *out, size_t *ntok, agn_tok_stats *st)
{
    return split_blocks(text, n, out, ntok, st, PATH_SSE2);
}

AVX2_TARGET static size_t split_avx2(const char *text, size_t n, char *out, size_t *ntok,
                                     agn_tok_stats *st)
{
    return split_blocks(text, n, out, ntok, st, PATH_AVX2);
}

WIDE_TARGET static size_t split_avx512(const char *text, size_t n, char *out, size_t *ntok,
                                       agn_tok_stats *st)
{
    return split_blocks(text, n, out, ntok, st, PATH_AVX512);
}
#endif

static split_func *split_fn = split_scalar;
static agn_simd_level split_level = AGN_SIMD_SCALAR;

/* The highest path that the processor runs and AGN_SIMD allows: avx512
 * needs VBMI2 besides simd.h's level (Ice Lake, Zen 4 and later). */
static void choose_split(void)
{
#ifdef AGN_TOK_X86
    agn_simd_level l = agn_simd_level_now();
    init_shuf4();
    __builtin_cpu_init();
    if (l >= AGN_SIMD_AVX512 && __builtin_cpu_supports("avx512vbmi") &&
        __builtin_cpu_supports("avx512vbmi2")) {
        split_fn = split_avx512;
        split_level = AGN_SIMD_AVX512;
    } else if (l >= AGN_SIMD_AVX2) {
        split_fn = split_avx2;
        split_level = AGN_SIMD_AVX2;
    } else if (l >= AGN_SIMD_SSE2) {
        split_fn = split_sse2;
        split_level = AGN_SIMD_SSE2;
    }
#endif
}

const char *agn_tok_split_path(void)
{
    pthread_once(&tables_once, init_tables);
    return agn_simd_name(split_level);
}

size_t agn_tok_split(const char *text, size_t n, char *out, size_t *ntok_out, agn_tok_stats *st)
{
    pthread_once(&tables_once, init_tables);
    return split_fn(text, n, out, ntok_out, st);
}

/* ---- both ---------------------------------------------------------------- */

size_t agn_tokenize(agn_tokenizer *t, int ntexts, const char *const text[], const size_t len[],
                    char *out, size_t *ntok, agn_tok_stats *st)
{
    size_t total = 0;
    for (int i = 0; i < ntexts; i++) total += len[i] + 1;
    if (total + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < total + 1) cap *= 2;
        free(t->scratch);
        t->scratch = agn_xmalloc(cap);
        t->cap = cap;
    }
    size_t n = 0;
    for (int i = 0; i < ntexts; i++) {
        if (i) t->scratch[n++] = ' ';
        n += agn_tok_clean(text[i], len[i], t->scratch + n);
    }
    t->scratch[n] = '\0';
    return agn_tok_split(t->scratch, n, out, ntok, st);
}
