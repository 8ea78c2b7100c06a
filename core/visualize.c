/* strata — pictures of what a pipeline computes, drawn with cairo.
 *
 * Text, frames and bars go through cairo; tiles are written straight into
 * the surface's pixels so that every value gets exactly its colour (tests
 * read them back) and upscaling is plain nearest-neighbour. */
#include "visualize.h"
#include "picture.h"

#include "classifier.h"
#include "context.h"
#include "stage.h"
#include "visualize-private.h"

#include <cairo.h>
#include <math.h>
#include <string.h>

static const guint8 BLUE[3] = { 33, 102, 172 }, RED[3] = { 178, 24, 43 };

void
st_colour_diverging (double t, guint8 rgb[3])
{
  if (!isfinite (t))
    t = 0;
  t = CLAMP (t, -1.0, 1.0);
  const guint8 *end = t < 0 ? BLUE : RED;
  double a = fabs (t);
  for (int k = 0; k < 3; k++)
    rgb[k] = (guint8) lround (255.0 + (end[k] - 255.0) * a);
}

static void
colour_grey (double t, guint8 rgb[3])
{
  t = isfinite (t) ? CLAMP (t, 0.0, 1.0) : 0;
  rgb[0] = rgb[1] = rgb[2] = (guint8) lround (255.0 * t);
}

/* ---- Layout ------------------------------------------------------------- */


/* How large a tile is, from its map's long side: maps smaller than `up`
 * grow by whole pixels to about `up` (at least TILE_MIN), so every value is a
 * crisp square; maps up to `max` keep their size, larger ones shrink to it.
 * Few channels get room to show detail (a photograph's three channels stay
 * at full size), many get small tiles so that a stage stays a few rows high. */
static void
tile_size (int h, int w, StSectionKind kind, int n, int *th, int *tw)
{
  int up, max;
  if (kind == ST_SECTION_IMAGE || n <= 4)
    up = 160, max = 512;
  else if (n <= 16)
    up = 128, max = 256;
  else
    up = 64, max = 128;
  int side = MAX (h, w);
  if (side <= max)
    {
      int k = MAX (MAX (up / side, (TILE_MIN + side - 1) / side), 1);
      *th = h * k;
      *tw = w * k;
    }
  else
    {
      *th = MAX (1, (int) lround ((double) h * max / side));
      *tw = MAX (1, (int) lround ((double) w * max / side));
    }
}

/* Places n tiles in rows no wider than avail, rows balanced so the last is
 * not a lone tile; returns the grid's width and height. */
static void
place_grid (StRect *tiles, int n, int tw, int th, int gap, int x0, int y0, int avail,
            int *grid_w, int *grid_h)
{
  int cap = MAX (1, (avail + gap) / (tw + gap));
  int rows = (n + cap - 1) / cap;
  int cols = (n + rows - 1) / rows;
  for (int i = 0; i < n; i++)
    tiles[i] = (StRect) { x0 + (i % cols) * (tw + gap), y0 + (i / cols) * (th + gap), tw, th };
  *grid_w = cols * (tw + gap) - gap;
  *grid_h = rows * (th + gap) - gap;
}

void
st_map_layout_free (StMapLayout *layout)
{
  if (!layout)
    return;
  for (int s = 0; s < layout->n_sections; s++)
    g_free (layout->sections[s].tiles);
  g_free (layout->sections);
  g_free (layout);
}

