/* strata — stage instances. */
#include "stage.h"
#include "context.h"

#include <math.h>
#include <string.h>

struct _StStagePrivate {
  char *name;
  void *config;
  StShape *in_shapes;
  GPtrArray *weights;          /* StWeight*, in declaration order */
  guint64 weight_bytes;        /* the data bytes of weights */
  guint64 other_weight_bytes;  /* other stages' share of the memory limit */
  StRng *init_rng;
};

static void
param_free (gpointer p)
{
  StWeight *param = p;
  g_free (param->full_name);
  st_tensor_free (param->value);
  st_tensor_free (param->grad);
  g_free (param);
}

static char **
kind_param_names (const StKind *kind)
{
  char **names = g_new0 (char *, kind->n_params + 1);
  for (int i = 0; i < kind->n_params; i++)
    names[i] = (char *) kind->params[i].name;
  return names;
}

StStage *
st_stage_new (const StKind *kind, const char *name, const char *const *keys,
              const char *const *values, int n_keys, GError **error)
{
  StStage *stage = g_new0 (StStage, 1);
  stage->core = g_new0 (StStagePrivate, 1);
  stage->core->name = g_strdup (name);
  stage->core->config = g_malloc0 (MAX (kind->config_size, 1));
  stage->core->weights = g_ptr_array_new_with_free_func (param_free);
  stage->core->init_rng = st_rng_new (g_str_hash (name));
  stage->name = stage->core->name;
  stage->kind = kind;
  stage->config = stage->core->config;

  for (int i = 0; i < kind->n_params; i++)
    {
      const StParamSpec *spec = &kind->params[i];
      g_autoptr (GError) local = NULL;
      if (spec->default_value
          && !st_param_parse (spec, spec->default_value, stage->core->config, &local))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PLUGIN,
                       "stage '%s': kind '%s' has an invalid default for '%s': %s",
                       name, kind->name, spec->name, local->message);
          st_stage_free (stage);
          return NULL;
        }
    }

  gboolean *given = g_newa (gboolean, MAX (kind->n_params, 1));
  memset (given, 0, sizeof (gboolean) * MAX (kind->n_params, 1));
  for (int k = 0; k < n_keys; k++)
    {
      int found = -1;
      for (int i = 0; i < kind->n_params && found < 0; i++)
        if (strcmp (kind->params[i].name, keys[k]) == 0)
          found = i;
      if (found < 0)
        {
          g_autofree char **names = kind_param_names (kind);  /* borrowed strings */
          g_autofree char *near = st_suggest (keys[k], (const char *const *) names, 3);
          g_autofree char *all = g_strjoinv (", ", names);
          if (near)
            g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                         "stage '%s': unknown key '%s' for kind '%s' (did you mean %s?)",
                         name, keys[k], kind->name, near);
          else
            g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                         "stage '%s': unknown key '%s' for kind '%s' (expected one of: %s)",
                         name, keys[k], kind->name, *all ? all : "no keys");
          st_stage_free (stage);
          return NULL;
        }
      g_autoptr (GError) local = NULL;
      if (!st_param_parse (&kind->params[found], values[k], stage->core->config, &local))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "stage '%s': key '%s': %s",
                       name, keys[k], local->message);
          st_stage_free (stage);
          return NULL;
        }
      given[found] = TRUE;
    }

  for (int i = 0; i < kind->n_params; i++)
    if ((kind->params[i].flags & ST_PARAM_REQUIRED) && !given[i])
      {
        g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                     "stage '%s': key '%s' is required for kind '%s' (%s)",
                     name, kind->params[i].name, kind->name,
                     kind->params[i].help ? kind->params[i].help : "no help");
        st_stage_free (stage);
        return NULL;
      }
  return stage;
}

void
st_stage_free (StStage *stage)
{
  if (!stage)
    return;
  if (stage->kind->finalize)
    stage->kind->finalize (stage);
  st_param_clear (stage->kind, stage->core->config);
  g_free (stage->core->config);
  g_free (stage->core->in_shapes);
  g_ptr_array_unref (stage->core->weights);
  st_rng_free (stage->core->init_rng);
  g_free (stage->core->name);
  g_free (stage->core);
  g_free (stage);
}

void
st_stage_set_seed (StStage *stage, guint64 seed)
{
  guint64 state = seed ^ ((guint64) g_str_hash (stage->name) << 32) ^ g_str_hash (stage->name);
  st_rng_free (stage->core->init_rng);
  stage->core->init_rng = st_rng_new (state);
}

