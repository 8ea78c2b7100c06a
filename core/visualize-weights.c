/* strata — the picture of a pipeline's filters: the first 4-D weight, one
 * tile per filter on one scale (see st_draw_weights in visualize.h). */
#include "visualize-private.h"
#include "stage.h"

#include <math.h>

void
st_weights_layout_free (StWeightsLayout *layout)
{
  if (!layout)
    return;
  g_free (layout->tiles);
  g_free (layout);
}

/* The filters are the first 4-D parameter, [out, in/groups, kh, kw] as
 * the SDK lays out a convolution's weight, whatever the kind is called. */
static gboolean
find_conv_weight (StPipeline *p, int *stage_index, int *param_index)
{
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      for (int k = 0; k < st_stage_n_weights (s); k++)
        {
          StWeight *param = st_stage_get_weight (s, k);
          if (param->rank == 4)
            {
              *stage_index = i;
              *param_index = k;
              return TRUE;
            }
        }
    }
  return FALSE;
}

/* One scale for every filter, so that their strengths compare. */
static double
weights_scale (const StTensor *w)
{
  float lo, hi;
  st_picture_value_range (w->data, st_tensor_numel (w), &lo, &hi);
  double m = MAX (-lo, hi);
  return m > 0 ? m : 1;
}

/* The lines under the picture's title: the stage and shape, and the scale
 * ("-m [bar] note" with one kernel per tile, "note" alone for RGB tiles). */
typedef struct {
  char *stage;
  char *low;
  char *note;
} WeightsText;

static void
weights_text (StPipeline *p, const StWeightsLayout *l, WeightsText *t)
{
  StStage *stage = st_pipeline_stage (p, l->stage);
  char m_s[32];
  st_picture_format_value (m_s, sizeof m_s, weights_scale (st_stage_get_weight (stage, l->param)->value));
  t->stage = g_strdup_printf ("%s (%s) weight %dx%dx%dx%d", stage->name, stage->kind->name,
                              l->n_filters, l->in_channels, l->kh, l->kw);
  if (l->rgb)
    {
      t->low = NULL;
      t->note = g_strdup_printf ("one RGB tile per filter, grey = 0; one scale, ±%s", m_s);
      return;
    }
  t->low = g_strdup_printf ("−%s", m_s);
  if (l->in_channels > l->rows_per_filter)
    t->note = g_strdup_printf ("+%s, one scale; per filter a column of its input channels "
                               "1–%d of %d", m_s, l->rows_per_filter, l->in_channels);
  else if (l->rows_per_filter > 1)
    t->note = g_strdup_printf ("+%s, one scale; per filter a column of its input channels",
                               m_s);
  else
    t->note = g_strdup_printf ("+%s, one scale for every filter", m_s);
}

static void
weights_text_clear (WeightsText *t)
{
  g_free (t->stage);
  g_free (t->low);
  g_free (t->note);
}

enum { LEGEND_BAR = 60 };

static int
weights_text_width (const WeightsText *t)
{
  double stage = st_picture_text_width (t->stage, 13, TRUE);
  double scale = st_picture_text_width (t->note, 11, FALSE);
  if (t->low)
    scale += st_picture_text_width (t->low, 11, FALSE) + LEGEND_BAR + 12;
  return (int) ceil (MAX (stage, scale));
}

