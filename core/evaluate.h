/* strata — measuring a classifier on a dataset. */
#pragma once

#include "dataset.h"
#include "pipeline.h"

G_BEGIN_DECLS

/* Samples order[start .. start + count - 1] of ds (start .. when order is
 * NULL) as one batch, their labels in labels. */
StTensor *st_dataset_gather_batch (const StDataset *ds, const int *order, int start,
                                   int count, int *labels);

/* Runs the classifier on ds (samples through the prefix) and fills a
 * confusion matrix, rows the true class and columns the predicted one,
 * n_classes x n_classes; returns the mean cross-entropy loss or a
 * negative value with error set. */
double st_evaluate (StPipeline *p, const StDataset *ds, const StRunContext *ctx,
                    int batch_size, guint64 *confusion, GError **error);

/* Prints accuracy, per-class precision and recall and the confusion matrix
 * (as text, or as one JSON object) to standard output. */
void st_print_evaluation (const StPipeline *p, const StDataset *ds, const guint64 *confusion,
                          double loss, gboolean json);
G_END_DECLS
