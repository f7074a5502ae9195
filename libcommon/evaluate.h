/* evaluate.h: classification metrics from a confusion matrix (accuracy,
 * macro F1, per-class precision, recall and F1) and their text and JSON
 * reports, shared by agn-train's validation and agn-eval.  Counts are kept
 * as doubles so that ranks can add their matrices with one all-reduce. */
#ifndef AGN_EVALUATE_H
#define AGN_EVALUATE_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    int C;            /* classes */
    double *confusion; /* [C*C]: row = true class, column = predicted */
    double loss_sum;  /* summed cross-entropy over the examples counted */
    double n;         /* examples counted (those with a known label) */
} agn_confusion;

typedef struct {
    double accuracy, macro_f1, loss; /* loss: mean cross-entropy */
    double *precision, *recall, *f1; /* [C] */
    double *support;                 /* [C] true examples per class */
} agn_metrics;

void agn_confusion_init(agn_confusion *cm, int C);
void agn_confusion_reset(agn_confusion *cm);
void agn_confusion_free(agn_confusion *cm);
/* Adds one example: its true class, the predicted class. */
void agn_confusion_add(agn_confusion *cm, int truth, int pred);

/* Computes the metrics; a class never predicted has precision 0, a class
 * never true has recall 0 (and counts in the macro average as F1 0 only if
 * it was predicted; classes absent from both are left out of it). */
void agn_metrics_compute(agn_metrics *m, const agn_confusion *cm);
void agn_metrics_free(agn_metrics *m);

/* Human report: accuracy, macro F1, loss, per-class table, confusion matrix. */
void agn_metrics_print(FILE *fp, const agn_metrics *m, const agn_confusion *cm, char *const *class_names);
/* The same as one JSON object. */
void agn_metrics_json(FILE *fp, const agn_metrics *m, const agn_confusion *cm, char *const *class_names);
/* Writes S as a JSON string literal. */
void agn_json_string(FILE *fp, const char *s);

#endif
