/* strata — the stage graph: wiring the stages of a pipeline file, shape
 * inference and the bound on working memory. */
#include "pipeline-private.h"
#include "param.h"
#include "context.h"

#include <string.h>

static void
node_free (gpointer p)
{
  Node *node = p;
  st_stage_free (node->stage);
  g_strfreev (node->input_names);
  g_free (node->inputs);
  g_free (node);
}

void
st_pipeline_free (StPipeline *p)
{
  if (!p)
    return;
  st_pipeline_clear_activations (p);
  g_free (p->acts);
  if (p->nodes)
    g_ptr_array_unref (p->nodes);
  g_free (p->name);
  g_free (p->source);
  g_free (p->dir);
  g_free (p->description);
  g_strfreev (p->labels);
  g_free (p->weights_path);
  if (p->files)
    g_ptr_array_unref (p->files);
  g_free (p);
}

static void
set_error_valist (GError **error, const char *file, int code, const char *fmt, va_list ap)
  G_GNUC_PRINTF (4, 0);

static void
set_error_valist (GError **error, const char *file, int code, const char *fmt, va_list ap)
{
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  g_set_error (error, ST_ERROR, code, "%s: %s", file, msg);
}

void
st_pipeline_set_error (GError **error, StPipeline *p, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  set_error_valist (error, p->name, code, fmt, ap);
  va_end (ap);
}

void
st_pipeline_set_file_error (GError **error, const char *file, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  set_error_valist (error, file, code, fmt, ap);
  va_end (ap);
}

/* Sorts the nodes so that each comes after the ones it reads, depth first
 * from each node in file order, with an explicit stack: a chain of many
 * thousand stages must not recurse once per stage.  A node met again while
 * on the stack closes a cycle, which is reported as the path around it. */
static gboolean
sort_nodes (GPtrArray *file_order, GPtrArray *sorted, GError **error)
{
  const int n = file_order->len;
  g_autofree guint8 *state = g_new0 (guint8, n);   /* 0 new, 1 on the stack, 2 done */
  g_autofree int *next_input = g_new0 (int, n);    /* the next input to follow */
  g_autoptr (GArray) stack = g_array_new (FALSE, FALSE, sizeof (int));
  for (int root = 0; root < n; root++)
    {
      if (state[root] == 2)
        continue;
      state[root] = 1;
      g_array_append_val (stack, root);
      while (stack->len)
        {
          int i = g_array_index (stack, int, stack->len - 1);
          Node *node = file_order->pdata[i];
          if (next_input[i] == node->n_inputs)
            {
              state[i] = 2;
              g_ptr_array_add (sorted, node);
              g_array_set_size (stack, stack->len - 1);
              continue;
            }
          int j = node->inputs[next_input[i]++];
          if (j == IMAGE_INPUT || state[j] == 2)
            continue;
          if (state[j] == 1)
            {
              Node *closing = file_order->pdata[j];
              GString *path = g_string_new (NULL);
              gboolean on = FALSE;
              for (guint k = 0; k < stack->len; k++)
                {
                  int s = g_array_index (stack, int, k);
                  on = on || s == j;
                  if (on)
                    g_string_append_printf (path, "%s -> ",
                                            ((Node *) file_order->pdata[s])->stage->name);
                }
              g_string_append (path, closing->stage->name);
              st_pipeline_set_file_error (error, closing->file, ST_ERROR_PIPELINE,
                                          "stage '%s': key 'input': the inputs form a cycle: %s",
                                          closing->stage->name, path->str);
              g_string_free (path, TRUE);
              return FALSE;
            }
          state[j] = 1;
          g_array_append_val (stack, j);
        }
    }
  return TRUE;
}

