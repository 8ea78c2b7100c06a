/* strata — the settings of a training run. */
#pragma once

#include "option.h"
#include "progress.h"

G_BEGIN_DECLS

typedef enum { ST_OPTIM_SGD, ST_OPTIM_ADAM, ST_OPTIM_ADAMW } StOptimKind;
/* constant, step and cosine set the rate per epoch; one-cycle and
 * warmup-cosine per step (optimizer.c gives the formulas). */
typedef enum {
  ST_SCHEDULE_CONSTANT, ST_SCHEDULE_STEP, ST_SCHEDULE_COSINE, ST_SCHEDULE_ONE_CYCLE,
  ST_SCHEDULE_WARMUP_COSINE
} StScheduleKind;

/* What training tells its caller, which presents it (the library does
 * not print). */
typedef enum {
  ST_TRAIN_PROGRESS,           /* batches done: at most ten times a second, and an epoch's last */
  ST_TRAIN_EPOCH,              /* an epoch trained and tested */
  ST_TRAIN_INTERRUPTED,        /* stopped by SIGINT or SIGTERM */
} StTrainEvent;

typedef struct {
  StTrainEvent event;
  int epoch, epochs;           /* epoch counts from 1 */
  int batch, n_batches;        /* batches of this epoch done */
  double lr;                   /* of the last step taken (of the epoch's first before any) */
  double loss, accuracy;       /* on the training data, this epoch so far; the loss is
                                * the smoothed one under label smoothing */
  double test_loss, test_accuracy;  /* ST_TRAIN_EPOCH with test data; otherwise -1 */
  double seconds;              /* this epoch's training so far (testing excluded) */
  double images_per_second;
  const char *checkpoint;      /* ST_TRAIN_INTERRUPTED: the checkpoint written, or NULL */
  const GError *checkpoint_error;  /* ... and why it was not */
} StTrainReport;

typedef void (*StTrainReportFunc) (const StTrainReport *report, gpointer data);

typedef struct {
  StOptimKind optimizer;
  double lr;                   /* 0 (not given): the optimizer's default, see st_train_options_finish */
  double momentum;             /* SGD */
  gboolean nesterov;           /* SGD */
  double beta1, beta2, eps;    /* Adam, AdamW */
  double weight_decay;         /* L2 for SGD and Adam, decoupled for AdamW */
  StScheduleKind schedule;
  int step_epochs;             /* step schedule: multiply by gamma every step_epochs */
  double gamma;
  /* warmup-cosine: steps of linear warm-up, given as epochs or as steps
   * (at most one of them non-zero). */
  int warmup_epochs, warmup_steps;
  /* Targets (1 - E) one-hot + E / K over K class scores.  < 0: not given,
   * which is 0, or with resume the checkpoint's value. */
  double label_smoothing;
  int batch_size;
  int epochs;
  gboolean shuffle;
  guint64 seed;                /* parsed as ST_PARAM_INT64, 0 and up */
  int threads;                 /* <= 0: st_default_threads () */
  const char *weights_out;     /* final weights (safetensors) */
  const char *checkpoint;      /* written after every epoch and on interrupt */
  const char *resume;          /* a checkpoint to continue from, or NULL */
  const char *log_csv;         /* per-epoch figures, appended; NULL: none */
  const char *plot_png;        /* training curves; NULL: none */
  StTrainReportFunc report;    /* NULL: none */
  gpointer report_data;
  /* The data's class names (NULL-terminated, or NULL): stored in the
   * weights file's metadata as "strata.labels", so that a pipeline
   * without labels= names its classes after training on folders. */
  const char *const *class_names;
  /* Each epoch's progress line (progress.h): batches done, images a
   * second, time left, loss and accuracy so far.  NULL: none.  Removed
   * before each ST_TRAIN_EPOCH or ST_TRAIN_INTERRUPTED report. */
  StProgressFunc progress;
  gpointer progress_data;
} StTrainOptions;

/* The settings a user can give, with their help, defaults and ranges:
 * `strata train` makes its options of them. */
extern const StOptionSpec st_train_option_specs[];
extern const int st_train_n_option_specs;

/* Every setting at its default. */
void st_train_options_init (StTrainOptions *opt);
/* Settles what depends on other settings: an lr left at 0 becomes the
 * optimizer's default (0.01 for sgd, 0.001 for adam and adamw). */
void st_train_options_finish (StTrainOptions *opt);
/* Settings that contradict each other: --warmup without the warmup-cosine
 * schedule, or in both epochs and steps.  ST_ERROR_USAGE naming them. */
gboolean st_train_options_check (const StTrainOptions *opt, GError **error);

G_END_DECLS