gboolean
st_stage_infer (StStage *stage, const StShape *in_shapes, int n_inputs,
                GError **error)
{
  const StKind *kind = stage->kind;
  if (n_inputs < kind->min_inputs || (kind->max_inputs >= 0 && n_inputs > kind->max_inputs))
    {
      if (kind->max_inputs < 0)
        g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                     "stage '%s': key 'input': kind '%s' takes at least %d inputs, found %d",
                     stage->name, kind->name, kind->min_inputs, n_inputs);
      else if (kind->min_inputs == kind->max_inputs)
        g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                     "stage '%s': key 'input': kind '%s' takes %d input%s, found %d",
                     stage->name, kind->name, kind->min_inputs,
                     kind->min_inputs == 1 ? "" : "s", n_inputs);
      else
        g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                     "stage '%s': key 'input': kind '%s' takes %d to %d inputs, found %d",
                     stage->name, kind->name, kind->min_inputs, kind->max_inputs, n_inputs);
      return FALSE;
    }
  g_free (stage->core->in_shapes);
  stage->core->in_shapes = g_memdup2 (in_shapes, sizeof (StShape) * MAX (n_inputs, 1));
  stage->in_shapes = stage->core->in_shapes;
  stage->n_inputs = n_inputs;
  stage->out_shape = (StShape) { 0, 0, 0, 0 };
  stage->halo = 0;
  stage->floored = FALSE;
  stage->macs = 0;

  g_autoptr (GError) local = NULL;
  if (!kind->infer (stage, &local))
    {
      g_set_error (error, ST_ERROR, local ? local->code : ST_ERROR_SHAPE,
                   "stage '%s' (%s): %s", stage->name, kind->name,
                   local ? local->message : "shape inference failed");
      return FALSE;
    }
  StShape o = stage->out_shape;
  if (o.n <= 0 || o.c <= 0 || o.h <= 0 || o.w <= 0)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "stage '%s' (%s): output shape %s is empty", stage->name,
                   kind->name, st_shape_format (o, buf, sizeof buf));
      return FALSE;
    }
  /* Past this point everyone multiplies the dimensions unchecked. */
  if (!st_shape_bytes (o, NULL))
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
                   "stage '%s' (%s): output shape %s is too large (its size in bytes "
                   "overflows)", stage->name, kind->name, st_shape_format (o, buf, sizeof buf));
      return FALSE;
    }
  return TRUE;
}

static void init_tensor (StTensor *t, StInit init, double arg, gint64 fan_in, StRng *rng);

void
st_stage_reset_weights (StStage *stage, guint64 seed)
{
  st_stage_set_seed (stage, seed);
  for (guint i = 0; i < stage->core->weights->len; i++)
    {
      StWeight *p = stage->core->weights->pdata[i];
      init_tensor (p->value, p->init, p->init_arg, p->fan_in, stage->core->init_rng);
    }
}

static void
init_tensor (StTensor *t, StInit init, double arg, gint64 fan_in, StRng *rng)
{
  gsize n = st_tensor_numel (t);
  double bound = init == ST_INIT_HE_UNIFORM ? sqrt (6.0 / (double) MAX (fan_in, 1)) : arg;
  for (gsize i = 0; i < n; i++)
    switch (init)
      {
      case ST_INIT_ZEROS:
        t->data[i] = 0.0f;
        break;
      case ST_INIT_ONES:
        t->data[i] = 1.0f;
        break;
      case ST_INIT_CONSTANT:
        t->data[i] = (float) arg;
        break;
      case ST_INIT_HE_UNIFORM:
      case ST_INIT_UNIFORM:
        t->data[i] = (float) ((2.0 * st_rng_uniform (rng) - 1.0) * bound);
        break;
      }
}

static char *
format_dims (const int *dims, int rank)
{
  GString *s = g_string_new (NULL);
  for (int d = 0; d < rank; d++)
    g_string_append_printf (s, "%s%d", d ? "x" : "", dims[d]);
  return g_string_free (s, FALSE);
}

void
st_stage_set_other_weight_bytes (StStage *stage, guint64 bytes)
{
  stage->core->other_weight_bytes = bytes;
}

guint64
st_stage_weight_bytes (const StStage *stage)
{
  return stage->core->weight_bytes;
}