/* The kind a stage's type= names, or an error saying why there is none. */
static const StKindEntry *
lookup_kind (StPipeline *p, const StStageGroup *sg, GError **error)
{
  const StKeyGroup *group = sg->group;
  const char *name = group->name;
  g_autofree char *type = NULL;
  for (guint k = 0; k < group->keys->len && !type; k++)
    if (strcmp (group->keys->pdata[k], "type") == 0)
      type = st_key_unescape (group->values->pdata[k], NULL);
  if (!type || !*g_strstrip (type))
    {
      st_pipeline_set_file_error (error, sg->file, ST_ERROR_PIPELINE,
                             "stage '%s': key 'type' is missing (expected a stage kind; "
                             "'strata plugins' lists them)", name);
      return NULL;
    }
  const StKindEntry *entry = st_registry_lookup (p->reg, type);
  const char *refusal = entry ? NULL : st_registry_refusal (p->reg, type);
  if (refusal)
    {
      st_pipeline_set_file_error (error, sg->file, ST_ERROR_PLUGIN,
                             "stage '%s': key 'type': stage kind '%s' is provided only by a "
                             "plugin that was not loaded: %s", name, type, refusal);
      return NULL;
    }
  if (!entry)
    {
      g_autofree char *near = st_registry_suggest (p->reg, type);
      st_pipeline_set_file_error (error, sg->file, ST_ERROR_PIPELINE,
                             "stage '%s': key 'type': unknown stage kind '%s'%s%s%s", name, type,
                             near ? " (did you mean " : " ('strata plugins' lists the kinds)",
                             near ? near : "", near ? "?)" : "");
    }
  return entry;
}

/* The stage a group describes, its parameters validated by the kind's
 * specs; its input= (NULL when absent) comes back apart. */
static StStage *
stage_from_group (const StStageGroup *sg, const StKind *kind, char **input, GError **error)
{
  const StKeyGroup *group = sg->group;
  const char *const *keys = (const char *const *) group->keys->pdata;
  g_autoptr (GPtrArray) pkeys = g_ptr_array_new ();
  g_autoptr (GPtrArray) pvalues = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *input_value = NULL;
  for (guint k = 0; k < group->keys->len; k++)
    {
      if (strcmp (keys[k], "type") == 0)
        continue;
      g_autoptr (GError) local = NULL;
      char *value = st_key_unescape (group->values->pdata[k], &local);
      if (!value)
        {
          st_pipeline_set_file_error (error, sg->file, ST_ERROR_PIPELINE,
                                      "stage '%s': key '%s': %s", group->name, keys[k],
                                      local->message);
          return NULL;
        }
      if (strcmp (keys[k], "input") == 0)
        {
          input_value = value;
          continue;
        }
      g_ptr_array_add (pkeys, (char *) keys[k]);
      g_ptr_array_add (pvalues, value);
    }
  g_autoptr (GError) local = NULL;
  StStage *stage = st_stage_new (kind, group->name, (const char *const *) pkeys->pdata,
                                 (const char *const *) pvalues->pdata, pkeys->len, &local);
  if (!stage)
    {
      g_set_error (error, ST_ERROR, local->code, "%s: %s", sg->file, local->message);
      return NULL;
    }
  *input = g_steal_pointer (&input_value);
  return stage;
}

/* One node per stage group, in file order, with its input names: as
 * input= gives them, or else the stage before it in its file (the image
 * for the first). */
static gboolean
nodes_from_groups (StPipeline *p, GArray *stages, GPtrArray *file_order, GError **error)
{
  for (guint g = 0; g < stages->len; g++)
    {
      const StStageGroup *sg = &g_array_index (stages, StStageGroup, g);
      const char *name = sg->group->name;
      if (strcmp (name, "image") == 0 || !*name || strchr (name, ',') || strchr (name, '.'))
        {
          st_pipeline_set_file_error (error, sg->file, ST_ERROR_PIPELINE,
                                      "stage '%s': invalid stage name (expected a name other "
                                      "than 'image', without ',' or '.')", name);
          return FALSE;
        }
      const StKindEntry *entry = lookup_kind (p, sg, error);
      if (!entry)
        return FALSE;
      g_autofree char *input = NULL;
      StStage *stage = stage_from_group (sg, entry->kind, &input, error);
      if (!stage)
        return FALSE;
      Node *node = g_new0 (Node, 1);
      node->stage = stage;
      node->file_index = file_order->len;
      node->file = sg->file;
      node->scope = sg->scope;
      node->image = sg->image;
      const Node *before = file_order->len ? file_order->pdata[file_order->len - 1] : NULL;
      if (input)
        {
          g_strstrip (input);
          /* "" is no input at all, as the kind's input count then says. */
          node->input_names = *input ? st_key_split_list (input, ",") : g_new0 (char *, 1);
        }
      else
        {
          node->input_names = g_new0 (char *, 2);
          node->input_names[0] = g_strdup (before && before->scope == node->scope
                                           ? before->stage->name : "image");
        }
      node->n_inputs = g_strv_length (node->input_names);
      g_ptr_array_add (file_order, node);
    }
  if (file_order->len == 0)
    {
      st_pipeline_set_error (error, p, ST_ERROR_PIPELINE,
                             "no stages (expected at least one group with a type= key)");
      return FALSE;
    }
  return TRUE;
}