StMapLayout *
st_feature_map_layout (StPipeline *p, StShape input, GError **error)
{
  if (!st_pipeline_prepare (p, input, error))
    return NULL;
  int n_stages = st_pipeline_n_stages (p);
  gboolean bars = st_pipeline_is_classifier (p);
  StMapLayout *l = g_new0 (StMapLayout, 1);
  l->n_sections = 1 + n_stages + (bars ? 1 : 0);
  l->sections = g_new0 (StMapSection, l->n_sections);
  /* Tiles sit 1 px inside their area, leaving room for frames and panels. */
  const int avail = MAX_WIDTH - 2 * MARGIN - 2;
  int y = MARGIN + HEADER_H, content_w = 0;
  for (int s = 0; s < l->n_sections; s++)
    {
      StMapSection *sec = &l->sections[s];
      gboolean is_bars = s == n_stages + 1;
      sec->stage = is_bars ? n_stages - 1 : s - 1;
      StShape shape = s == 0 ? input : st_pipeline_stage (p, sec->stage)->out_shape;
      sec->n_channels = shape.c;
      sec->title_y = y + 15;
      int top = y + TITLE_H, gw, gh;
      if (is_bars)
        {
          sec->kind = ST_SECTION_SCORES;
          /* The width is the picture's, known once every section is placed. */
          sec->area = (StRect) { MARGIN, top, 0, MIN (shape.c, MAX_BARS) * BAR_ROW };
          y = top + sec->area.height + SECTION_GAP;
          continue;
        }
      if (shape.h == 1 && shape.w == 1)
        {
          sec->kind = ST_SECTION_STRIP;
          sec->n_tiles = MIN (shape.c, MAX_CELLS);
          int cell = CLAMP ((avail + 1) / sec->n_tiles - 1, CELL_MIN, CELL_MAX);
          sec->tiles = g_new (StRect, sec->n_tiles);
          place_grid (sec->tiles, sec->n_tiles, cell, cell, 1, MARGIN + 1, top + 1, avail,
                      &gw, &gh);
        }
      else
        {
          sec->kind = s == 0 && (shape.c == 1 || shape.c == 3) ? ST_SECTION_IMAGE
                                                                : ST_SECTION_MAPS;
          sec->n_tiles = sec->kind == ST_SECTION_IMAGE ? 1 : MIN (shape.c, MAX_MAPS);
          int th, tw;
          tile_size (shape.h, shape.w, sec->kind, sec->n_tiles, &th, &tw);
          sec->tiles = g_new (StRect, sec->n_tiles);
          place_grid (sec->tiles, sec->n_tiles, tw, th, TILE_GAP, MARGIN + 1, top + 1, avail,
                      &gw, &gh);
        }
      sec->area = (StRect) { MARGIN, top, gw + 2, gh + 2 };
      content_w = MAX (content_w, sec->area.width);
      y = top + sec->area.height + SECTION_GAP;
    }
  content_w = MAX (content_w, st_picture_header_width (p, "feature maps"));
  l->width = CLAMP (content_w + 2 * MARGIN, MIN_WIDTH, MAX_WIDTH);
  l->height = y - SECTION_GAP + MARGIN;
  if (bars)
    l->sections[l->n_sections - 1].area.width = l->width - 2 * MARGIN;
  if (l->height > MAX_HEIGHT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "%s: the feature maps would make a picture %d px high, more than %d",
                   st_pipeline_name (p), l->height, MAX_HEIGHT);
      st_map_layout_free (l);
      return NULL;
    }
  return l;
}

/* ---- Drawing helpers ---------------------------------------------------- */

/* Copies an sw x sh RGB picture into r, nearest-neighbour, sampling each
 * screen pixel's centre (whole-number upscales repeat each value exactly). */
void
st_picture_blit (cairo_surface_t *surface, StRect r, const guint8 *rgb, int sw, int sh)
{
  unsigned char *data = cairo_image_surface_get_data (surface);
  int stride = cairo_image_surface_get_stride (surface);
  for (int y = 0; y < r.height; y++)
    {
      int sy = (int) (((gint64) 2 * y + 1) * sh / (2 * (gint64) r.height));
      guint32 *row = (guint32 *) (data + (gsize) (r.y + y) * stride) + r.x;
      for (int x = 0; x < r.width; x++)
        {
          int sx = (int) (((gint64) 2 * x + 1) * sw / (2 * (gint64) r.width));
          const guint8 *c = rgb + ((gsize) sy * sw + sx) * 3;
          row[x] = (guint32) c[0] << 16 | (guint32) c[1] << 8 | c[2];
        }
    }
}

/* A plane of sw x sh values at dw x dh: each value the mean of the source
 * pixels it covers, which is just the nearest one when enlarging.  Averaging
 * keeps thin edges visible where sampling would drop most of them. */
static void
resample (const float *src, int sw, int sh, float *dst, int dw, int dh)
{
  for (int y = 0; y < dh; y++)
    {
      int y0 = (int) ((gint64) y * sh / dh);
      int y1 = MAX (y0 + 1, (int) (((gint64) (y + 1) * sh + dh - 1) / dh));
      for (int x = 0; x < dw; x++)
        {
          int x0 = (int) ((gint64) x * sw / dw);
          int x1 = MAX (x0 + 1, (int) (((gint64) (x + 1) * sw + dw - 1) / dw));
          double sum = 0;
          int n = 0;
          for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++)
              {
                float v = src[(gsize) yy * sw + xx];
                if (isfinite (v))
                  sum += v, n++;
              }
          dst[(gsize) y * dw + x] = n ? (float) (sum / n) : NAN;
        }
    }
}

