/* strata — a dataset prepared for a pipeline (see prepare.h). */
#include "prepare.h"
#include "context.h"
#include "image.h"

#include <string.h>

typedef struct {
  StPipeline *p;
  StRunContext *ctx;
  int prefix;
  StShape fixed;
  gboolean has_fixed;
  StShape first_image;         /* as decoded (colour only), for messages */
  gboolean seen_image;
  StShape first_sample;        /* the first image's output of the cached stages */
  gboolean seen_sample;
  StMessageFunc message;       /* the caller's, and its user_data */
  gpointer user_data;
} SampleMaker;

/* st_dataset_load_folder's lines, passed on to the caller's message. */
static void
maker_say (const char *line, gpointer data)
{
  SampleMaker *m = data;
  if (m->message)
    m->message (line, m->user_data);
}

/* A folder image becomes a sample by going through the pipeline's
 * preparation stages (grayscale, resize, ...). */
static StTensor *
make_sample (const StTensor *image, gpointer data, GError **error)
{
  SampleMaker *m = data;
  /* A classifier sees colour only.  Decoded images have 1 or 3 colour
   * channels, and alpha after them. */
  const gboolean has_alpha = image->shape.c == 2 || image->shape.c == 4;
  g_autoptr (StTensor) colour = has_alpha ? st_image_split_alpha (image, NULL) : NULL;
  const StTensor *in = has_alpha ? colour : image;
  if (!m->seen_image)
    {
      m->first_image = in->shape;
      m->seen_image = TRUE;
    }
  if (m->prefix == 0)
    {
      if (m->has_fixed && !st_shape_equal (in->shape, m->fixed))
        {
          char a[64], b[64];
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "image is %s, the pipeline takes %s (add grayscale or resize stages)",
                       st_shape_format (in->shape, a, sizeof a), st_shape_format (m->fixed, b, sizeof b));
          return NULL;
        }
      return st_tensor_copy (in);
    }
  g_autoptr (StTensor) sample = st_pipeline_forward_range (m->p, m->ctx, in, 0, m->prefix - 1,
                                                           FALSE, error);
  if (!sample)
    return NULL;
  /* Stages after a random one run per batch, on samples of one size. */
  int prepared = st_pipeline_prefix_length (m->p);
  if (m->seen_sample && m->prefix < prepared && !st_shape_equal (sample->shape, m->first_sample))
    {
      char a[64], b[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "image is %s before the random stage '%s', but the first was %s; "
                   "training batches the images from that stage on: put random stages "
                   "after those that bring every image to one size (resize)",
                   st_shape_format (sample->shape, a, sizeof a),
                   st_pipeline_stage (m->p, m->prefix)->name,
                   st_shape_format (m->first_sample, b, sizeof b));
      return NULL;
    }
  m->first_sample = sample->shape;
  m->seen_sample = TRUE;
  return g_steal_pointer (&sample);
}

/* Without input=, a pipeline's learnable stages are sized at load for a
 * 3x256x256 image; data of another shape would reach them as "declared
 * with another shape".  Say instead what is missing and what to write. */
static gboolean
check_sized_for_data (StPipeline *p, const char *dir, StShape sample, StShape image,
                      GError **error)
{
  int first = st_dataset_cached_stages (p);
  if (st_pipeline_fixed_input (p, NULL) || first >= st_pipeline_n_stages (p))
    return TRUE;
  StStage *stage = st_pipeline_stage (p, first);
  StShape sized = stage->in_shapes[0];
  sample.n = sized.n = 1;
  if (st_shape_equal (sample, sized))
    return TRUE;
  /* As input= is written: CxHxW. */
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "%s: the [pipeline] group has no input=, so stage '%s' was sized for %dx%dx%d; "
               "the images of %s make it %dx%dx%d: add input=%dx%dx%d to the [pipeline] group",
               st_pipeline_name (p), stage->name, sized.c, sized.h, sized.w, dir,
               sample.c, sample.h, sample.w, image.c, image.h, image.w);
  return FALSE;
}

