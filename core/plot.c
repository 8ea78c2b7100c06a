/* strata — training curves drawn with cairo. */
#include "plot.h"
#include "picture.h"
#include "textfile.h"

#include <strata/plugin.h>
#include <cairo.h>
#include <math.h>
#include <string.h>

typedef struct {
  GArray *epoch, *train_loss, *train_acc, *test_loss, *test_acc;
} Log;

static gboolean
read_log (const char *path, Log *log, GError **error)
{
  /* A log of a million epochs is a few tens of megabytes. */
  g_autofree char *text = st_text_file_read (path, 256u << 20, NULL, error);
  if (!text)
    {
      g_prefix_error (error, "%s: ", path);
      return FALSE;
    }
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (int i = 1; lines[i]; i++)
    {
      g_auto (GStrv) f = g_strsplit (lines[i], ",", -1);
      if (g_strv_length (f) < 7)
        continue;
      double v[5] = { g_ascii_strtod (f[0], NULL), g_ascii_strtod (f[2], NULL),
                      g_ascii_strtod (f[3], NULL), *f[4] ? g_ascii_strtod (f[4], NULL) : NAN,
                      *f[5] ? g_ascii_strtod (f[5], NULL) : NAN };
      g_array_append_val (log->epoch, v[0]);
      g_array_append_val (log->train_loss, v[1]);
      g_array_append_val (log->train_acc, v[2]);
      g_array_append_val (log->test_loss, v[3]);
      g_array_append_val (log->test_acc, v[4]);
    }
  return TRUE;
}

/* Where a panel's plot area lies, and what its axes span. */
typedef struct {
  double x0, left, right, top, bottom;
  double lo, hi;               /* the value axis */
  double n_epochs;             /* the epoch axis, from 1 */
} Frame;

static double
frame_x (const Frame *f, double epoch)
{
  return f->left + (f->right - f->left) * (epoch - 1) / (f->n_epochs - 1);
}

static double
frame_y (const Frame *f, double value)
{
  return f->bottom - (f->bottom - f->top) * (value - f->lo) / (f->hi - f->lo);
}

/* The finite values of both series, with a margin; [0, 1] when none. */
static void
value_range (GArray *const series[2], double *lo, double *hi)
{
  *lo = INFINITY;
  *hi = -INFINITY;
  for (int s = 0; s < 2; s++)
    for (guint i = 0; i < series[s]->len; i++)
      {
        double v = g_array_index (series[s], double, i);
        if (isfinite (v))
          *lo = MIN (*lo, v), *hi = MAX (*hi, v);
      }
  if (!isfinite (*lo))
    *lo = 0, *hi = 1;
  if (*hi - *lo < 1e-9)
    *lo -= 0.5, *hi += 0.5;
  double pad = (*hi - *lo) * 0.08;
  *lo -= pad;
  *hi += pad;
}

static void
draw_title (cairo_t *cr, const Frame *f, double y0, const char *title)
{
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, 14);
  cairo_move_to (cr, f->left, y0 + 20);
  cairo_show_text (cr, title);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, 11);
}

/* Grid lines with the values, epoch numbers, and the frame. */
static void
draw_axes (cairo_t *cr, const Frame *f, gboolean percent)
{
  cairo_set_line_width (cr, 1);
  for (int t = 0; t <= 4; t++)
    {
      double v = f->lo + (f->hi - f->lo) * t / 4, y = f->bottom - (f->bottom - f->top) * t / 4;
      cairo_set_source_rgb (cr, 0.88, 0.88, 0.88);
      cairo_move_to (cr, f->left, y);
      cairo_line_to (cr, f->right, y);
      cairo_stroke (cr);
      char label[32];
      if (percent)
        g_snprintf (label, sizeof label, "%.1f%%", 100 * v);
      else
        g_snprintf (label, sizeof label, "%.3f", v);
      cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
      cairo_move_to (cr, f->x0 + 4, y + 4);
      cairo_show_text (cr, label);
    }
  int step = MAX (1, (int) ceil (f->n_epochs / 10));
  for (int e = 1; e <= (int) f->n_epochs; e += step)
    {
      char label[16];
      g_snprintf (label, sizeof label, "%d", e);
      cairo_move_to (cr, frame_x (f, e) - 3, f->bottom + 15);
      cairo_show_text (cr, label);
    }
  cairo_move_to (cr, (f->left + f->right) / 2 - 15, f->bottom + 32);
  cairo_show_text (cr, "epoch");
  cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
  cairo_rectangle (cr, f->left, f->top, f->right - f->left, f->bottom - f->top);
  cairo_stroke (cr);
}