/* What an input name that names no stage of its file gets: the near
 * names, or all. */
static void
set_no_such_stage_error (GPtrArray *file_order, const Node *node, const char *in,
                         GError **error)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  g_ptr_array_add (names, "image");
  for (guint j = 0; j < file_order->len; j++)
    if (((Node *) file_order->pdata[j])->scope == node->scope)
      g_ptr_array_add (names, (char *) ((Node *) file_order->pdata[j])->stage->name);
  g_ptr_array_add (names, NULL);
  g_autofree char *near = st_suggest (in, (const char *const *) names->pdata, 2);
  g_autofree char *all = g_strjoinv (", ", (char **) names->pdata);
  st_pipeline_set_file_error (error, node->file, ST_ERROR_PIPELINE,
                              "stage '%s': key 'input': no stage named '%s' (%s%s%s)",
                              node->stage->name, in, near ? "did you mean " : "expected one of ",
                              near ? near : all, near ? "?" : "");
}

/* "image" in an included file: the last stage of the files before it,
 * which must then make the shape the included file's input= says. */
static int
resolve_image (const StStageGroup *sg, Node *node, int k, GPtrArray *file_order,
               GHashTable *index)
{
  if (!node->image)
    return IMAGE_INPUT;
  int j = GPOINTER_TO_INT (g_hash_table_lookup (index, node->image));
  Node *source = file_order->pdata[j];
  g_free (node->input_names[k]);
  node->input_names[k] = g_strdup (node->image);
  if (sg->has_image_shape)
    {
      source->check_output = TRUE;
      source->expected_output = sg->image_shape;
      source->expected_by = node->file;
    }
  return j;
}

/* Input names become node indices in file order (IMAGE_INPUT for the
 * pipeline's input).  A stage reads stages of its own file, and image. */
static gboolean
resolve_inputs (GArray *stages, GPtrArray *file_order, GError **error)
{
  /* Stage name -> place in file_order; the names are the stages' own. */
  g_autoptr (GHashTable) index = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < file_order->len; i++)
    g_hash_table_insert (index, (char *) ((Node *) file_order->pdata[i])->stage->name,
                         GINT_TO_POINTER (i));
  for (guint i = 0; i < file_order->len; i++)
    {
      Node *node = file_order->pdata[i];
      node->inputs = g_new (int, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs; k++)
        {
          const char *in = node->input_names[k];
          gpointer found = NULL;
          if (strcmp (in, "image") == 0)
            node->inputs[k] = resolve_image (&g_array_index (stages, StStageGroup, i), node, k,
                                             file_order, index);
          else if (g_hash_table_lookup_extended (index, in, NULL, &found)
                   && ((Node *) file_order->pdata[GPOINTER_TO_INT (found)])->scope == node->scope)
            node->inputs[k] = GPOINTER_TO_INT (found);
          else
            {
              set_no_such_stage_error (file_order, node, in, error);
              return FALSE;
            }
          if (node->inputs[k] == (int) i)
            {
              st_pipeline_set_file_error (error, node->file, ST_ERROR_PIPELINE,
                                          "stage '%s': key 'input': a stage cannot read its own "
                                          "output", node->stage->name);
              return FALSE;
            }
        }
    }
  return TRUE;
}

