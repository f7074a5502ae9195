/* t-tokenizer.c: the two passes of the tokenizer on cases worked out by
 * hand from the rules in tokenizer.h: references at their limits, tags,
 * UTF-8 edge cases (maximal ill-formed subsequences as Unicode and Python
 * define them), the invariants of the output on random bytes, and the
 * block loop of pass 2 against its plain byte loop on random texts. */
#include "config.h"

#include "simd.h"
#include "tokenizer.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

/* tok IN, WANT: the tokens of IN (one text) must be WANT. */
static void tok(const char *in, const char *want, int line)
{
    static agn_tokenizer *t;
    if (!t) t = agn_tokenizer_new();
    size_t n = strlen(in);
    char *out = agn_xmalloc(AGN_TOKENIZE_BOUND(n, 1));
    const char *texts[1] = {in};
    size_t len[1] = {n};
    size_t m = agn_tokenize(t, 1, texts, len, out, NULL, NULL);
    if (m != strlen(want) || memcmp(out, want, m) != 0) {
        fprintf(stderr, "t-tokenizer.c:%d: FAIL: '%s'\n   got '%.*s'\n  want '%s'\n", line, in,
                (int)m, out, want);
        failures++;
    }
    free(out);
}
#define TOK(in, want) tok(in, want, __LINE__)

#define R "\xEF\xBF\xBD" /* U+FFFD */

static void test_cases(void)
{
    /* backslashes */
    TOK("dwindling\\band \\$10 a\\\\b", "dwindling band $ 10 a b");
    /* numeric references: limits, bare forms, cp1252 */
    TOK("#39;s &#39;s #36;5 &#x24;5 &#X41;", "' s ' s $ 5 $ 5 a");
    TOK("#31; #32; &#9;x", "# 31 ; x");                      /* bare below 32 kept; #32 is a space */
    TOK("&#1234567; #12345678;", R " # 12345678 ;");
    TOK("&#0; &#xD800; &#x110000;", R " " R " " R);
    TOK("a #151; b #146;s #150;", "a - b ' s -");
    TOK("&#129;x", "x");                                       /* undefined in cp1252: a space */
    /* named references */
    TOK("AT&amp;T S amp;P quot;q quot; &lt;3", "at & t s & p \" q \" < 3");
    TOK("xamp; 5quot; a;amp; &amp;lt; &amp;#39;", "xamp ; 5quot ; a ; amp ; & lt ; & # 39 ;");
    TOK("&eacute;t&Eacute; &copy; &bogus; &mdash;", "\xC3\xA9t\xC3\xA9 \xC2\xA9 & bogus ; -");
    TOK("x hellip; &hellip;", "x . . . . . .");
    /* tags */
    TOK("<b>Bold</b> <A HREF=\"x\">l</A> <br/> <!-- c -->z", "bold l z");
    TOK("<bx> x < y <MSFT.O> </ b> <b", "< bx > x < y < msft . o > < / b > < b");
    TOK("&lt;p&gt;para&lt;/p&gt;", "para");
    /* splitting and case */
    TOK("Wall St.'s $2.6 bln, U.S.A!", "wall st . ' s $ 2 . 6 bln , u . s . a !");
    TOK("  \t\r\n  ", "");
    TOK("MiXeD123abc", "mixed123abc");
    /* UTF-8: letters, spaces, drops, normalisation, symbols */
    TOK("\xC3\x80\xC3\x89\xC5\x81\xCE\x91\xD0\x96 \xE4\xB8\xAD\xE6\x96\x87",
        "\xC3\xA0\xC3\xA9\xC5\x82\xCE\xB1\xD0\xB6 \xE4\xB8\xAD\xE6\x96\x87");
    TOK("a\xE2\x80\x83" "b co\xC2\xAD" "op x\xE2\x80\x8By", "a b coop xy");
    TOK("\xE2\x80\x9CHi\xE2\x80\x9D \xE2\x80\x94 it\xE2\x80\x99s",
        "\" hi \" - it ' s");
    TOK("5\xE2\x82\xAC \xF0\x9F\x98\x80x \xC2\xA9", "5 \xE2\x82\xAC \xF0\x9F\x98\x80 x \xC2\xA9");
    /* UTF-8: ill-formed sequences, one U+FFFD per maximal subpart */
    TOK("a\x80" "b", "a " R " b");
    TOK("\xC0\xAF", R " " R);
    TOK("\xE2\x82" "x", R " x");
    TOK("\xED\xA0\x80", R " " R " " R);
    TOK("\xF4\x90\x80\x80", R " " R " " R " " R);
    TOK("\xF0\x9F\x98", R);
    TOK("\xFF\xFE", R " " R);
    /* controls and NUL separate */
    TOK("a\x01" "b\x7F" "c", "a b c");
}