/* Series number s of a panel: a line through its finite values, a dot on
 * each, and its name in the legend when it has any. */
static void
draw_series (cairo_t *cr, const Frame *f, GArray *epochs, GArray *series, int s,
             const char *name)
{
  const double colours[2][3] = { { 0.12, 0.47, 0.71 }, { 0.85, 0.37, 0.01 } };
  cairo_set_source_rgb (cr, colours[s][0], colours[s][1], colours[s][2]);
  cairo_set_line_width (cr, 2);
  gboolean drawn = FALSE;
  for (guint i = 0; i < series->len; i++)
    {
      double v = g_array_index (series, double, i);
      if (!isfinite (v))
        continue;
      double x = frame_x (f, g_array_index (epochs, double, i)), y = frame_y (f, v);
      if (drawn)
        cairo_line_to (cr, x, y);
      else
        cairo_move_to (cr, x, y);
      drawn = TRUE;
    }
  cairo_stroke (cr);
  for (guint i = 0; i < series->len; i++)
    {
      double v = g_array_index (series, double, i);
      if (!isfinite (v))
        continue;
      cairo_arc (cr, frame_x (f, g_array_index (epochs, double, i)), frame_y (f, v), 3, 0,
                 2 * G_PI);
      cairo_fill (cr);
    }
  if (drawn)
    {
      cairo_rectangle (cr, f->right - 120, f->top + 8 + 16 * s, 12, 3);
      cairo_fill (cr);
      cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
      cairo_move_to (cr, f->right - 102, f->top + 13 + 16 * s);
      cairo_show_text (cr, name);
    }
}

/* One panel: axes, ticks, and up to two series against epoch. */
static void
draw_panel (cairo_t *cr, double x0, double y0, double w, double h, const char *title,
            GArray *epochs, GArray *a, const char *a_name, GArray *b, const char *b_name,
            gboolean percent)
{
  GArray *const series[2] = { a, b };
  Frame f = { .x0 = x0, .left = x0 + 60, .right = x0 + w - 15, .top = y0 + 30,
              .bottom = y0 + h - 40,
              .n_epochs = MAX (g_array_index (epochs, double, epochs->len - 1), 2) };
  value_range (series, &f.lo, &f.hi);
  draw_title (cr, &f, y0, title);
  draw_axes (cr, &f, percent);
  draw_series (cr, &f, epochs, a, 0, a_name);
  draw_series (cr, &f, epochs, b, 1, b_name);
}

gboolean
st_plot_training_log (const char *csv_path, const char *png_path, GError **error)
{
  Log log = {
    g_array_new (FALSE, FALSE, sizeof (double)), g_array_new (FALSE, FALSE, sizeof (double)),
    g_array_new (FALSE, FALSE, sizeof (double)), g_array_new (FALSE, FALSE, sizeof (double)),
    g_array_new (FALSE, FALSE, sizeof (double)),
  };
  gboolean ok = read_log (csv_path, &log, error);
  if (ok && log.epoch->len == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: no epochs to plot", csv_path);
      ok = FALSE;
    }
  if (ok)
    {
      const int width = 900, height = 360;
      cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
      cairo_t *cr = cairo_create (surface);
      cairo_set_source_rgb (cr, 1, 1, 1);
      cairo_paint (cr);
      draw_panel (cr, 0, 0, width / 2.0, height, "Loss", log.epoch, log.train_loss, "train",
                  log.test_loss, "test", FALSE);
      draw_panel (cr, width / 2.0, 0, width / 2.0, height, "Accuracy", log.epoch, log.train_acc,
                  "train", log.test_acc, "test", TRUE);
      cairo_destroy (cr);
      ok = st_picture_write_png (surface, png_path, "plot", error);
      cairo_surface_destroy (surface);
    }
  g_array_free (log.epoch, TRUE);
  g_array_free (log.train_loss, TRUE);
  g_array_free (log.train_acc, TRUE);
  g_array_free (log.test_loss, TRUE);
  g_array_free (log.test_acc, TRUE);
  return ok;
}
