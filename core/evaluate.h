/* strata — measuring a classifier on a dataset. */
#pragma once

#include "dataset.h"
#include "pipeline.h"

G_BEGIN_DECLS

/* Samples order[start .. start + count - 1] of ds (start .. when order is
 * NULL) as one batch, their labels in labels. */
StTensor *st_dataset_gather_batch (const StDataset *ds, const int *order, int start,
                                   int count, int *labels);

/* One class's figures. */
typedef struct {
  char *name;                  /* the pipeline's label, the data's class name, or the index */
  double precision, recall;    /* 0 when the class was never predicted / never present */
  guint64 images;              /* of this class in the data */
} StClassScore;

/* How a classifier did on a dataset: data for the caller to present. */
typedef struct {
  char *pipeline;              /* st_pipeline_name */
  int n_classes;               /* the pipeline's class scores */
  guint64 images, correct;
  double accuracy;             /* correct / images; 0 without images */
  double loss;                 /* mean cross-entropy */
  StClassScore *classes;       /* n_classes */
  guint64 *confusion;          /* n_classes x n_classes: rows the true class, columns the predicted */
} StEvaluation;

/* Runs the classifier on ds (samples through the prefix) in batches of
 * batch_size; NULL with error set when a stage fails. */
StEvaluation *st_evaluate (StPipeline *p, const StDataset *ds, const StRunContext *ctx,
                           int batch_size, GError **error);
void          st_evaluation_free (StEvaluation *ev);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StEvaluation, st_evaluation_free)

G_END_DECLS