void
st_picture_value_range (const float *v, gsize n, float *lo, float *hi)
{
  *lo = INFINITY;
  *hi = -INFINITY;
  for (gsize i = 0; i < n; i++)
    if (isfinite (v[i]))
      {
        *lo = MIN (*lo, v[i]);
        *hi = MAX (*hi, v[i]);
      }
  if (*lo > *hi)
    *lo = *hi = 0;
}

/* Values on one scale: symmetric about zero when any is negative, so zero is
 * always white; else black at the minimum to white at the maximum. */
static void
colour_values (const float *v, gsize n, guint8 *rgb)
{
  float lo, hi;
  st_picture_value_range (v, n, &lo, &hi);
  if (lo < 0)
    {
      double m = MAX (-lo, hi);
      for (gsize i = 0; i < n; i++)
        st_colour_diverging (v[i] / m, rgb + 3 * i);
    }
  else
    for (gsize i = 0; i < n; i++)
      colour_grey (hi > lo ? (v[i] - lo) / (double) (hi - lo) : 0, rgb + 3 * i);
}

void
st_picture_set_font (cairo_t *cr, double size, gboolean bold)
{
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                          bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, size);
}

/* Shows text at (x, y) and returns where the next text would start. */
double
st_picture_show_text (cairo_t *cr, double x, double y, const char *text)
{
  cairo_text_extents_t ext;
  cairo_text_extents (cr, text, &ext);
  cairo_move_to (cr, x, y);
  cairo_show_text (cr, text);
  return x + ext.x_advance;
}

void
st_picture_fill_panel (cairo_t *cr, StRect r, double grey)
{
  cairo_set_source_rgb (cr, grey, grey, grey);
  cairo_rectangle (cr, r.x, r.y, r.width, r.height);
  cairo_fill (cr);
}

static void
frame_tile (cairo_t *cr, StRect t)
{
  cairo_set_source_rgb (cr, 0.78, 0.78, 0.78);
  cairo_set_line_width (cr, 1);
  cairo_rectangle (cr, t.x - 0.5, t.y - 0.5, t.width + 1, t.height + 1);
  cairo_stroke (cr);
}

/* A small horizontal bar of the diverging scale (or the grey one). */
void
st_picture_legend_bar (cairo_t *cr, double x, double y, double w, double h, gboolean diverging)
{
  cairo_pattern_t *g = cairo_pattern_create_linear (x, 0, x + w, 0);
  if (diverging)
    {
      cairo_pattern_add_color_stop_rgb (g, 0, BLUE[0] / 255.0, BLUE[1] / 255.0, BLUE[2] / 255.0);
      cairo_pattern_add_color_stop_rgb (g, 0.5, 1, 1, 1);
      cairo_pattern_add_color_stop_rgb (g, 1, RED[0] / 255.0, RED[1] / 255.0, RED[2] / 255.0);
    }
  else
    {
      cairo_pattern_add_color_stop_rgb (g, 0, 0, 0, 0);
      cairo_pattern_add_color_stop_rgb (g, 1, 1, 1, 1);
    }
  cairo_set_source (cr, g);
  cairo_rectangle (cr, x, y, w, h);
  cairo_fill (cr);
  cairo_pattern_destroy (g);
  cairo_set_source_rgb (cr, 0.6, 0.6, 0.6);
  cairo_set_line_width (cr, 1);
  cairo_rectangle (cr, x - 0.5, y - 0.5, w + 1, h + 1);
  cairo_stroke (cr);
}

void
st_picture_format_value (char *buf, gsize size, double v)
{
  g_snprintf (buf, size, "%.3g", v);
}

static gboolean
write_png (cairo_surface_t *surface, const char *png_path, GError **error)
{
  return st_picture_write_png (surface, png_path, "picture", error);
}