StWeightsLayout *
st_weights_layout (StPipeline *p, GError **error)
{
  int stage, param;
  if (!find_conv_weight (p, &stage, &param))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "%s: no stage with 4-D weights (a convolution's): there are no filters to draw",
                   st_pipeline_name (p));
      return NULL;
    }
  const StWeight *w = st_stage_get_weight (st_pipeline_stage (p, stage), param);
  StWeightsLayout *l = g_new0 (StWeightsLayout, 1);
  l->stage = stage;
  l->param = param;
  l->n_filters = w->dims[0];
  l->in_channels = w->dims[1];
  l->kh = w->dims[2];
  l->kw = w->dims[3];
  l->rgb = l->in_channels == 3;
  l->rows_per_filter = l->rgb ? 1 : MIN (l->in_channels, KERNEL_ROWS);
  int side = MAX (l->kh, l->kw);
  l->scale = MAX (3, (KERNEL_SIDE + side - 1) / side);
  int tw = l->kw * l->scale, th = l->kh * l->scale;
  /* A filter is a column of its kernels 2 px apart; filters stand further
   * apart, so that one filter reads as one thing. */
  int cell_w = tw, cell_h = l->rows_per_filter * (th + 2) - 2;
  int gap = l->rows_per_filter > 1 ? 8 : 2;
  int avail = MAX_WIDTH - 2 * MARGIN - 2;
  int cap = MAX (1, (avail + gap) / (cell_w + gap));
  int cols = MIN (MIN (cap, l->n_filters), MAX (8, (int) ceil (sqrt (l->n_filters))));
  int rows = (l->n_filters + cols - 1) / cols;
  int top = MARGIN + WEIGHTS_HEADER_H;
  l->tiles = g_new (StRect, (gsize) l->n_filters * l->rows_per_filter);
  for (int f = 0; f < l->n_filters; f++)
    for (int r = 0; r < l->rows_per_filter; r++)
      l->tiles[f * l->rows_per_filter + r] = (StRect) {
        MARGIN + 2 + (f % cols) * (cell_w + gap),
        top + 2 + (f / cols) * (cell_h + gap) + r * (th + 2), tw, th };
  l->panel = (StRect) { MARGIN, top, cols * (cell_w + gap) - gap + 4,
                        rows * (cell_h + gap) - gap + 4 };
  WeightsText text;
  weights_text (p, l, &text);
  int content_w = MAX (MAX (l->panel.width, st_picture_header_width (p, "filters")),
                       weights_text_width (&text));
  weights_text_clear (&text);
  l->width = CLAMP (content_w + 2 * MARGIN, WEIGHTS_MIN_WIDTH, MAX_WIDTH);
  l->height = top + l->panel.height + MARGIN;
  if (l->height > MAX_HEIGHT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "%s: %d filters would make a picture %d px high, more than %d",
                   st_pipeline_name (p), l->n_filters, l->height, MAX_HEIGHT);
      st_weights_layout_free (l);
      return NULL;
    }
  return l;
}

cairo_surface_t *
st_render_weights (StPipeline *p, GError **error)
{
  g_autoptr (StWeightsLayout) l = st_weights_layout (p, error);
  if (!l)
    return NULL;
  StStage *stage = st_pipeline_stage (p, l->stage);
  const StTensor *w = st_stage_get_weight (stage, l->param)->value;
  double m = weights_scale (w);

  cairo_surface_t *surface = st_picture_new_surface (l->width, l->height, error);
  if (!surface)
    return NULL;
  cairo_t *cr = cairo_create (surface);
  st_picture_fill_panel (cr, l->panel, 0.55);
  cairo_surface_flush (surface);
  gsize kernel = (gsize) l->kh * l->kw;
  g_autofree guint8 *rgb = g_malloc (kernel * 3);
  for (int f = 0; f < l->n_filters; f++)
    for (int r = 0; r < l->rows_per_filter; r++)
      {
        const float *k = w->data + ((gsize) f * l->in_channels + r) * kernel;
        for (gsize i = 0; i < kernel; i++)
          {
            if (l->rgb)
              for (int ch = 0; ch < 3; ch++)
                {
                  double v = 0.5 + 0.5 * k[ch * kernel + i] / m;
                  rgb[3 * i + ch] = (guint8) lround (255.0 * (isfinite (v) ? CLAMP (v, 0.0, 1.0)
                                                                           : 0.5));
                }
            else
              st_colour_diverging (k[i] / m, rgb + 3 * i);
          }
        st_picture_blit (surface, l->tiles[f * l->rows_per_filter + r], rgb, l->kw, l->kh);
      }
  cairo_surface_mark_dirty (surface);

  st_picture_draw_header (cr, "filters", p);
  WeightsText text;
  weights_text (p, l, &text);
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  st_picture_set_font (cr, 13, TRUE);
  st_picture_show_text (cr, MARGIN, MARGIN + 38, text.stage);
  cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
  st_picture_set_font (cr, 11, FALSE);
  double x = MARGIN, y = MARGIN + 58;
  if (text.low)
    {
      x = st_picture_show_text (cr, x, y, text.low);
      st_picture_legend_bar (cr, x + 6, y - 9, LEGEND_BAR, 10, TRUE);
      cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
      x += LEGEND_BAR + 12;
    }
  st_picture_show_text (cr, x, y, text.note);
  weights_text_clear (&text);
  cairo_destroy (cr);
  return surface;
}
