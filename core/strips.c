/* strata — running an image a strip of rows at a time (DESIGN.md, halo). */
#include "context.h"
#include "strips.h"

#include <string.h>

/* The rows of input around every output row that a strip must carry, when
 * p can run on strips of an image of this shape: every stage local (a halo,
 * not ST_HALO_WHOLE) and of the image's height and width, and an image out.
 * Summing every stage's halo bounds the deepest path through the graph.
 * -1 when p needs the whole image. */
int
st_strip_halo (StPipeline *p, StShape shape)
{
  /* Shapes only: the whole image may pass the memory bound where strips do not. */
  if (!st_pipeline_infer_shapes (p, shape, NULL))
    return -1;
  int total = 0;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      const StStage *stage = st_pipeline_stage (p, i);
      StShape out = stage->out_shape;
      if (stage->halo < 0 || out.n != 1 || out.h != shape.h || out.w != shape.w)
        return -1;
      total += stage->halo;
      if (total >= shape.h)
        return -1;
    }
  int c = st_pipeline_output_shape (p).c;
  return c == 1 || c == 3 ? total : -1;
}

void
st_strip_scratch_clear (StStripScratch *s)
{
  for (int i = 0; i < FEED_BUFFERS; i++)
    g_clear_pointer (&s->buffers[i], st_tensor_free);
}

typedef struct {
  StImageReader *reader;
  int width, height, channels, rows, halo;
  int n_strips;
  StTensor *buffers[FEED_BUFFERS]; /* the scratch's */
  StTensor strips[FEED_BUFFERS];   /* views of the buffers, as filled */
  int firsts[FEED_BUFFERS];        /* the image row each view starts at */
  GThread *thread;
  GMutex lock;
  GCond cond;
  int filled;                      /* strips decoded */
  int released;                    /* strips the consumer is done with */
  gboolean cancel;
  GError *error;                   /* the decoder's, once it stopped */
} Feed;

/* Copies n rows of every plane of src, from row src_row on, to dst's rows
 * from dst_row on. */
static void
copy_rows (const StTensor *src, int src_row, StTensor *dst, int dst_row, int n)
{
  const gsize w = src->shape.w;
  for (int c = 0; c < src->shape.c; c++)
    memcpy (dst->data + ((gsize) c * dst->shape.h + dst_row) * w,
            src->data + ((gsize) c * src->shape.h + src_row) * w,
            sizeof (float) * w * n);
}

/* Decodes strip k; strip k - 1 must still be held. */
static gboolean
feed_fill (Feed *f, int k, GError **error)
{
  const int y0 = k * f->rows, y1 = MIN (f->height, y0 + f->rows);
  const int first = MAX (0, y0 - f->halo), last = MIN (f->height, y1 + f->halo);
  const int slot = k % FEED_BUFFERS;
  StTensor *in = &f->strips[slot];
  *in = (StTensor) { { 1, f->channels, last - first, f->width }, f->buffers[slot]->data };
  f->firsts[slot] = first;
  int read_from = first;
  if (k > 0)
    {
      const int prev = (k - 1) % FEED_BUFFERS;
      const int held_last = f->firsts[prev] + f->strips[prev].shape.h;
      if (held_last > first)
        copy_rows (&f->strips[prev], first - f->firsts[prev], in, 0, held_last - first);
      read_from = MAX (held_last, first);
    }
  return st_image_reader_read (f->reader, in, read_from - first, last - read_from, error);
}

static gpointer
feed_thread (gpointer data)
{
  st_thread_unpin ();
  Feed *f = data;
  for (int k = 0; k < f->n_strips; k++)
    {
      g_mutex_lock (&f->lock);
      /* Strip k reuses the buffer of strip k - FEED_BUFFERS. */
      while (!f->cancel && k - f->released >= FEED_BUFFERS)
        g_cond_wait (&f->cond, &f->lock);
      gboolean cancel = f->cancel;
      g_mutex_unlock (&f->lock);
      if (cancel)
        break;
      GError *error = NULL;
      gboolean ok = feed_fill (f, k, &error);
      g_mutex_lock (&f->lock);
      if (ok)
        f->filled = k + 1;
      else
        f->error = error;
      g_cond_broadcast (&f->cond);
      g_mutex_unlock (&f->lock);
      if (!ok)
        break;
    }
  return NULL;
}

static void
feed_init (Feed *f, StStripScratch *scratch, StImageReader *reader, int width, int height,
           int channels, int rows, int halo, gboolean threaded)
{
  *f = (Feed) { .reader = reader, .width = width, .height = height, .channels = channels,
                .rows = rows, .halo = halo, .n_strips = (height + rows - 1) / rows };
  const StShape shape = { 1, channels, MIN (height, rows + 2 * halo), width };
  for (int i = 0; i < FEED_BUFFERS; i++)
    {
      if (!scratch->buffers[i]
          || st_tensor_numel (scratch->buffers[i]) < st_shape_numel (shape))
        {
          st_tensor_free (scratch->buffers[i]);
          scratch->buffers[i] = st_tensor_new0 (shape.n, shape.c, shape.h, shape.w);
        }
      f->buffers[i] = scratch->buffers[i];
    }
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  if (threaded)
    f->thread = g_thread_try_new ("strata-decode", feed_thread, f, NULL);
}

