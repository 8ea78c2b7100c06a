/* strata — running the graph: forward over a range of stages, keeping
 * activations when asked, and back-propagation through them. */
#include "pipeline-private.h"
#include "context.h"
#include "param.h"
#include "tensor-private.h"

#include <string.h>

static void
clear_spare (StPipeline *p)
{
  g_clear_pointer (&p->spare, g_ptr_array_unref);
}

void
st_pipeline_clear_activations (StPipeline *p)
{
  g_clear_pointer (&p->acts_input, st_tensor_free);
  for (guint i = 0; p->acts && i < p->nodes->len; i++)
    g_clear_pointer (&p->acts[i], st_tensor_free);
  clear_spare (p);
}

static gboolean
writes_all (const Node *node)
{
  return (st_kind_flags (node->stage->kind) & ST_KIND_WRITES_ALL) != 0;
}

/* A kept block for a tensor of `shape`: *t itself when it holds the shape
 * and is not more than twice what it needs (a smaller last batch reuses
 * it; a much smaller shape lets it go), else a new one.  zero: the caller
 * needs zeros, which a new block (calloc) has already. */
static StTensor *
reuse_or_new (const StRunContext *ctx, StTensor **t, StShape shape, gboolean zero,
              GError **error)
{
  guint64 need;
  if (*t && st_shape_bytes (shape, &need) && st_tensor_capacity (*t) <= 2 * need + ST_TENSOR_ALIGN
      && st_tensor_reshape_within (*t, shape))
    {
      if (zero)
        st_tensor_zero_parallel (ctx, *t);
      return g_steal_pointer (t);
    }
  g_clear_pointer (t, st_tensor_free);
  return st_tensor_new (shape, error);
}

/* The blocks of one call that frees its tensors as it goes (a forward
 * that keeps nothing, a backward's gradients): taken from p->spare and
 * given back to it, for the next call on an input of the same shape. */
typedef struct {
  StPipeline *p;
  const StRunContext *ctx;
  guint in_use, most_in_use;
} Spare;

static Spare
spare_begin (StPipeline *p, const StRunContext *ctx, StShape input)
{
  if (p->fresh_buffers || !st_shape_equal (p->spare_input, input))
    clear_spare (p);
  p->spare_input = input;
  return (Spare) { p, ctx, 0, 0 };
}

/* A block for a tensor of `shape`, zero-filled when asked: the smallest
 * spare one that holds it; failing that a new one, which replaces the
 * largest spare, so that no more blocks are kept than were in use at
 * once. */
static StTensor *
spare_take (Spare *sp, StShape shape, gboolean zero, GError **error)
{
  GPtrArray *spare = sp->p->spare;
  guint64 need;
  int best = -1, largest = -1;
  if (!st_shape_bytes (shape, &need))
    need = G_MAXUINT64;
  for (guint i = 0; spare && i < spare->len; i++)
    {
      gsize cap = st_tensor_capacity (spare->pdata[i]);
      if (cap >= need && (best < 0 || cap < st_tensor_capacity (spare->pdata[best])))
        best = (int) i;
      if (largest < 0 || cap > st_tensor_capacity (spare->pdata[largest]))
        largest = (int) i;
    }
  StTensor *t;
  if (best >= 0)
    {
      t = g_ptr_array_steal_index_fast (spare, best);
      st_tensor_reshape_within (t, shape);
      if (zero)
        st_tensor_zero_parallel (sp->ctx, t);
    }
  else
    {
      if (largest >= 0)
        g_ptr_array_remove_index_fast (spare, largest);
      if (!(t = st_tensor_new (shape, error)))
        return NULL;
    }
  sp->most_in_use = MAX (sp->most_in_use, ++sp->in_use);
  return t;
}

static void
spare_give (Spare *sp, StTensor *t)
{
  if (!t)
    return;
  sp->in_use--;
  if (!sp->p->spare)
    sp->p->spare = g_ptr_array_new_with_free_func ((GDestroyNotify) st_tensor_free);
  g_ptr_array_add (sp->p->spare, t);
}