static void test_nul_and_join(void)
{
    agn_tokenizer *t = agn_tokenizer_new();
    const char a[] = "x\0y", b[] = "Z#39;";
    const char *texts[2] = {a, b};
    size_t len[2] = {3, 5}, ntok;
    char out[64];
    agn_tok_stats st = {0, 0};
    size_t m = agn_tokenize(t, 2, texts, len, out, &ntok, &st);
    if (m != 7 || memcmp(out, "x y z '", 7) != 0 || ntok != 4 || st.controls != 1) {
        fprintf(stderr, "t-tokenizer.c: FAIL: NUL and join: '%.*s' ntok %zu ctl %llu\n", (int)m,
                out, ntok, (unsigned long long)st.controls);
        failures++;
    }
    agn_tokenizer_free(t);
}

/* Random bytes: the output is valid UTF-8, tokens are separated by single
 * spaces, none empty, none with a control character, within the bound. */
static void test_random(void)
{
    agn_tokenizer *t = agn_tokenizer_new();
    unsigned long x = 12345;
    static char in[2048];
    static char out[AGN_TOKENIZE_BOUND(2048, 1)];
    const char *alphabet = "aZ9 ;&#<>/!\\lt;amp;b>\t\n";
    for (int iter = 0; iter < 3000 && failures < 5; iter++) {
        size_t n = 1 + (x >> 5) % sizeof in;
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            unsigned r = (unsigned)(x >> 33);
            in[i] = r % 3 ? (char)(r >> 8) : alphabet[(r >> 8) % strlen(alphabet)];
        }
        const char *texts[1] = {in};
        size_t len[1] = {n};
        size_t m = agn_tokenize(t, 1, texts, len, out, NULL, NULL);
        int ok = m <= AGN_TOKENIZE_BOUND(n, 1);
        ok = ok && (m == 0 || (out[0] != ' ' && out[m - 1] != ' '));
        for (size_t i = 0; ok && i < m;) {
            unsigned char c = (unsigned char)out[i];
            if (c < 0x20 || c == 0x7F) ok = 0;
            else if (c == ' ') {
                ok = i + 1 < m && out[i + 1] != ' ';
                i++;
            }
            else if (c < 0x80) i++;
            else { /* valid UTF-8 only */
                int k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
                if (!k || i + (size_t)k > m) ok = 0;
                for (int j = 1; ok && j < k; j++)
                    if (((unsigned char)out[i + (size_t)j] & 0xC0) != 0x80) ok = 0;
                i += (size_t)(k ? k : 1);
            }
        }
        if (!ok) {
            fprintf(stderr, "t-tokenizer.c: FAIL: random input %d breaks the output rules\n", iter);
            failures++;
        }
    }
    agn_tokenizer_free(t);
}

/* The block loop of agn_tok_split against the byte loop of
 * agn_tok_split_ref: random texts of every length from 0 to 300 (words of
 * mixed case up to 40 bytes, so across the 16-byte copies and the 64-byte
 * blocks, punctuation, runs of white space, and now and then a tag, a
 * control character, UTF-8 good and bad), each in an exactly sized
 * allocation with its NUL and written to an output of exactly 4N bytes,
 * so that ASan sees any access past either.  Output, token count and
 * statistics must be the same. */