/* The output is the last stage of the file, and every stage must feed it:
 * a stage whose result goes nowhere is almost surely a wiring mistake.
 * Since nothing reads the last stage, the post-order puts it last. */
static gboolean
check_every_stage_used (GPtrArray *file_order, GPtrArray *sorted, GError **error)
{
  const int n = file_order->len;
  g_autofree gboolean *used = g_new0 (gboolean, n);
  used[n - 1] = TRUE;
  for (int r = n - 1; r >= 0; r--)
    {
      Node *node = sorted->pdata[r];
      if (!used[node->file_index])
        continue;
      for (int k = 0; k < node->n_inputs; k++)
        if (node->inputs[k] != IMAGE_INPUT)
          used[node->inputs[k]] = TRUE;
    }
  for (int i = 0; i < n; i++)
    if (!used[i])
      {
        const Node *unused = file_order->pdata[i];
        st_pipeline_set_file_error (error, unused->file, ST_ERROR_PIPELINE,
                                    "stage '%s': its output is not used by the final stage '%s' "
                                    "(expected every stage to feed the last one; check the "
                                    "input= keys)", unused->stage->name,
                                    ((Node *) file_order->pdata[n - 1])->stage->name);
        return FALSE;
      }
  return TRUE;
}

/* Re-indexes inputs from file order to run order, and hands the nodes
 * over to the pipeline in run order. */
static void
adopt_run_order (StPipeline *p, GPtrArray *file_order, GPtrArray *sorted)
{
  const int n = sorted->len;
  g_autofree int *run_index = g_new (int, n);
  for (int r = 0; r < n; r++)
    run_index[((Node *) sorted->pdata[r])->file_index] = r;
  for (int r = 0; r < n; r++)
    {
      Node *node = sorted->pdata[r];
      for (int k = 0; k < node->n_inputs; k++)
        if (node->inputs[k] != IMAGE_INPUT)
          node->inputs[k] = run_index[node->inputs[k]];
    }
  p->nodes = g_ptr_array_new_with_free_func (node_free);
  for (int r = 0; r < n; r++)
    g_ptr_array_add (p->nodes, sorted->pdata[r]);
  g_ptr_array_set_free_func (file_order, NULL);
}

static gboolean
build_stages (StPipeline *p, GArray *stages, GError **error)
{
  g_autoptr (GPtrArray) file_order = g_ptr_array_new_with_free_func (node_free);
  if (!nodes_from_groups (p, stages, file_order, error)
      || !resolve_inputs (stages, file_order, error))
    return FALSE;
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (file_order->len);
  if (!sort_nodes (file_order, sorted, error)
      || !check_every_stage_used (file_order, sorted, error))
    return FALSE;
  adopt_run_order (p, file_order, sorted);
  return TRUE;
}

static void
compute_last_use (StPipeline *p)
{
  for (guint i = 0; i < p->nodes->len; i++)
    ((Node *) p->nodes->pdata[i])->last_use = (int) i;
  for (guint i = 0; i < p->nodes->len; i++)
    {
      Node *node = p->nodes->pdata[i];
      for (int k = 0; k < node->n_inputs; k++)
        if (node->inputs[k] >= 0)
          ((Node *) p->nodes->pdata[node->inputs[k]])->last_use = (int) i;
    }
}

gboolean
st_pipeline_build_graph (StPipeline *p, GArray *stages, GError **error)
{
  if (!build_stages (p, stages, error))
    return FALSE;
  compute_last_use (p);
  p->acts = g_new0 (StTensor *, p->nodes->len);

  /* Check shapes through the whole graph now, before any image is read.
   * Filters take any image: check them on a typical RGB one. */
  if (p->has_input)
    return st_pipeline_prepare (p, p->input, error);
  GError *probe_error = NULL;
  if (st_pipeline_prepare (p, (StShape) { 1, 3, 256, 256 }, &probe_error))
    return TRUE;
  /* A stage that may refuse the probe for its size alone is checked
   * against each real image instead. */
  if (g_error_matches (probe_error, ST_ERROR, ST_ERROR_SHAPE))
    for (guint i = 0; i < p->nodes->len; i++)
      if (st_kind_flags (((Node *) p->nodes->pdata[i])->stage->kind) & ST_KIND_SIZE_DEPENDENT)
        {
          g_error_free (probe_error);
          return TRUE;
        }
  g_propagate_error (error, probe_error);
  return FALSE;
}

