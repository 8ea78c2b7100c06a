/* strata — training checkpoints. */
#include "checkpoint.h"
#include "weights.h"

#include <math.h>
#include <string.h>

/* Optimiser state is stored beside the parameters under this prefix. */
#define STATE_PREFIX "optimizer."

/* "optimizer.<parameter>.m" (moment 0) or ".v" (moment 1). */
static char *
state_name (const StWeight *weight, int moment)
{
  return g_strdup_printf (STATE_PREFIX "%s.%s", weight->full_name, moment ? "v" : "m");
}

gboolean
st_checkpoint_save (StPipeline *p, GArray *slots, const StTrainOptions *opt,
                    const StRunContext *ctx, const StTrainPosition *pos, GError **error)
{
  g_autoptr (GPtrArray) state = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < slots->len; i++)
    {
      StOptimizerSlot *s = &g_array_index (slots, StOptimizerSlot, i);
      StTensor *moments[2] = { s->m, s->v };
      for (int j = 0; j < 2; j++)
        if (moments[j])
          {
            char *name = state_name (s->weight, j);
            g_ptr_array_add (names, name);
            g_ptr_array_add (state, st_named_tensor_borrow (name, s->weight, moments[j]));
          }
    }
  guint64 rng[4];
  st_rng_get_state (ctx->rng, rng);
  g_autoptr (GHashTable) meta = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_hash_table_insert (meta, "strata.checkpoint", g_strdup ("1"));
  g_hash_table_insert (meta, "strata.optimizer", g_strdup (st_optimizer_name (opt->optimizer)));
  g_hash_table_insert (meta, "strata.schedule", g_strdup (st_schedule_name (opt->schedule)));
  /* In hex: a resumed run must use the very same value. */
  g_hash_table_insert (meta, "strata.label_smoothing", g_strdup_printf ("%a", opt->label_smoothing));
  g_hash_table_insert (meta, "strata.epoch", g_strdup_printf ("%d", pos->epoch));
  g_hash_table_insert (meta, "strata.batch", g_strdup_printf ("%d", pos->batch));
  g_hash_table_insert (meta, "strata.step", g_strdup_printf ("%" G_GINT64_FORMAT, pos->step));
  g_hash_table_insert (meta, "strata.loss_sum", g_strdup_printf ("%a", pos->loss_sum));
  g_hash_table_insert (meta, "strata.correct", g_strdup_printf ("%" G_GINT64_FORMAT, pos->correct));
  g_hash_table_insert (meta, "strata.seen", g_strdup_printf ("%" G_GINT64_FORMAT, pos->seen));
  g_hash_table_insert (meta, "strata.rng", g_strdup_printf ("%016" G_GINT64_MODIFIER "x%016"
                       G_GINT64_MODIFIER "x%016" G_GINT64_MODIFIER "x%016" G_GINT64_MODIFIER "x",
                       rng[0], rng[1], rng[2], rng[3]));
  return st_weights_write (p, opt->checkpoint, state, meta, error);
}

static gboolean
meta_int (GHashTable *meta, const char *key, gint64 *out)
{
  const char *v = g_hash_table_lookup (meta, key);
  return v && g_ascii_string_to_signed (v, 10, 0, G_MAXINT64, out, NULL);
}

/* The settings a resumed run takes from its checkpoint: the schedule must
 * be the one given (like the optimizer), label smoothing is the
 * checkpoint's unless given; checkpoints older than these keys had
 * neither. */
