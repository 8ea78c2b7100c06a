/* strata — running the graph: forward over a range of stages, keeping
 * activations when asked, and back-propagation through them. */
#include "pipeline-private.h"
#include "context.h"
#include "param.h"

void
st_pipeline_clear_activations (StPipeline *p)
{
  g_clear_pointer (&p->acts_input, st_tensor_free);
  for (guint i = 0; p->acts && i < p->nodes->len; i++)
    g_clear_pointer (&p->acts[i], st_tensor_free);
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
  st_pipeline_clear_activations (p);
  p->range_first = first;
  p->range_last = last;
  if (keep_activations)
    p->acts_input = st_tensor_copy (input);
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
      StTensor *out = st_tensor_new (node->stage->out_shape, error);
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
              g_clear_pointer (&p->acts[j], st_tensor_free);
          }
    }
  if (keep_activations)
    return st_tensor_copy (p->acts[last]);
  StTensor *result = g_steal_pointer (&p->acts[last]);
  st_pipeline_clear_activations (p);
  return result;

fail:
  st_pipeline_clear_activations (p);
  return NULL;
}

StTensor *
st_pipeline_forward (StPipeline *p, const StRunContext *ctx, const StTensor *input,
                     gboolean keep_activations, GError **error)
{
  return st_pipeline_forward_range (p, ctx, input, 0, p->nodes->len - 1, keep_activations, error);
}

static void
add_into (StTensor *dst, const StTensor *src)
{
  gsize n = st_tensor_numel (dst);
  for (gsize i = 0; i < n; i++)
    dst->data[i] += src->data[i];
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
  grads[last] = st_tensor_copy (grad_output);
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
      g_autofree StTensor **gin = g_new (StTensor *, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = st_node_source_in_range (node, k, first);
          inputs[k] = j < 0 ? p->acts_input : p->acts[j];
          gin[k] = j >= 0 && needs[j] ? st_tensor_new (p->acts[j]->shape, NULL) : NULL;
        }
      g_autoptr (GError) local = NULL;
      if (!node->stage->kind->backward (node->stage, ctx, inputs, p->acts[i], grads[i], gin, &local))
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
                add_into (grads[j], gin[k]);
              st_tensor_free (gin[k]);
            }
        }
      g_clear_pointer (&grads[i], st_tensor_free);
      if (ok)
        backward_done (p, i);
    }
  for (int i = 0; i < n; i++)
    st_tensor_free (grads[i]);
  return ok;
}

gboolean
st_pipeline_backward (StPipeline *p, const StRunContext *ctx, const StTensor *grad_output,
                      GError **error)
{
  return st_pipeline_backward_range (p, ctx, grad_output, p->range_last, error);
}