/* Blocks beyond the most the call had in use at once are not needed. */
static void
spare_end (Spare *sp)
{
  GPtrArray *spare = sp->p->spare;
  while (spare && spare->len > sp->most_in_use)
    {
      guint smallest = 0;
      for (guint i = 1; i < spare->len; i++)
        if (st_tensor_capacity (spare->pdata[i]) < st_tensor_capacity (spare->pdata[smallest]))
          smallest = i;
      g_ptr_array_remove_index_fast (spare, smallest);
    }
  if (sp->p->fresh_buffers)
    clear_spare (sp->p);
}

const StTensor *
st_pipeline_activation (const StPipeline *p, int index)
{
  return p->acts[index];
}

StTensor *
st_pipeline_forward_range (StPipeline *p, const StRunContext *ctx, const StTensor *input,
                           int first, int last, gboolean keep_activations, GError **error)
{
  if (first == 0 && last == (int) p->nodes->len - 1)
    {
      if (!st_pipeline_prepare (p, input->shape, error))
        return NULL;
    }
  else
    {
      /* Sub-ranges re-infer on every call: shapes there are cheap and the
       * whole-pipeline cache above must not be fooled by them. */
      if (!st_pipeline_prepare_range (p, input->shape, first, last, error))
        return NULL;
    }
  const guint64 limit = st_memory_limit ();
  if (keep_activations && p->kept_bytes > limit)
    {
      g_autofree char *need = st_format_bytes (p->kept_bytes);
      g_autofree char *limit_text = st_format_bytes (limit);
      st_pipeline_set_error (error, p, ST_ERROR_MEMORY,
                             "keeping every stage's output of a batch of %d (for training or "
                             "feature "
                             "maps) needs %s; the limit is %s (--max-memory)", input->shape.n, need,
                             limit_text);
      return NULL;
    }
  /* Blocks kept from the last forward serve this one when it keeps its
   * outputs too; one that frees them as it goes keeps none. */
  gboolean reuse = keep_activations && !p->fresh_buffers;
  g_autofree StTensor **kept = g_new0 (StTensor *, p->nodes->len);
  StTensor *kept_input = NULL;
  if (reuse)
    {
      memcpy (kept, p->acts, sizeof (StTensor *) * p->nodes->len);
      memset (p->acts, 0, sizeof (StTensor *) * p->nodes->len);
      kept_input = g_steal_pointer (&p->acts_input);
      for (int i = 0; i < (int) p->nodes->len; i++)
        if (i < first || i > last)
          g_clear_pointer (&kept[i], st_tensor_free);
    }
  GPtrArray *spare = g_steal_pointer (&p->spare);
  st_pipeline_clear_activations (p);
  p->spare = spare;
  Spare sp = spare_begin (p, ctx, input->shape);
  p->range_first = first;
  p->range_last = last;
  if (keep_activations)
    {
      p->acts_input = reuse_or_new (ctx, &kept_input, input->shape, FALSE, error);
      if (!p->acts_input)
        goto fail;
      st_tensor_copy_into (ctx, p->acts_input, input);
    }
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      /* On the heap: a stage may have many thousand inputs. */
      g_autofree const StTensor **inputs = g_new (const StTensor *, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = st_node_source_in_range (node, k, first);
          inputs[k] = j < 0 ? input : p->acts[j];
        }
      StTensor *out;
      if (keep_activations)
        out = reuse_or_new (ctx, &kept[i], node->stage->out_shape, !writes_all (node), error);
      else if (i == last)
        out = st_tensor_new (node->stage->out_shape, error);  /* the caller's */
      else
        out = spare_take (&sp, node->stage->out_shape, !writes_all (node), error);
      if (!out)
        goto fail;
      g_autoptr (GError) local = NULL;
      if (!node->stage->kind->forward (node->stage, ctx, inputs, out, &local))
        {
          st_tensor_free (out);
          g_set_error (error, ST_ERROR, local ? local->code : ST_ERROR_FAILED,
                       "stage '%s' (%s): %s", node->stage->name, node->stage->kind->name,
                       local ? local->message : "forward failed");
          goto fail;
        }
      p->acts[i] = out;
      /* Free what nothing later reads, so large images keep few copies. */
      if (!keep_activations)
        for (int k = 0; k < node->n_inputs; k++)
          {
            int j = st_node_source_in_range (node, k, first);
            if (j >= 0 && ((Node *) p->nodes->pdata[j])->last_use == i)
              spare_give (&sp, g_steal_pointer (&p->acts[j]));
          }
    }
  if (keep_activations)
    return st_tensor_copy (p->acts[last]);
  StTensor *result = g_steal_pointer (&p->acts[last]);
  for (int i = first; i <= last; i++)
    spare_give (&sp, g_steal_pointer (&p->acts[i]));
  spare_end (&sp);
  return result;