int
st_dataset_cached_stages (StPipeline *p)
{
  int k = st_pipeline_prefix_length (p);
  for (int i = 0; i < k; i++)
    if (st_kind_flags (st_pipeline_stage (p, i)->kind) & ST_KIND_RANDOM)
      return i;
  return k;
}

gboolean
st_dataset_apply_prefix (StDataset *ds, StPipeline *p, int threads, GError **error)
{
  int k = st_dataset_cached_stages (p);
  if (k == 0)
    return TRUE;
  g_autoptr (StRunContext) ctx = st_run_context_new (threads, 0);
  StShape s = ds->x->shape;
  gsize per = (gsize) s.c * s.h * s.w;
  const int chunk = 512;
  StTensor *result = NULL;
  gsize per_out = 0;
  for (int start = 0; start < s.n; start += chunk)
    {
      int count = MIN (chunk, s.n - start);
      g_autoptr (StTensor) in = st_tensor_new0 (count, s.c, s.h, s.w);
      memcpy (in->data, ds->x->data + start * per, count * per * sizeof (float));
      g_autoptr (StTensor) out = st_pipeline_forward_range (p, ctx, in, 0, k - 1, FALSE, error);
      if (!out)
        {
          st_tensor_free (result);
          return FALSE;
        }
      if (!result)
        {
          result = st_tensor_new0 (s.n, out->shape.c, out->shape.h, out->shape.w);
          per_out = (gsize) out->shape.c * out->shape.h * out->shape.w;
        }
      memcpy (result->data + start * per_out, out->data, count * per_out * sizeof (float));
    }
  st_tensor_free (ds->x);
  ds->x = result;
  return TRUE;
}

StDataset *
st_dataset_prepare (StPipeline *p, const char *dir, gboolean test_set, int limit, int threads,
                    guint64 max_pixels, StMessageFunc message, gpointer user_data,
                    GError **error)
{
  g_autoptr (StDataset) ds = NULL;
  StShape image;
  if (st_dataset_is_idx_dir (dir))
    {
      /* The header says the shape: a misfit is refused before the data
       * (hundreds of MB, maybe) is read. */
      StShape fixed;
      if (!st_dataset_idx_dir_image_shape (dir, test_set, &image, error))
        return NULL;
      if (st_pipeline_fixed_input (p, &fixed) && !st_shape_equal (fixed, image))
        {
          char a[64], b[64];
          g_set_error (error, ST_ERROR, ST_ERROR_DATA, "%s: images are %s, the pipeline %s takes %s",
                       dir, st_shape_format (image, a, sizeof a), st_pipeline_name (p),
                       st_shape_format (fixed, b, sizeof b));
          return NULL;
        }
      ds = st_dataset_load_idx_dir_first (dir, test_set, MAX (limit, 0), error);
      if (!ds)
        return NULL;
      if (!st_dataset_apply_prefix (ds, p, threads, error))
        return NULL;
    }
  else
    {
      g_autoptr (StRunContext) ctx = st_run_context_new (threads, 0);
      SampleMaker maker = { .p = p, .ctx = ctx, .prefix = st_dataset_cached_stages (p),
                            .message = message, .user_data = user_data };
      maker.has_fixed = st_pipeline_fixed_input (p, &maker.fixed);
      ds = st_dataset_load_folder (dir, st_pipeline_labels (p), make_sample, maker_say, &maker,
                                   max_pixels, error);
      if (!ds)
        return NULL;
      image = maker.first_image;
      if (limit > 0 && limit < ds->n)
        st_dataset_truncate (ds, limit);
      if (ds->n_skipped && message)
        {
          g_autofree char *line = g_strdup_printf ("%s: %u unreadable images skipped", dir,
                                                   ds->n_skipped);
          message (line, user_data);
        }
    }
  if (ds->n > 0 && !check_sized_for_data (p, dir, ds->x->shape, image, error))
    return NULL;
  return g_steal_pointer (&ds);
}