StPipeline *
st_pipeline_copy (const StPipeline *src, GError **error)
{
  StPipeline *p = st_pipeline_reload (src, error);
  if (!p)
    return NULL;
  /* Same labels and parameters as the original, trained or loaded. */
  st_pipeline_set_labels (p, (const char *const *) src->labels);
  for (guint i = 0; i < p->nodes->len; i++)
    {
      StStage *a = ((Node *) src->nodes->pdata[i])->stage;
      StStage *b = ((Node *) p->nodes->pdata[i])->stage;
      for (int k = 0; k < st_stage_n_weights (a) && k < st_stage_n_weights (b); k++)
        {
          StWeight *pa = st_stage_get_weight (a, k), *pb = st_stage_get_weight (b, k);
          if (st_shape_equal (pa->value->shape, pb->value->shape))
            memcpy (pb->value->data, pa->value->data, st_tensor_numel (pa->value) * sizeof (float));
        }
    }
  return p;
}

const char *
st_pipeline_name (const StPipeline *p)
{
  return p->name;
}

const char *
st_pipeline_description (const StPipeline *p)
{
  return p->description;
}

gboolean
st_pipeline_fixed_input (const StPipeline *p, StShape *shape)
{
  if (p->has_input && shape)
    *shape = p->input;
  return p->has_input;
}

const char *const *
st_pipeline_labels (const StPipeline *p)
{
  return (const char *const *) p->labels;
}

void
st_pipeline_set_labels (StPipeline *p, const char *const *labels)
{
  char **copy = g_strdupv ((char **) labels);
  g_strfreev (p->labels);
  p->labels = copy;
}

const char *
st_pipeline_weights_path (const StPipeline *p)
{
  return p->weights_path;
}

int
st_pipeline_n_stages (const StPipeline *p)
{
  return (int) p->nodes->len;
}

StStage *
st_pipeline_stage (const StPipeline *p, int index)
{
  return ((Node *) p->nodes->pdata[index])->stage;
}

GPtrArray *
st_pipeline_weights (const StPipeline *p)
{
  GPtrArray *params = g_ptr_array_new ();
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *stage = st_pipeline_stage (p, i);
      for (int k = 0; k < st_stage_n_weights (stage); k++)
        g_ptr_array_add (params, st_stage_get_weight (stage, k));
    }
  return params;
}

const char *const *
st_pipeline_stage_inputs (const StPipeline *p, int index)
{
  return (const char *const *) ((Node *) p->nodes->pdata[index])->input_names;
}

/* The node feeding input k of node i when stages [first, last] run on their
 * own with `input` standing for the output of stage first - 1 (or for the
 * image when first is 0): -1 means that input. */

static gboolean
check_range (const StPipeline *p, int first, int last)
{
  int n = p->nodes->len;
  if (first < 0 || last >= n || first > last)
    return FALSE;
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = node->inputs[k];
          /* Inside the range, a stage may read the range's input only. */
          if (j < first && j != first - 1 && !(first == 0 && j == IMAGE_INPUT))
            return FALSE;
          if (first > 0 && j == IMAGE_INPUT)
            return FALSE;
        }
    }
  return TRUE;
}