cairo_surface_t *
st_picture_new_surface (int width, int height, GError **error)
{
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED, "cannot make a %dx%d picture: %s", width,
                   height, cairo_status_to_string (cairo_surface_status (surface)));
      cairo_surface_destroy (surface);
      return NULL;
    }
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_destroy (cr);
  return surface;
}

/* ---- Feature maps ------------------------------------------------------- */

static void
draw_section_pixels (cairo_surface_t *surface, const StMapSection *sec, const StTensor *t)
{
  gsize plane = (gsize) t->shape.h * t->shape.w;
  if (sec->kind == ST_SECTION_SCORES)
    return;                    /* bars, drawn with the text */
  if (sec->kind == ST_SECTION_STRIP)
    {
      /* One vector, one scale: cells are compared with each other. */
      g_autofree guint8 *rgb = g_malloc ((gsize) t->shape.c * 3);
      colour_values (t->data, t->shape.c, rgb);
      for (int i = 0; i < sec->n_tiles; i++)
        st_picture_blit (surface, sec->tiles[i], rgb + 3 * i, 1, 1);
      return;
    }
  /* Every tile of a section has the same size. */
  int tw = sec->tiles[0].width, th = sec->tiles[0].height;
  gsize shown = (gsize) tw * th;
  g_autofree float *v = g_new (float, shown);
  g_autofree guint8 *rgb = g_malloc (shown * 3);
  if (sec->kind == ST_SECTION_IMAGE)
    {
      /* The input as it is (clamped), not rescaled: it is a picture. */
      for (int k = 0; k < 3; k++)
        {
          resample (t->data + (t->shape.c == 3 ? k : 0) * plane, t->shape.w, t->shape.h,
                    v, tw, th);
          for (gsize i = 0; i < shown; i++)
            rgb[3 * i + k] = (guint8) lround (255.0 * (isfinite (v[i]) ? CLAMP (v[i], 0.0f, 1.0f)
                                                                     : 0));
        }
      st_picture_blit (surface, sec->tiles[0], rgb, tw, th);
      return;
    }
  for (int c = 0; c < sec->n_tiles; c++)
    {
      resample (t->data + c * plane, t->shape.w, t->shape.h, v, tw, th);
      colour_values (v, shown, rgb);
      st_picture_blit (surface, sec->tiles[c], rgb, tw, th);
    }
}

static void
draw_section_title (cairo_t *cr, const StMapSection *sec, StPipeline *p, const StTensor *t)
{
  char shape[64], lo_s[32], hi_s[32];
  g_snprintf (shape, sizeof shape, "%dx%dx%d", t->shape.c, t->shape.h, t->shape.w);
  g_autofree char *title = NULL;
  g_autofree char *note = NULL;
  if (sec->kind == ST_SECTION_SCORES)
    {
      title = g_strdup ("class probabilities");
      if (sec->n_channels > MAX_BARS)
        note = g_strdup_printf ("the %d most probable of %d classes", MAX_BARS, sec->n_channels);
    }
  else
    {
      if (sec->stage < 0)
        title = g_strdup_printf ("image (input) %s", shape);
      else
        {
          StStage *s = st_pipeline_stage (p, sec->stage);
          title = g_strdup_printf ("%s (%s) %s", s->name, s->kind->name, shape);
        }
      float lo, hi;
      st_picture_value_range (t->data, st_tensor_numel (t), &lo, &hi);
      st_picture_format_value (lo_s, sizeof lo_s, lo);
      st_picture_format_value (hi_s, sizeof hi_s, hi);
      g_autofree char *range = g_strdup_printf ("values %s … %s", lo_s, hi_s);
      if (sec->n_tiles < sec->n_channels && sec->kind != ST_SECTION_IMAGE)
        note = g_strdup_printf ("(first %d of %d)   %s", sec->n_tiles, sec->n_channels, range);
      else
        note = g_steal_pointer (&range);
    }
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  st_picture_set_font (cr, 13, TRUE);
  double x = st_picture_show_text (cr, sec->area.x, sec->title_y, title);
  if (note)
    {
      cairo_set_source_rgb (cr, 0.45, 0.45, 0.45);
      st_picture_set_font (cr, 11, FALSE);
      st_picture_show_text (cr, x + 12, sec->title_y, note);
    }
}

typedef struct {
  int index;
  float p;
} ClassProb;

