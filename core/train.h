/* strata — training a pipeline's parameters, and measuring a classifier. */
#pragma once

#include "classifier.h"
#include "dataset.h"
#include "pipeline.h"
#include "train-options.h"

G_BEGIN_DECLS

/* Checks, creating nothing, that every file opt names for writing
 * (weights, checkpoint, log, plot) can be written: its folder exists and is
 * writable, it is not a folder, and no two of them are the same file. */
gboolean st_train_check_outputs (const StTrainOptions *opt, GError **error);

/* Checks a pipeline can be trained as a classifier on n_classes classes:
 * it has trainable parameters and ends in class scores [N, C, 1, 1] with
 * C >= n_classes.  The error says what is wrong. */
gboolean st_train_check_pipeline (StPipeline *p, int n_classes, GError **error);

/* Trains p's parameters on train (samples already through the prefix),
 * reporting test accuracy after each epoch when test is not NULL.  Stops
 * cleanly on SIGINT or SIGTERM after writing a checkpoint.  *epochs_run
 * (may be NULL) counts the epochs finished by this call: 0 when a resumed
 * checkpoint had none left, and then no log or plot is written.  Returns
 * FALSE with error on failure, or on interruption with the code
 * ST_ERROR_INTERRUPTED. */
gboolean st_train (StPipeline *p, StDataset *train, StDataset *test,
                   const StTrainOptions *opt, int *epochs_run, GError **error);

/* The loss training minimises: the cross-entropy of softmax(logits)
 * ([B, K, 1, 1]) against labels smoothed by label_smoothing E (targets
 * (1 - E) one-hot + E / K), summed over the batch.  Writes into grad (its
 * shape) the gradient of the batch's mean loss with respect to the
 * logits, and adds to *correct the samples whose highest score is their
 * label. */
double st_softmax_cross_entropy (const StTensor *logits, const int *labels,
                                 double label_smoothing, StTensor *grad, int *correct);

G_END_DECLS