int
st_pipeline_prefix_length (const StPipeline *p)
{
  /* check_range (p, k, n - 1) for every k at once: stages k.. may read
   * nothing before stage k - 1, nor the image (-1) when k > 0.  lowest[k]
   * is the lowest node any stage from k on reads. */
  int n = p->nodes->len;
  g_autofree int *lowest = g_new (int, n + 1);
  lowest[n] = G_MAXINT;
  for (int i = n - 1; i >= 0; i--)
    {
      Node *node = p->nodes->pdata[i];
      lowest[i] = lowest[i + 1];
      for (int k = 0; k < node->n_inputs; k++)
        lowest[i] = MIN (lowest[i], node->inputs[k]);
    }
#define REST_STANDS_ALONE(k) ((k) == 0 || lowest[k] >= (k) - 1)
  int k = 0;
  while (k < n - 1)
    {
      Node *node = p->nodes->pdata[k];
      if (st_stage_n_weights (node->stage) > 0 || node->n_inputs != 1
          || !REST_STANDS_ALONE (k + 1))
        break;
      k++;
    }
  /* Only a prefix after which the rest stands alone counts. */
  while (k > 0 && !REST_STANDS_ALONE (k))
    k--;
#undef REST_STANDS_ALONE
  return k;
}

static guint64
node_bytes (const Node *node)
{
  guint64 bytes = 0;
  st_shape_bytes (node->stage->out_shape, &bytes);  /* checked by st_stage_infer */
  return bytes;
}

/* An included file's input= holds where its stages start: the stage
 * before them must make that shape. */
static gboolean
check_included_input (const Node *node, GError **error)
{
  const StShape out = node->stage->out_shape, want = node->expected_output;
  if (!node->check_output || (out.c == want.c && out.h == want.h && out.w == want.w))
    return TRUE;
  st_pipeline_set_file_error (error, node->expected_by, ST_ERROR_SHAPE,
                              "the pipeline takes %dx%dx%d (its input=), but stage '%s' of %s, "
                              "which comes before it, makes %dx%dx%d", want.c, want.h, want.w,
                              node->stage->name, node->file, out.c, out.h, out.w);
  return FALSE;
}

/* Shape inference for stages first..last.  Parameters are declared (and
 * allocated) here, each bounded together with every other stage's by the
 * memory limit. */
static gboolean
infer_range (StPipeline *p, StShape input, int first, int last, GError **error)
{
  g_return_val_if_fail (check_range (p, first, last), FALSE);
  p->prepared = FALSE;
  /* Another shape than input= may still fit (preparation stages, a global
   * pool); when it does not, that is what the user needs to hear. */
  const gboolean other_shape = first == 0 && p->has_input
    && (input.c != p->input.c || input.h != p->input.h || input.w != p->input.w);
  if (!st_shape_bytes (input, NULL))
    {
      char buf[64];
      st_pipeline_set_error (error, p, ST_ERROR_SHAPE, "input shape %s is empty or too large",
                             st_shape_format (input, buf, sizeof buf));
      return FALSE;
    }
  guint64 params = 0;
  for (guint i = 0; i < p->nodes->len; i++)
    params += st_stage_weight_bytes (((Node *) p->nodes->pdata[i])->stage);
  g_autofree StShape *shapes = NULL;
  int room = 0;
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      if (node->n_inputs > room)
        {
          room = node->n_inputs;
          shapes = g_renew (StShape, shapes, room);
        }
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = st_node_source_in_range (node, k, first);
          shapes[k] = j < 0 ? input : ((Node *) p->nodes->pdata[j])->stage->out_shape;
        }
      guint64 before = st_stage_weight_bytes (node->stage);
      st_stage_set_other_weight_bytes (node->stage, params - before);
      g_autoptr (GError) local = NULL;
      gboolean ok = st_stage_infer (node->stage, shapes, node->n_inputs, &local);
      params += st_stage_weight_bytes (node->stage) - before;
      if (!ok && other_shape && local->code != ST_ERROR_MEMORY)
        {
          st_pipeline_set_fixed_input_error (p, input, error);
          return FALSE;
        }
      if (!ok)
        {
          g_set_error (error, ST_ERROR, local->code, "%s: %s", node->file, local->message);
          return FALSE;
        }
      if (!check_included_input (node, error))
        return FALSE;
    }
  return TRUE;
}