static int
compare_prob (gconstpointer a, gconstpointer b)
{
  const ClassProb *x = a, *y = b;
  return x->p < y->p ? 1 : x->p > y->p ? -1 : x->index - y->index;
}

static void
draw_bars (cairo_t *cr, const StMapSection *sec, StPipeline *p, const StTensor *scores)
{
  g_autoptr (StTensor) prob = st_tensor_copy (scores);
  st_scores_to_probabilities (p, prob);
  int c = prob->shape.c, n = MIN (c, MAX_BARS);
  g_autofree ClassProb *order = g_new (ClassProb, c);
  int best = 0;
  for (int i = 0; i < c; i++)
    {
      order[i] = (ClassProb) { i, prob->data[i] };
      if (prob->data[i] > prob->data[best])
        best = i;
    }
  /* Few classes keep their own order; many show the most probable first. */
  if (c > MAX_BARS)
    qsort (order, c, sizeof *order, compare_prob);

  g_auto (GStrv) class_names = st_pipeline_class_names (p, NULL);
  g_auto (GStrv) names = g_new0 (char *, n + 1);
  double label_w = 0;
  for (int i = 0; i < n; i++)
    {
      int k = order[i].index;
      names[i] = g_strdup (class_names[k]);
      st_picture_set_font (cr, 11, k == best);
      cairo_text_extents_t ext;
      cairo_text_extents (cr, names[i], &ext);
      label_w = MAX (label_w, ext.x_advance);
    }
  double bar_x = sec->area.x + label_w + 10;
  double bar_max = CLAMP (sec->area.x + sec->area.width - 60 - bar_x, 40, BAR_MAX);
  for (int i = 0; i < n; i++)
    {
      int k = order[i].index;
      double y = sec->area.y + i * BAR_ROW;
      double v = isfinite (order[i].p) ? CLAMP (order[i].p, 0.0f, 1.0f) : 0;
      /* A faint track shows the full 100 %, so short bars still read as bars. */
      cairo_set_source_rgb (cr, 0.94, 0.94, 0.94);
      cairo_rectangle (cr, bar_x, y + 2, bar_max, BAR_ROW - 5);
      cairo_fill (cr);
      if (k == best)
        cairo_set_source_rgb (cr, 0.12, 0.47, 0.71);
      else
        cairo_set_source_rgb (cr, 0.62, 0.76, 0.87);
      cairo_rectangle (cr, bar_x, y + 2, bar_max * v, BAR_ROW - 5);
      cairo_fill (cr);

      cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
      st_picture_set_font (cr, 11, k == best);
      cairo_text_extents_t ext;
      cairo_text_extents (cr, names[i], &ext);
      st_picture_show_text (cr, bar_x - 10 - ext.x_advance, y + 12, names[i]);
      char pct[32];
      g_snprintf (pct, sizeof pct, "%.1f%%", 100 * v);
      st_picture_show_text (cr, bar_x + bar_max * v + 6, y + 12, pct);
    }
}

static char *
header_title (StPipeline *p, const char *what)
{
  g_autofree char *base = g_path_get_basename (st_pipeline_name (p));
  return g_strdup_printf ("%s — %s", what, base);
}

/* The picture's title and the pipeline's description, on one line. */
void
st_picture_draw_header (cairo_t *cr, const char *what, StPipeline *p)
{
  g_autofree char *title = header_title (p, what);
  const char *desc = st_pipeline_description (p);
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  st_picture_set_font (cr, 15, TRUE);
  double x = st_picture_show_text (cr, MARGIN, MARGIN + 14, title);
  if (desc)
    {
      cairo_set_source_rgb (cr, 0.45, 0.45, 0.45);
      st_picture_set_font (cr, 12, FALSE);
      st_picture_show_text (cr, x + 12, MARGIN + 14, desc);
    }
}

/* Pixels of text in the house fonts, so that a layout can make room for it. */
double
st_picture_text_width (const char *text, double size, gboolean bold)
{
  cairo_surface_t *scratch = cairo_image_surface_create (CAIRO_FORMAT_RGB24, 1, 1);
  cairo_t *cr = cairo_create (scratch);
  st_picture_set_font (cr, size, bold);
  cairo_text_extents_t ext;
  cairo_text_extents (cr, text, &ext);
  cairo_destroy (cr);
  cairo_surface_destroy (scratch);
  return ext.x_advance;
}

