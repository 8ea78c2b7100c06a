/* strata — the settings of a training run, declared once: their defaults,
 * ranges and help come from this table. */
#include "train-options.h"
#include "context.h"

#include <stddef.h>

#define FIELD(name) offsetof (StTrainOptions, name)
#define RANGE (ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX)

static const char *const optimizers[] = { "sgd", "adam", "adamw", NULL };
static const char *const schedules[] = { "constant", "step", "cosine", "one-cycle",
                                         "warmup-cosine", NULL };

const StOptionSpec st_train_option_specs[] = {
  { { "epochs", ST_PARAM_INT, "10", RANGE, 1, 100000, NULL, "Passes over the data",
      FIELD (epochs) }, 0, "N", NULL, NULL },
  { { "batch", ST_PARAM_INT, "64", RANGE, 1, 65536, NULL, "Batch size", FIELD (batch_size) },
    'b', "N", NULL, NULL },
  { { "optimizer", ST_PARAM_ENUM, "adam", 0, 0, 0, optimizers, "Optimizer", FIELD (optimizer) },
    0, "NAME", NULL, NULL },
  { { "lr", ST_PARAM_DOUBLE, NULL, ST_PARAM_HAS_MIN | ST_PARAM_MIN_EXCLUSIVE, 0, 0, NULL,
      "Learning rate", FIELD (lr) }, 0, "X", NULL, "0.001 for adam and adamw, 0.01 for sgd" },
  { { "momentum", ST_PARAM_DOUBLE, "0.9", RANGE | ST_PARAM_MAX_EXCLUSIVE, 0, 1, NULL,
      "SGD momentum", FIELD (momentum) }, 0, "X", NULL, NULL },
  { { "nesterov", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL, "SGD with Nesterov momentum",
      FIELD (nesterov) }, 0, NULL, "true", NULL },
  { { "weight-decay", ST_PARAM_DOUBLE, "0", ST_PARAM_HAS_MIN, 0, 0, NULL,
      "L2 penalty (decoupled for adamw)", FIELD (weight_decay) }, 0, "X", NULL, NULL },
  { { "schedule", ST_PARAM_ENUM, "constant", 0, 0, 0, schedules, "Learning rate schedule",
      FIELD (schedule) }, 0, "NAME", NULL, NULL },
  { { "step-epochs", ST_PARAM_INT, "10", RANGE, 1, 100000, NULL,
      "step schedule: epochs between decays", FIELD (step_epochs) }, 0, "N", NULL, NULL },
  { { "gamma", ST_PARAM_DOUBLE, "0.1", RANGE | ST_PARAM_MIN_EXCLUSIVE, 0, 1, NULL,
      "step schedule: decay factor", FIELD (gamma) }, 0, "X", NULL, NULL },
  { { "warmup", ST_PARAM_INT, "0", RANGE, 0, 100000, NULL,
      "warmup-cosine schedule: epochs of linear warm-up from 0 to --lr", FIELD (warmup_epochs) },
    0, "N", NULL, NULL },
  { { "warmup-steps", ST_PARAM_INT, "0", ST_PARAM_HAS_MIN, 0, 0, NULL,
      "warmup-cosine schedule: the warm-up in steps (batches) instead", FIELD (warmup_steps) },
    0, "N", NULL, NULL },
  /* Not given, -1 stays: 0, or the checkpoint's when resuming. */
  { { "label-smoothing", ST_PARAM_DOUBLE, NULL, RANGE | ST_PARAM_MAX_EXCLUSIVE, 0, 1, NULL,
      "Label smoothing E: targets (1-E) one-hot + E/classes; the loss reported is the "
      "smoothed one", FIELD (label_smoothing) }, 0, "E", NULL, "0, or the checkpoint's" },
  { { "seed", ST_PARAM_INT64, "1", ST_PARAM_HAS_MIN, 0, 0, NULL,
      "Seed of initial weights, shuffling, dropout and augmentation", FIELD (seed) }, 0, "N", NULL, NULL },
  { { "no-shuffle", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL, "Keep the data's order",
      FIELD (shuffle) }, 0, NULL, "false", NULL },
  /* Not given, 0 stays: one thread per core. */
  { { "jobs", ST_PARAM_INT, NULL, RANGE, 1, ST_MAX_THREADS, NULL, "Threads", FIELD (threads) },
    'j', "N", NULL, "one per CPU" },
};
const int st_train_n_option_specs = G_N_ELEMENTS (st_train_option_specs);

void
st_train_options_init (StTrainOptions *opt)
{
  /* Adam's constants are not options; shuffling is on unless --no-shuffle. */
  *opt = (StTrainOptions) { .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .shuffle = TRUE,
                            .label_smoothing = -1 };
  st_options_set_defaults (st_train_option_specs, st_train_n_option_specs, opt);
}

void
st_train_options_finish (StTrainOptions *opt)
{
  if (opt->lr == 0)
    opt->lr = opt->optimizer == ST_OPTIM_SGD ? 0.01 : 1e-3;
}

gboolean
st_train_options_check (const StTrainOptions *opt, GError **error)
{
  if ((opt->warmup_epochs > 0 || opt->warmup_steps > 0)
      && opt->schedule != ST_SCHEDULE_WARMUP_COSINE)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "--warmup and --warmup-steps apply to --schedule warmup-cosine only");
      return FALSE;
    }
  if (opt->warmup_epochs > 0 && opt->warmup_steps > 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "--warmup and --warmup-steps: give the warm-up in epochs or in steps, not both");
      return FALSE;
    }
  return TRUE;
}
