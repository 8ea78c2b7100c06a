/* strata — pictures of what a pipeline computes: every stage's feature maps
 * for one image, and the filters of its first convolution. */
#pragma once

#include "pipeline.h"

G_BEGIN_DECLS

typedef struct {
  int x, y, width, height;
} StRect;

typedef enum {
  ST_SECTION_IMAGE,            /* the input as a picture (1 or 3 channels), unscaled */
  ST_SECTION_MAPS,             /* one tile per channel, each on its own scale */
  ST_SECTION_STRIP,            /* a Cx1x1 output: one cell per channel, one scale */
  ST_SECTION_SCORES,           /* a classifier's probabilities as bars */
} StSectionKind;

typedef struct {
  StSectionKind kind;
  int stage;                   /* run-order index; -1: the input image */
  int n_channels;              /* of the tensor drawn */
  int n_tiles;                 /* tiles drawn: channels shown (1 for an image, 0 for bars) */
  StRect *tiles;               /* n_tiles, in channel order */
  int title_y;                 /* the baseline of the section's title */
  StRect area;                 /* what is drawn under the title: tiles and frames, or bars */
} StMapSection;

typedef struct {
  int width, height;           /* of the whole picture */
  int n_sections;              /* the input, each stage in run order, then the
                                * class bars when the pipeline is a classifier */
  StMapSection *sections;
} StMapLayout;

/* Where st_draw_feature_maps() puts everything for an input of this shape
 * (the pipeline is prepared for it, or error is set).  A map smaller than
 * its tile size grows by whole pixels (nearest neighbour) to about 160, 128
 * or 64 px for up to 4, up to 16 or more channels, and to at least 48 px; a
 * larger one keeps its size up to 512, 256 or 128 px and is shrunk (area
 * average) beyond.  At most 64 channels per stage; a Cx1x1 output is a strip
 * of up to 2048 cells of 8 to 28 px; rows are balanced and the picture is
 * 640 to 1600 px wide. */
StMapLayout *st_feature_map_layout (StPipeline *p, StShape input, GError **error);
void         st_map_layout_free (StMapLayout *layout);

/* Runs p on image ([1, C, H, W]) keeping every activation, and writes one
 * PNG: the input at the top, then for each stage in run order a titled grid
 * of its channels.  Each channel is scaled to its own range: maps with
 * negative values use a blue-white-red scale symmetric about zero (zero is
 * white), the others black-to-white from their minimum to their maximum.  A
 * classifier's probabilities end the picture as bars.  Written atomically. */
gboolean st_draw_feature_maps (StPipeline *p, const StTensor *image, const char *png_path,
                               GError **error);

typedef struct {
  int width, height;
  int stage;                   /* the first stage with a 4-D parameter */
  int param;                   /* its weight, [out, in, kh, kw] */
  int n_filters, in_channels, kh, kw;
  gboolean rgb;                /* in_channels == 3: one colour tile per filter */
  int rows_per_filter;         /* kernel tiles stacked per filter: 1 when rgb, else min (in, 4) */
  int scale;                   /* screen pixels per weight */
  StRect panel;                /* the grey panel behind the tiles */
  StRect *tiles;               /* n_filters * rows_per_filter, filter-major */
} StWeightsLayout;

StWeightsLayout *st_weights_layout (StPipeline *p, GError **error);
void             st_weights_layout_free (StWeightsLayout *layout);

/* Draws the first 4-D weight (a convolution's) as one tile per filter, all on one
 * scale symmetric about zero (m = max |w|) so filters can be compared: with
 * one input channel per kernel blue-white-red for -m, 0, +m; with three, a
 * colour tile per filter with grey for 0 (each of R, G, B is 0.5 + 0.5 w / m);
 * otherwise the first four input channels stacked, one row of kernels each.
 * Fails, naming the pipeline, when no stage has 4-D weights. */
gboolean st_draw_weights (StPipeline *p, const char *png_path, GError **error);

/* Writes one PNG of 16 samples of image ([1, C, H, W]) as training feeds
 * them to the first stage with parameters: the cached preparation stages
 * once, then the rest of the preparation stages in training mode, the
 * random ones (ST_KIND_RANDOM) drawing for sample i as in the first epoch
 * of a run seeded with seed on a dataset of 16 copies (a pipeline without
 * parameters: all its stages, in training mode).  One scale for all:
 * values as they are when they lie in [0, 1], else their range; three
 * channels in colour, otherwise the first.  Fails, naming the pipeline,
 * when no random stage comes before the first stage with parameters.
 * Written atomically. */
gboolean st_draw_augmented (StPipeline *p, const StTensor *image, guint64 seed,
                            const char *png_path, GError **error);

/* The diverging scale: t in [-1, 1] to 8-bit RGB, linear from the blue end
 * (33, 102, 172) through white to the red end (178, 24, 43). */
void st_colour_diverging (double t, guint8 rgb[3]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StMapLayout, st_map_layout_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StWeightsLayout, st_weights_layout_free)

G_END_DECLS