int
st_picture_header_width (StPipeline *p, const char *what)
{
  g_autofree char *title = header_title (p, what);
  const char *desc = st_pipeline_description (p);
  return (int) ceil (st_picture_text_width (title, 15, TRUE) + (desc ? 12 + st_picture_text_width (desc, 12, FALSE) : 0));
}

static void
draw_maps_legend (cairo_t *cr)
{
  double y = MARGIN + 36;
  st_picture_set_font (cr, 11, FALSE);
  cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
  double x = st_picture_show_text (cr, MARGIN, y, "one tile per channel, each on its own scale:");
  st_picture_legend_bar (cr, x + 8, y - 9, 50, 10, FALSE);
  cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
  x = st_picture_show_text (cr, x + 64, y, "min … max;");
  st_picture_legend_bar (cr, x + 8, y - 9, 50, 10, TRUE);
  cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
  st_picture_show_text (cr, x + 64, y, "−m … 0 … +m if any value is negative (m = max |value|)");
}

gboolean
st_draw_feature_maps (StPipeline *p, const StTensor *image, const char *png_path, GError **error)
{
  g_return_val_if_fail (image->shape.n == 1, FALSE);
  g_autoptr (StRunContext) ctx = st_run_context_new (0, 0);
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, image, TRUE, error);
  if (!out)
    return FALSE;
  g_autoptr (StMapLayout) l = st_feature_map_layout (p, image->shape, error);
  if (!l)
    return FALSE;
  cairo_surface_t *surface = st_picture_new_surface (l->width, l->height, error);
  if (!surface)
    return FALSE;
  cairo_t *cr = cairo_create (surface);
  /* Frames and panels first; tiles go over them pixel by pixel. */
  for (int s = 0; s < l->n_sections; s++)
    {
      const StMapSection *sec = &l->sections[s];
      if (sec->kind == ST_SECTION_STRIP)
        st_picture_fill_panel (cr, sec->area, 0.72);
      else
        for (int i = 0; i < sec->n_tiles; i++)
          frame_tile (cr, sec->tiles[i]);
    }
  cairo_surface_flush (surface);
  for (int s = 0; s < l->n_sections; s++)
    {
      const StMapSection *sec = &l->sections[s];
      const StTensor *t = sec->stage < 0 ? image : st_pipeline_activation (p, sec->stage);
      draw_section_pixels (surface, sec, t);
    }
  cairo_surface_mark_dirty (surface);

  st_picture_draw_header (cr, "feature maps", p);
  draw_maps_legend (cr);
  for (int s = 0; s < l->n_sections; s++)
    {
      const StMapSection *sec = &l->sections[s];
      const StTensor *t = sec->stage < 0 ? image : st_pipeline_activation (p, sec->stage);
      draw_section_title (cr, sec, p, t);
      if (sec->kind == ST_SECTION_SCORES)
        draw_bars (cr, sec, p, out);
    }
  cairo_destroy (cr);
  gboolean ok = write_png (surface, png_path, error);
  cairo_surface_destroy (surface);
  return ok;
}

/* ---- Writing ------------------------------------------------------------ */

gboolean
st_draw_weights (StPipeline *p, const char *png_path, GError **error)
{
  cairo_surface_t *surface = st_render_weights (p, error);
  if (!surface)
    return FALSE;
  gboolean ok = write_png (surface, png_path, error);
  cairo_surface_destroy (surface);
  return ok;
}

/* ---- Augmented samples ---------------------------------------------------- */

/* The grid's side: AUGMENT_SIDE² samples. */
#define AUGMENT_SIDE 4

/* Sample i's pixels as RGB on the grid's one scale: values as they are
 * when all lie in [0, 1] (so that brightness shows), else lo..hi as black
 * to white.  Three channels are a colour picture; otherwise channel 0. */
static void
augmented_rgb (const StTensor *t, int i, float lo, float hi, guint8 *rgb)
{
  StShape s = t->shape;
  gsize plane = (gsize) s.h * s.w;
  const float *v = t->data + (gsize) i * s.c * plane;
  gboolean unit = lo >= 0 && hi <= 1;
  for (gsize px = 0; px < plane; px++)
    for (int k = 0; k < 3; k++)
      {
        double x = v[(s.c == 3 ? k : 0) * plane + px];
        double u = unit ? x : hi > lo ? (x - lo) / (hi - lo) : 0;
        u = isfinite (u) ? CLAMP (u, 0.0, 1.0) : 0;
        rgb[3 * px + k] = (guint8) lround (255.0 * u);
      }
}