int
st_stage_declare_param (StStage *stage, const char *name, const int *dims,
                        int rank, StInit init, double init_arg,
                        gboolean trainable, GError **error)
{
  g_autofree char *full = g_strdup_printf ("%s.%s", stage->name, name);
  if (rank < 1 || rank > 4)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PLUGIN,
                   "parameter '%s' has rank %d, expected 1 to 4", full, rank);
      return -1;
    }
  g_autofree char *wanted = format_dims (dims, rank);
  GPtrArray *weights = stage->core->weights;
  for (guint i = 0; i < weights->len; i++)
    {
      StWeight *p = weights->pdata[i];
      if (strcmp (p->full_name, full) != 0)
        continue;
      gboolean same = p->rank == rank;
      for (int d = 0; same && d < rank; d++)
        same = p->dims[d] == dims[d];
      if (!same)
        {
          g_autofree char *had = format_dims (p->dims, p->rank);
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "parameter '%s' was declared with another shape (%s, now %s)",
                       full, had, wanted);
          return -1;
        }
      return (int) i;
    }
  int padded[4] = { 1, 1, 1, 1 };
  gint64 fan_in = 1;
  for (int d = 0; d < rank; d++)
    {
      if (dims[d] < 1)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                     "parameter '%s' has shape %s, expected every dimension at least 1",
                     full, wanted);
          return -1;
        }
      padded[d] = dims[d];
      if (d > 0)
        fan_in = MIN (fan_in * dims[d], (gint64) G_MAXINT);  /* only a bound's scale */
    }

  /* Bounded before anything is allocated: a layer of a few characters in a
   * pipeline file can ask for terabytes. */
  StShape shape = { padded[0], padded[1], padded[2], padded[3] };
  guint64 bytes = 0, limit = st_memory_limit ();
  guint64 others = stage->core->other_weight_bytes + stage->core->weight_bytes;
  if (!st_shape_bytes (shape, &bytes) || bytes > limit || others > limit - bytes)
    {
      g_autofree char *limit_text = st_format_bytes (limit);
      if (bytes == 0)
        g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
                     "parameter '%s' (%s) is too large: its size in bytes overflows",
                     full, wanted);
      else if (bytes > limit)
        {
          g_autofree char *need = st_format_bytes (bytes);
          g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
                       "parameter '%s' (%s) needs %s; the limit is %s (--max-memory)",
                       full, wanted, need, limit_text);
        }
      else
        {
          g_autofree char *need = st_format_bytes (bytes);
          g_autofree char *with = st_format_bytes (others + bytes);
          g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
                       "parameter '%s' (%s) needs %s, %s with the other parameters; "
                       "the limit is %s (--max-memory)", full, wanted, need, with, limit_text);
        }
      return -1;
    }

  StWeight *p = g_new0 (StWeight, 1);
  for (int d = 0; d < rank; d++)
    p->dims[d] = dims[d];
  p->full_name = g_steal_pointer (&full);
  p->rank = rank;
  p->trainable = trainable;
  p->init = init;
  p->init_arg = init_arg;
  p->value = st_tensor_new (shape, error);
  if (!p->value)
    {
      param_free (p);
      return -1;
    }
  p->fan_in = fan_in;
  init_tensor (p->value, init, init_arg, fan_in, stage->core->init_rng);
  stage->core->weight_bytes += bytes;
  g_ptr_array_add (weights, p);
  return (int) weights->len - 1;
}

int
st_stage_n_weights (const StStage *stage)
{
  return (int) stage->core->weights->len;
}

StWeight *
st_stage_get_weight (const StStage *stage, int index)
{
  g_return_val_if_fail (index >= 0 && index < (int) stage->core->weights->len, NULL);
  return stage->core->weights->pdata[index];
}

StTensor *
st_stage_param (StStage *stage, int index)
{
  StWeight *p = st_stage_get_weight (stage, index);
  return p ? p->value : NULL;
}

StTensor *
st_stage_param_grad (StStage *stage, int index)
{
  StWeight *p = st_stage_get_weight (stage, index);
  return p ? p->grad : NULL;
}

void
st_stage_enable_grads (StStage *stage)
{
  for (guint i = 0; i < stage->core->weights->len; i++)
    {
      StWeight *p = stage->core->weights->pdata[i];
      if (!p->grad)
        p->grad = st_tensor_new (p->value->shape, NULL);
    }
}

void
st_stage_zero_grads (StStage *stage)
{
  for (guint i = 0; i < stage->core->weights->len; i++)
    {
      StWeight *p = stage->core->weights->pdata[i];
      if (p->grad)
        st_tensor_zero (p->grad);
    }
}
