/* strata — training a pipeline's parameters, and measuring a classifier. */
#pragma once

#include "classifier.h"
#include "dataset.h"
#include "pipeline.h"

G_BEGIN_DECLS

typedef enum { ST_OPTIM_SGD, ST_OPTIM_ADAM, ST_OPTIM_ADAMW } StOptimKind;
typedef enum { ST_SCHEDULE_CONSTANT, ST_SCHEDULE_STEP, ST_SCHEDULE_COSINE } StScheduleKind;

typedef struct {
  StOptimKind optimizer;
  double lr;
  double momentum;             /* SGD */
  gboolean nesterov;           /* SGD */
  double beta1, beta2, eps;    /* Adam, AdamW */
  double weight_decay;         /* L2 for SGD and Adam, decoupled for AdamW */
  StScheduleKind schedule;
  int step_epochs;             /* step schedule: multiply by gamma every step_epochs */
  double gamma;
  int batch_size;
  int epochs;
  gboolean shuffle;
  guint64 seed;
  int threads;                 /* <= 0: one per core */
  const char *weights_out;     /* final weights (safetensors) */
  const char *checkpoint;      /* written after every epoch and on interrupt */
  const char *resume;          /* a checkpoint to continue from, or NULL */
  const char *log_csv;         /* per-epoch figures, appended; NULL: none */
  const char *plot_png;        /* training curves; NULL: none */
  gboolean quiet;              /* no progress bar, no per-epoch lines */
  /* The data's class names (NULL-terminated, or NULL): stored in the
   * weights file's metadata as "strata.labels", so that a pipeline
   * without labels= names its classes after training on folders. */
  const char *const *class_names;
} StTrainOptions;

void st_train_options_init (StTrainOptions *opt);

/* Checks, creating nothing, that every file opt names for writing
 * (weights, checkpoint, log, plot) can be written: its folder exists and is
 * writable, it is not a folder, and no two of them are the same file. */
gboolean st_train_check_outputs (const StTrainOptions *opt, GError **error);

/* Checks a pipeline can be trained as a classifier on n_classes classes:
 * it has trainable parameters and ends in class scores [N, C, 1, 1] with
 * C >= n_classes.  The error says what is wrong. */
gboolean st_train_check_pipeline (StPipeline *p, int n_classes, GError **error);

/* Applies the pipeline's preparation prefix (st_pipeline_prefix_length) to
 * every sample of ds in place, so that training batches only the rest. */
gboolean st_dataset_apply_prefix (StDataset *ds, StPipeline *p, int threads, GError **error);

/* Trains p's parameters on train (samples already through the prefix),
 * reporting test accuracy after each epoch when test is not NULL.  Stops
 * cleanly on SIGINT or SIGTERM after writing a checkpoint.  *epochs_run
 * (may be NULL) counts the epochs finished by this call: 0 when a resumed
 * checkpoint had none left, and then no log or plot is written.  Returns
 * FALSE with error on failure, or on interruption with the code
 * ST_ERROR_INTERRUPTED. */
gboolean st_train (StPipeline *p, StDataset *train, StDataset *test,
                   const StTrainOptions *opt, int *epochs_run, GError **error);

/* Runs the classifier on ds (samples through the prefix) and fills a
 * confusion matrix, rows the true class and columns the predicted one,
 * n_classes x n_classes; returns the mean cross-entropy loss or a
 * negative value with error set. */
double st_evaluate (StPipeline *p, const StDataset *ds, const StRunContext *ctx,
                    int batch_size, guint64 *confusion, GError **error);

G_END_DECLS

G_BEGIN_DECLS
/* Prints accuracy, per-class precision and recall and the confusion matrix
 * (as text, or as one JSON object) to standard output. */
void st_print_evaluation (const StPipeline *p, const StDataset *ds, const guint64 *confusion,
                          double loss, gboolean json);
G_END_DECLS