static void test_block_loop(void)
{
    static const char *const pieces[] = {
        " ", "  ", "\t", "\r\n", ".", ",", "'", "$", "(", ")", "-", "&", "<b>", "<", "</p >",
        "\x01", "\x7f", "\xC3\x89", "\xE2\x80\x94", "\xE2\x80\xA6", "\xC2\xA0", "\xF0\x9F\x98\x80",
        "\x80", "\xE2\x82", "\xFF", "\xC2\xAD",
    };
    unsigned long x = 987654321;
    int cases = 0;
    for (int iter = 0; iter < 20000 && failures < 5; iter++) {
        char text[400];
        size_t n = 0, want = (size_t)(iter % 301);
        while (n < want) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            unsigned r = (unsigned)(x >> 33);
            if (r % 4) { /* a word */
                size_t k = r % 16 == 0 ? 17 + (r >> 4) % 24 : 1 + (r >> 4) % 9;
                for (size_t i = 0; i < k && n < want; i++)
                    text[n++] = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"[(r >> 9) % 36 * (i + 1) % 36];
            } else if ((r >> 4) % 8 == 0 || n < 2) { /* something rarer */
                const char *p = pieces[(r >> 8) % (sizeof pieces / sizeof pieces[0])];
                for (; *p && n < want; p++) text[n++] = *p;
            } else { /* a space or punctuation */
                text[n++] = (r >> 8) % 3 ? ' ' : ".,;:!?\"'()-/"[(r >> 10) % 12];
            }
        }
        char *in = agn_xmalloc(n + 1), *o1 = agn_xmalloc(4 * n + 1), *o2 = agn_xmalloc(4 * n + 1);
        memcpy(in, text, n);
        in[n] = '\0';
        size_t t1, t2;
        agn_tok_stats s1 = {0, 0}, s2 = {0, 0};
        size_t m1 = agn_tok_split(in, n, o1, &t1, &s1);
        size_t m2 = agn_tok_split_ref(in, n, o2, &t2, &s2);
        if (m1 != m2 || memcmp(o1, o2, m1) != 0 || t1 != t2 ||
            s1.invalid_utf8 != s2.invalid_utf8 || s1.controls != s2.controls) {
            fprintf(stderr, "t-tokenizer.c: FAIL: block loop differs on random text %d\n"
                    "  got  '%.*s' (%zu tokens)\n  want '%.*s' (%zu tokens)\n",
                    iter, (int)m1, o1, t1, (int)m2, o2, t2);
            failures++;
        }
        cases += m2 > 0;
        free(in);
        free(o1);
        free(o2);
    }
    if (cases < 19000) {
        fprintf(stderr, "t-tokenizer.c: FAIL: only %d of the random texts gave tokens\n", cases);
        failures++;
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    /* Every path of the tokenizer this processor runs (simd.h): the parent
     * runs the highest, and runs itself again under AGN_SIMD for each lower
     * one, so each is held to the cases and to the byte loop. */
    pid_t again[AGN_SIMD_NLEVELS];
    int nagain = 0;
    if (!getenv("AGN_SIMD")) {
        for (int l = AGN_SIMD_SCALAR; l < AGN_SIMD_AVX512 && l < (int)agn_simd_level_now(); l++) {
            if (!agn_simd_cpu_has((agn_simd_level)l)) {
                printf("skip - the %s path: this processor lacks it\n", agn_simd_name((agn_simd_level)l));
                continue;
            }
            fflush(NULL);
            pid_t p = fork();
            if (p == 0) {
                setenv("AGN_SIMD", agn_simd_name((agn_simd_level)l), 1);
                execv(argv[0], argv);
                _exit(127);
            }
            if (p > 0) again[nagain++] = p;
        }
    }
    test_cases();
    test_nul_and_join();
    test_random();
    test_block_loop();
    for (int i = 0; i < nagain; i++) {
        int status;
        if (waitpid(again[i], &status, 0) != again[i] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "t-tokenizer.c: FAIL: a run under AGN_SIMD failed\n");
            failures++;
        }
    }
    const char *forced = getenv("AGN_SIMD");
    int fl = forced ? agn_simd_parse(forced) : -1;
    if (!forced && strcmp(agn_tok_split_path(), "avx512") != 0)
        printf("skip - the avx512 path: this processor lacks AVX-512 with VBMI2\n");
    if (fl >= 0 && fl < AGN_SIMD_AVX512 && strcmp(forced, agn_tok_split_path()) != 0) {
        fprintf(stderr, "t-tokenizer.c: FAIL: AGN_SIMD=%s ran the %s path\n", forced,
                agn_tok_split_path());
        failures++;
    }
    if (failures) fprintf(stderr, "%d case(s) failed\n", failures);
    else printf("ok - tokenizer cases, NUL and join, random bytes, block loop = byte loop (%s path)\n",
                agn_tok_split_path());
    return failures ? 1 : 0;
}
