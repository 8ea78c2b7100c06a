/* strata — what the pictures of visualize.c and visualize-weights.c
 * share: their sizes and the drawing helpers (defined in visualize.c). */
#pragma once

#include "visualize.h"

#include <cairo.h>

G_BEGIN_DECLS

enum {
  MARGIN = 20,
  MIN_WIDTH = 640,
  MAX_WIDTH = 1600,
  MAX_HEIGHT = 32000,          /* cairo image surfaces stop at 32767 */
  HEADER_H = 52,               /* the picture's title and the colour legend */
  TITLE_H = 22,                /* a section's title, above its tiles */
  SECTION_GAP = 20,
  TILE_GAP = 6,                /* between map tiles: room for a frame each */
  TILE_MIN = 48,
  MAX_MAPS = 64,               /* channels drawn per stage */
  MAX_CELLS = 2048,            /* cells drawn for a Cx1x1 stage */
  CELL_MIN = 8,
  CELL_MAX = 28,
  MAX_BARS = 20,               /* classes listed; more: the most probable */
  BAR_ROW = 18,
  BAR_MAX = 360,               /* px for 100 % */
  KERNEL_SIDE = 30,            /* a 3x3 kernel becomes 30x30 px */
  KERNEL_ROWS = 4,             /* input channels drawn per filter */
  WEIGHTS_MIN_WIDTH = 480,
  WEIGHTS_HEADER_H = 70,       /* title, stage and scale lines */
};

/* The lowest and highest finite values of v. */
void     st_picture_value_range (const float *v, gsize n, float *lo, float *hi);
void     st_picture_format_value (char *buf, gsize size, double v);
/* Pixels of text in the house fonts, so that a layout can make room for it. */
double   st_picture_text_width (const char *text, double size, gboolean bold);
/* The width of st_picture_draw_header's line. */
int      st_picture_header_width (StPipeline *p, const char *what);
/* The picture's title ("what — pipeline") and the pipeline's description. */
void     st_picture_draw_header (cairo_t *cr, const char *what, StPipeline *p);
/* A white picture of width x height. */
cairo_surface_t *st_picture_new_surface (int width, int height, GError **error);
void     st_picture_fill_panel (cairo_t *cr, StRect r, double grey);
/* sw x sh RGB pixels into r, scaled up by whole pixels. */
void     st_picture_blit (cairo_surface_t *surface, StRect r, const guint8 *rgb, int sw, int sh);
void     st_picture_set_font (cairo_t *cr, double size, gboolean bold);
/* Draws text at (x, y); returns where it ends. */
double   st_picture_show_text (cairo_t *cr, double x, double y, const char *text);
/* A colour scale: black to white, or the diverging one. */
void     st_picture_legend_bar (cairo_t *cr, double x, double y, double w, double h,
                                gboolean diverging);

/* The filter picture (visualize-weights.c), for st_draw_weights to write. */
cairo_surface_t *st_render_weights (StPipeline *p, GError **error);

G_END_DECLS