gboolean
st_draw_augmented (StPipeline *p, const StTensor *image, guint64 seed, const char *png_path,
                   GError **error)
{
  g_return_val_if_fail (image->shape.n == 1, FALSE);
  int prepared = st_pipeline_prefix_length (p);
  g_autoptr (GPtrArray) weights = st_pipeline_weights (p);
  /* A pipeline with nothing to learn (filters and random stages, maybe
   * not a chain) is drawn whole, every stage run on every sample. */
  if (weights->len == 0)
    prepared = st_pipeline_n_stages (p);
  int cached = 0;
  while (cached < prepared
         && !(st_kind_flags (st_pipeline_stage (p, cached)->kind) & ST_KIND_RANDOM))
    cached++;
  if (weights->len == 0 && cached < prepared)
    cached = 0;
  else if (cached == prepared)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "%s: no random stage (randomflip, randomcrop, randomerase, jitter, ...) "
                   "before the first stage with parameters: training sees the image as it is",
                   st_pipeline_name (p));
      return FALSE;
    }
  const int n = AUGMENT_SIDE * AUGMENT_SIDE;
  g_autoptr (StRunContext) ctx = st_run_context_new (0, seed);
  g_autoptr (StTensor) fixed = cached > 0
                               ? st_pipeline_forward_range (p, ctx, image, 0, cached - 1, FALSE,
                                                            error)
                               : st_tensor_copy (image);
  if (!fixed)
    return FALSE;
  StShape f = fixed->shape;
  gsize per = (gsize) f.c * f.h * f.w;
  g_autoptr (StTensor) batch = st_tensor_new0 (n, f.c, f.h, f.w);
  for (int i = 0; i < n; i++)
    memcpy (batch->data + i * per, fixed->data, per * sizeof (float));
  /* The draws of a training run with this seed, in its first epoch, for a
   * dataset of n copies of the image. */
  guint64 seeds[AUGMENT_SIDE * AUGMENT_SIDE];
  for (int i = 0; i < n; i++)
    seeds[i] = st_item_seed (seed, 0, i);
  ctx->training = TRUE;
  ctx->item_seeds = seeds;
  g_autoptr (StTensor) out = st_pipeline_forward_range (p, ctx, batch, cached, prepared - 1,
                                                        FALSE, error);
  ctx->item_seeds = NULL;
  if (!out)
    return FALSE;

  StShape s = out->shape;
  int th, tw, gw, gh;
  tile_size (s.h, s.w, ST_SECTION_IMAGE, n, &th, &tw);
  StRect tiles[AUGMENT_SIDE * AUGMENT_SIDE];
  int top = MARGIN + HEADER_H;
  place_grid (tiles, n, tw, th, TILE_GAP, MARGIN + 1, top + 1,
              AUGMENT_SIDE * (tw + TILE_GAP), &gw, &gh);
  int width = MAX (gw + 2 + 2 * MARGIN, st_picture_header_width (p, "augmented samples")
                                        + 2 * MARGIN);
  width = MAX (width, MIN_WIDTH);
  /* Tiles are at most 512 px a side: the picture stays small. */
  int height = top + gh + 2 + MARGIN;
  cairo_surface_t *surface = st_picture_new_surface (width, height, error);
  if (!surface)
    return FALSE;
  cairo_t *cr = cairo_create (surface);
  for (int i = 0; i < n; i++)
    frame_tile (cr, tiles[i]);
  cairo_surface_flush (surface);
  float lo, hi;
  st_picture_value_range (out->data, st_tensor_numel (out), &lo, &hi);
  g_autofree guint8 *rgb = g_new (guint8, (gsize) s.h * s.w * 3);
  for (int i = 0; i < n; i++)
    {
      augmented_rgb (out, i, lo, hi, rgb);
      st_picture_blit (surface, tiles[i], rgb, s.w, s.h);
    }
  cairo_surface_mark_dirty (surface);
  st_picture_draw_header (cr, "augmented samples", p);
  cairo_destroy (cr);
  gboolean ok = write_png (surface, png_path, error);
  cairo_surface_destroy (surface);
  return ok;
}