static gboolean
load_settings (GHashTable *meta, StTrainOptions *opt, GError **error)
{
  const char *schedule = g_hash_table_lookup (meta, "strata.schedule");
  if (schedule && strcmp (schedule, st_schedule_name (opt->schedule)) != 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "%s: the checkpoint was written with schedule '%s', this run uses '%s'",
                   opt->resume, schedule, st_schedule_name (opt->schedule));
      return FALSE;
    }
  const char *text = g_hash_table_lookup (meta, "strata.label_smoothing");
  double stored = text ? g_ascii_strtod (text, NULL) : 0;
  if (!(stored >= 0 && stored < 1))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS,
                   "%s: the checkpoint's label smoothing '%s' is not in [0, 1)", opt->resume, text);
      return FALSE;
    }
  if (opt->label_smoothing >= 0 && opt->label_smoothing != stored)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "%s: the checkpoint was written with --label-smoothing %g, this run gives %g",
                   opt->resume, stored, opt->label_smoothing);
      return FALSE;
    }
  opt->label_smoothing = stored;
  return TRUE;
}

gboolean
st_checkpoint_load (StPipeline *p, GArray *slots, StTrainOptions *opt,
                    StRunContext *ctx, StTrainPosition *pos, GError **error)
{
  g_autoptr (StTensorFile) file = st_tensor_file_read (opt->resume, error);
  if (!file || !st_tensor_file_check_finite (file, opt->resume, error))
    return FALSE;
  const char *optimizer = g_hash_table_lookup (file->metadata, "strata.optimizer");
  gint64 epoch, batch, step, correct, seen;
  const char *loss = g_hash_table_lookup (file->metadata, "strata.loss_sum");
  const char *rng = g_hash_table_lookup (file->metadata, "strata.rng");
  if (!g_hash_table_lookup (file->metadata, "strata.checkpoint") || !optimizer || !loss || !rng
      || strlen (rng) != 64 || !meta_int (file->metadata, "strata.epoch", &epoch)
      || !meta_int (file->metadata, "strata.batch", &batch)
      || !meta_int (file->metadata, "strata.step", &step)
      || !meta_int (file->metadata, "strata.correct", &correct)
      || !meta_int (file->metadata, "strata.seen", &seen))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS,
                   "%s: not a strata checkpoint (its metadata lacks the training position)", opt->resume);
      return FALSE;
    }
  if (epoch > G_MAXINT || batch > G_MAXINT || !isfinite (g_ascii_strtod (loss, NULL))
      || strspn (rng, "0123456789abcdefABCDEF") != 64)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS,
                   "%s: the checkpoint's training position is out of range or malformed",
                   opt->resume);
      return FALSE;
    }
  if (strcmp (optimizer, st_optimizer_name (opt->optimizer)) != 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "%s: the checkpoint was written by optimizer '%s', this run uses '%s'",
                   opt->resume, optimizer, st_optimizer_name (opt->optimizer));
      return FALSE;
    }
  if (!load_settings (file->metadata, opt, error))
    return FALSE;
  /* Parameters first, through the checks every weights file gets. */
  g_autoptr (GPtrArray) weights = st_pipeline_weights (p);
  if (!st_weights_check (weights, file, opt->resume, STATE_PREFIX, error))
    return FALSE;
  st_weights_copy (weights, file);
  for (guint i = 0; i < slots->len; i++)
    {
      StOptimizerSlot *s = &g_array_index (slots, StOptimizerSlot, i);
      StTensor *state[2] = { s->m, s->v };
      for (int j = 0; j < 2; j++)
        {
          if (!state[j])
            continue;
          g_autofree char *name = state_name (s->weight, j);
          const StNamedTensor *t = st_tensor_file_find (file, name);
          if (!t || !st_shape_equal (t->value->shape, state[j]->shape))
            {
              g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS,
                           "%s: tensor '%s': missing or of another shape", opt->resume, name);
              return FALSE;
            }
          memcpy (state[j]->data, t->value->data, st_tensor_numel (t->value) * sizeof (float));
        }
    }
  guint64 state[4];
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *part = g_strndup (rng + 16 * i, 16);
      state[i] = g_ascii_strtoull (part, NULL, 16);
    }
  st_rng_set_state (ctx->rng, state);
  *pos = (StTrainPosition) { (int) epoch, (int) batch, step, g_ascii_strtod (loss, NULL), correct, seen };
  return TRUE;
}
