/* strata — how the command line presents training and evaluation. */
#pragma once

#include "evaluate.h"
#include "train-options.h"

G_BEGIN_DECLS

/* Accuracy, per-class precision and recall and the confusion matrix on
 * standard output: as text, or as one JSON object. */
void print_evaluation (const StEvaluation *ev, gboolean json);

/* What st_train reports, on standard error: the per-epoch lines, and
 * where an interrupted run's checkpoint is.  (The progress line is
 * terminal_progress's, given as StTrainOptions.progress.) */
typedef struct {
  gboolean quiet;              /* no per-epoch lines */
} TrainPrinter;

/* A StTrainReportFunc; data is the TrainPrinter. */
void print_train_report (const StTrainReport *report, gpointer data);

G_END_DECLS
