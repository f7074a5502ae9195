/* evaluate.c: classification metrics and their reports (evaluate.h). */
#include "config.h"
#include "evaluate.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- confusion matrix ------------------------------------------------------ */

void agn_confusion_init(agn_confusion *cm, int C)
{
    cm->C = C;
    cm->confusion = agn_xcalloc((size_t)C * (size_t)C, sizeof *cm->confusion);
    cm->loss_sum = 0;
    cm->n = 0;
}

void agn_confusion_reset(agn_confusion *cm)
{
    memset(cm->confusion, 0, (size_t)cm->C * (size_t)cm->C * sizeof *cm->confusion);
    cm->loss_sum = 0;
    cm->n = 0;
}

void agn_confusion_free(agn_confusion *cm)
{
    free(cm->confusion);
    memset(cm, 0, sizeof *cm);
}

void agn_confusion_add(agn_confusion *cm, int truth, int pred)
{
    if (truth < 0 || truth >= cm->C || pred < 0 || pred >= cm->C) return;
    cm->confusion[(size_t)truth * (size_t)cm->C + (size_t)pred] += 1;
    cm->n += 1;
}

/* ---- metrics ------------------------------------------------------------------ */

void agn_metrics_compute(agn_metrics *m, const agn_confusion *cm)
{
    int C = cm->C;
    m->precision = agn_xcalloc((size_t)C, sizeof(double));
    m->recall = agn_xcalloc((size_t)C, sizeof(double));
    m->f1 = agn_xcalloc((size_t)C, sizeof(double));
    m->support = agn_xcalloc((size_t)C, sizeof(double));
    double total = 0, correct = 0, f1_sum = 0;
    int f1_n = 0;
    for (int c = 0; c < C; c++) {
        double tp = cm->confusion[(size_t)c * C + c], row = 0, col = 0;
        for (int j = 0; j < C; j++) {
            row += cm->confusion[(size_t)c * C + j];
            col += cm->confusion[(size_t)j * C + c];
        }
        total += row;
        correct += tp;
        m->support[c] = row;
        m->precision[c] = col > 0 ? tp / col : 0;
        m->recall[c] = row > 0 ? tp / row : 0;
        double pr = m->precision[c] + m->recall[c];
        m->f1[c] = pr > 0 ? 2 * m->precision[c] * m->recall[c] / pr : 0;
        if (row > 0 || col > 0) {
            f1_sum += m->f1[c];
            f1_n++;
        }
    }
    m->accuracy = total > 0 ? correct / total : 0;
    m->macro_f1 = f1_n ? f1_sum / f1_n : 0;
    m->loss = cm->n > 0 ? cm->loss_sum / cm->n : NAN;
}

void agn_metrics_free(agn_metrics *m)
{
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
    memset(m, 0, sizeof *m);
}

/* ---- reports ---------------------------------------------------------------------- */

static const char *cname(char *const *names, int c, char *buf, size_t n)
{
    if (names && names[c]) return names[c];
    snprintf(buf, n, "%d", c);
    return buf;
}

void agn_metrics_print(FILE *fp, const agn_metrics *m, const agn_confusion *cm, char *const *class_names)
{
    int C = cm->C;
    char b[32];
    int w = 5;
    for (int c = 0; c < C; c++) {
        int l = (int)strlen(cname(class_names, c, b, sizeof b));
        if (l > w) w = l;
    }
    fprintf(fp, "examples   %.0f\n", cm->n);
    fprintf(fp, "accuracy   %.4f\n", m->accuracy);
    fprintf(fp, "macro_f1   %.4f\n", m->macro_f1);
    if (isfinite(m->loss)) fprintf(fp, "loss       %.4f\n", m->loss);
    fprintf(fp, "\n%-*s  %9s  %9s  %9s  %7s\n", w, "class", "precision", "recall", "f1", "support");
    for (int c = 0; c < C; c++)
        fprintf(fp, "%-*s  %9.4f  %9.4f  %9.4f  %7.0f\n", w, cname(class_names, c, b, sizeof b), m->precision[c],
                m->recall[c], m->f1[c], m->support[c]);
    fprintf(fp, "\nconfusion matrix (rows: true class, columns: predicted)\n%-*s", w, "");
    for (int c = 0; c < C; c++) fprintf(fp, "  %*d", 7, c);
    fputc('\n', fp);
    for (int r = 0; r < C; r++) {
        fprintf(fp, "%-*s", w, cname(class_names, r, b, sizeof b));
        for (int c = 0; c < C; c++) fprintf(fp, "  %7.0f", cm->confusion[(size_t)r * C + c]);
        fputc('\n', fp);
    }
}

void agn_json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(fp, "\\%c", *p);
        else if (*p < 0x20) fprintf(fp, "\\u%04x", *p);
        else fputc(*p, fp);
    }
    fputc('"', fp);
}

void agn_metrics_json(FILE *fp, const agn_metrics *m, const agn_confusion *cm, char *const *class_names)
{
    int C = cm->C;
    char b[32];
    fprintf(fp, "{\"examples\": %.0f, \"accuracy\": %.6f, \"macro_f1\": %.6f, ", cm->n, m->accuracy, m->macro_f1);
    if (isfinite(m->loss)) fprintf(fp, "\"loss\": %.6f, ", m->loss);
    else fprintf(fp, "\"loss\": null, ");
    fprintf(fp, "\"classes\": [");
    for (int c = 0; c < C; c++) {
        fprintf(fp, "%s{\"id\": %d, \"name\": ", c ? ", " : "", c);
        agn_json_string(fp, cname(class_names, c, b, sizeof b));
        fprintf(fp, ", \"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %.0f}", m->precision[c],
                m->recall[c], m->f1[c], m->support[c]);
    }
    fprintf(fp, "], \"confusion\": [");
    for (int r = 0; r < C; r++) {
        fprintf(fp, "%s[", r ? ", " : "");
        for (int c = 0; c < C; c++) fprintf(fp, "%s%.0f", c ? ", " : "", cm->confusion[(size_t)r * C + c]);
        fputc(']', fp);
    }
    fprintf(fp, "]}\n");
}