fail:
  for (int i = 0; i < (int) p->nodes->len; i++)
    st_tensor_free (kept[i]);
  st_pipeline_clear_activations (p);
  return NULL;
}

StTensor *
st_pipeline_forward (StPipeline *p, const StRunContext *ctx, const StTensor *input,
                     gboolean keep_activations, GError **error)
{
  return st_pipeline_forward_range (p, ctx, input, 0, p->nodes->len - 1, keep_activations, error);
}

void
st_pipeline_set_backward_hook (StPipeline *p, StBackwardHook hook, gpointer user_data)
{
  p->backward_hook = hook;
  p->backward_hook_data = user_data;
}

static void
backward_done (StPipeline *p, int stage)
{
  if (p->backward_hook)
    p->backward_hook (stage, p->backward_hook_data);
}

gboolean
st_pipeline_backward_range (StPipeline *p, const StRunContext *ctx, const StTensor *grad_output,
                            int last, GError **error)
{
  int first = p->range_first;
  g_return_val_if_fail (p->acts_input != NULL && last >= first && last <= p->range_last
                        && p->acts[last] != NULL, FALSE);

  /* Only stages with parameters upstream of them need a gradient. */
  int n = p->nodes->len;
  g_autofree gboolean *needs = g_new0 (gboolean, n);
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      needs[i] = st_stage_n_weights (node->stage) > 0;
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = st_node_source_in_range (node, k, first);
          if (j >= 0 && needs[j])
            needs[i] = TRUE;
        }
    }

  g_autofree StTensor **grads = g_new0 (StTensor *, n);
  Spare sp = spare_begin (p, ctx, p->acts_input->shape);
  if (!(grads[last] = spare_take (&sp, grad_output->shape, FALSE, error)))
    return FALSE;
  st_tensor_copy_into (ctx, grads[last], grad_output);
  gboolean ok = TRUE;
  for (int i = last; i >= first && ok; i--)
    {
      Node *node = p->nodes->pdata[i];
      if (!grads[i] || !needs[i])
        {
          backward_done (p, i);
          continue;
        }
      if (!node->stage->kind->backward)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "%s: stage '%s' (%s) cannot be trained through: the kind has no backward "
                       "pass",
                       p->name, node->stage->name, node->stage->kind->name);
          ok = FALSE;
          break;
        }
      g_autofree const StTensor **inputs = g_new (const StTensor *, MAX (node->n_inputs, 1));
      g_autofree StTensor **gin = g_new0 (StTensor *, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs && ok; k++)
        {
          int j = st_node_source_in_range (node, k, first);
          inputs[k] = j < 0 ? p->acts_input : p->acts[j];
          if (j >= 0 && needs[j]
              && !(gin[k] = spare_take (&sp, p->acts[j]->shape, !writes_all (node), error)))
            ok = FALSE;
        }
      g_autoptr (GError) local = NULL;
      if (!ok)
        ;
      else if (!node->stage->kind->backward (node->stage, ctx, inputs, p->acts[i], grads[i], gin,
                                             &local))
        {
          g_set_error (error, ST_ERROR, local ? local->code : ST_ERROR_FAILED,
                       "stage '%s' (%s): %s", node->stage->name, node->stage->kind->name,
                       local ? local->message : "backward failed");
          ok = FALSE;
        }
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = st_node_source_in_range (node, k, first);
          if (!gin[k])
            continue;
          if (ok && !grads[j])
            grads[j] = gin[k];
          else
            {
              if (ok)
                st_tensor_add_into (ctx, grads[j], gin[k]);
              spare_give (&sp, gin[k]);
            }
        }
      spare_give (&sp, g_steal_pointer (&grads[i]));
      if (ok)
        backward_done (p, i);
    }
  for (int i = 0; i < n; i++)
    spare_give (&sp, grads[i]);
  spare_end (&sp);
  return ok;
}

gboolean
st_pipeline_backward (StPipeline *p, const StRunContext *ctx, const StTensor *grad_output,
                      GError **error)
{
  return st_pipeline_backward_range (p, ctx, grad_output, p->range_last, error);
}