/* The working memory of stages first..last on input, as forward uses it:
 * the input, every parameter, and at each stage its output beside the
 * outputs still to be read (forward frees each after its last reader).
 * Refused, naming the stage where it passes the limit, before anything is
 * allocated.  Also notes what a forward that keeps every output needs. */
static gboolean
check_memory (StPipeline *p, StShape input, int first, int last, GError **error)
{
  const guint64 limit = st_memory_limit ();
  g_autofree char *limit_text = st_format_bytes (limit);
  guint64 input_bytes = 0, params = 0;
  st_shape_bytes (input, &input_bytes);
  for (guint i = 0; i < p->nodes->len; i++)
    params += st_stage_weight_bytes (((Node *) p->nodes->pdata[i])->stage);
  char buf[64];
  if (input_bytes > limit || params > limit - input_bytes)
    {
      g_autofree char *need = st_format_bytes (input_bytes);
      g_autofree char *with = st_format_bytes (input_bytes + params);
      st_pipeline_set_error (error, p, ST_ERROR_MEMORY,
                             "the input %s needs %s, %s with the parameters; the limit is %s "
                             "(--max-memory)",
                             st_shape_format (input, buf, sizeof buf), need, with, limit_text);
      return FALSE;
    }
  guint64 live = input_bytes + params, kept = input_bytes + params;
  g_autofree gboolean *freed = g_new0 (gboolean, p->nodes->len);
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      const guint64 out = node_bytes (node);
      if (out > limit - live)
        {
          g_autofree char *need = st_format_bytes (out);
          if (out > limit)
            st_pipeline_set_error (error, p, ST_ERROR_MEMORY,
                                   "stage '%s' (%s): output %s needs %s; the limit is %s "
                                   "(--max-memory)",
                                   node->stage->name, node->stage->kind->name,
                                   st_shape_format (node->stage->out_shape, buf, sizeof buf), need,
                                   limit_text);
          else
            {
              g_autofree char *with = st_format_bytes (live + out);
              st_pipeline_set_error (error, p, ST_ERROR_MEMORY,
                                     "stage '%s' (%s): output %s needs %s, %s with the input, the "
                                     "parameters and the outputs still to be read; the limit is %s "
                                     "(--max-memory)", node->stage->name, node->stage->kind->name,
                                     st_shape_format (node->stage->out_shape, buf, sizeof buf),
                                     need, with, limit_text);
            }
          return FALSE;
        }
      live += out;
      kept = kept > G_MAXUINT64 - out ? G_MAXUINT64 : kept + out;
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = st_node_source_in_range (node, k, first);
          if (j >= 0 && ((Node *) p->nodes->pdata[j])->last_use == i && !freed[j])
            {
              freed[j] = TRUE;
              live -= node_bytes (p->nodes->pdata[j]);
            }
        }
    }
  /* Kept outputs, and the copy of the last one that forward returns. */
  guint64 last_out = node_bytes (p->nodes->pdata[last]);
  p->kept_bytes = kept > G_MAXUINT64 - last_out ? G_MAXUINT64 : kept + last_out;
  return TRUE;
}

gboolean
st_pipeline_prepare_range (StPipeline *p, StShape input, int first, int last, GError **error)
{
  return infer_range (p, input, first, last, error)
         && check_memory (p, input, first, last, error);
}

gboolean
st_pipeline_infer_shapes (StPipeline *p, StShape input, GError **error)
{
  return infer_range (p, input, 0, p->nodes->len - 1, error);
}

gboolean
st_pipeline_prepare (StPipeline *p, StShape input, GError **error)
{
  if (p->prepared && st_shape_equal (p->prepared_shape, input))
    return TRUE;
  if (!st_pipeline_prepare_range (p, input, 0, p->nodes->len - 1, error))
    return FALSE;
  p->prepared = TRUE;
  p->prepared_shape = input;
  return TRUE;
}

StShape
st_pipeline_output_shape (const StPipeline *p)
{
  return ((Node *) p->nodes->pdata[p->nodes->len - 1])->stage->out_shape;
}