/* Strip k, decoded; NULL with error set when decoding failed. */
static const StTensor *
feed_get (Feed *f, int k, int *first, GError **error)
{
  if (!f->thread)
    {
      if (!feed_fill (f, k, error))
        return NULL;
    }
  else
    {
      g_mutex_lock (&f->lock);
      while (f->filled <= k && !f->error)
        g_cond_wait (&f->cond, &f->lock);
      gboolean ok = f->filled > k;
      if (!ok)
        g_propagate_error (error, g_steal_pointer (&f->error));
      g_mutex_unlock (&f->lock);
      if (!ok)
        return NULL;
    }
  *first = f->firsts[k % FEED_BUFFERS];
  return &f->strips[k % FEED_BUFFERS];
}

static void
feed_release (Feed *f, int k)
{
  g_mutex_lock (&f->lock);
  f->released = k + 1;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
}

static void
feed_clear (Feed *f)
{
  if (f->thread)
    {
      g_mutex_lock (&f->lock);
      f->cancel = TRUE;
      g_cond_broadcast (&f->cond);
      g_mutex_unlock (&f->lock);
      g_thread_join (f->thread);
    }
  g_clear_error (&f->error);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
}

/* Runs p a strip at a time.  Each strip's input carries `halo` rows either
 * side of its output rows, so those are exactly what the whole image gives
 * them: interior strip edges fall only in rows that are thrown away, while
 * the image's own top and bottom see the stages' border handling as
 * before.  Memory stays at a few strips whatever the image's size. */
gboolean
st_run_strips (StPipeline *p, StRunContext *ctx, StStripScratch *scratch, StJob *job,
               StImageReader *reader, const StImageInfo *info, int width, int height,
               int channels, int halo, const StStripOptions *opt, GError **error)
{
  const int colour = info->has_alpha ? channels - 1 : channels;
  const int rows = opt->rows > 0 ? opt->rows : MAX (STRIP_ROWS, 2 * halo);
  Feed feed;
  /* A worker with one thread shares the machine with other workers, which
   * keep the cores busy already. */
  feed_init (&feed, scratch, reader, width, height, channels, rows, halo,
             st_parallel_threads (ctx) > 1);
  st_pool_set_sharing (ctx ? ctx->pool : NULL, feed.thread != NULL);
  StImageWriter *writer = NULL;
  gboolean ok = TRUE;

  for (int k = 0; ok && k < feed.n_strips; k++)
    {
      const int y0 = k * rows, y1 = MIN (height, y0 + rows);
      int first;
      if (opt->stop (job, error))
        {
          ok = FALSE;
          break;
        }
      const StTensor *in = feed_get (&feed, k, &first, error);
      if (!in)
        {
          ok = FALSE;
          break;
        }
      /* Alpha, the last plane, stays out of the filters, as in run_one. */
      const StTensor picture = { { 1, colour, in->shape.h, width }, in->data };
      g_autoptr (GError) local = NULL;
      g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, &picture, FALSE, &local);
      if (!out)
        {
          g_set_error (error, ST_ERROR, local->code, "%s: %s", st_job_name (job), local->message);
          ok = FALSE;
          break;
        }
      if (out->shape.h != in->shape.h || out->shape.w != width)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "%s: the pipeline made a strip of %dx%d pixels %dx%d", st_job_name (job),
                       width, in->shape.h, out->shape.w, out->shape.h);
          ok = FALSE;
          break;
        }
      if (!writer)
        {
          if (!st_job_check_output_channels (job, out, error) || !st_job_make_output_folder (job, error))
            {
              ok = FALSE;
              break;
            }
          const gboolean keeps_depth = job->format == ST_FORMAT_PNG || job->format == ST_FORMAT_TIFF
                                       || job->format == ST_FORMAT_PNM;
          const int depth = keeps_depth ? info->bit_depth : 8;
          writer = st_image_writer_open_with (job->output, job->format, width, height,
                                              out->shape.c + (info->has_alpha ? 1 : 0), depth,
                                              opt->jpeg_quality, opt->write, error);
          if (!writer)
            {
              ok = FALSE;
              break;
            }
        }
      const float *planes[4];
      const gsize skip = (gsize) (y0 - first) * width;
      for (int c = 0; c < out->shape.c; c++)
        planes[c] = out->data + (gsize) c * out->shape.h * width + skip;
      if (info->has_alpha)
        planes[out->shape.c] = in->data + (gsize) colour * in->shape.h * width + skip;
      ok = st_image_writer_write_planes (writer, planes, y1 - y0, error);
      feed_release (&feed, k);
    }

  feed_clear (&feed);
  st_pool_set_sharing (ctx ? ctx->pool : NULL, FALSE);
  if (ok)
    ok = st_image_writer_finish (writer, error);
  else
    st_image_writer_abort (writer);
  job->in_strips = ok;
  return ok;
}

