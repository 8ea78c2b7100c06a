/* strata — running an image a strip of rows at a time (DESIGN.md, halo). */
#pragma once

#include "plan.h"
#include "context.h"

G_BEGIN_DECLS

/* Images run in strips whenever the pipeline allows: even a 1024x768 JPEG
 * goes twice as fast, its tensors a few hundred kilobytes that stay in the
 * caches and the heap instead of megabytes that are page-faulted in afresh
 * for every image (the kernel's time then exceeds the filters').  Only at
 * this size and below is the whole image as quick. */
#define STRIP_MIN_PIXELS G_GUINT64_CONSTANT (65536)
/* Output rows a strip: 16 to 64 measure alike on a 3x3 filter; more fall
 * out of L2.  Wide halos get taller strips, so the rows filtered twice stay
 * at most as many as the rows kept. */
#define STRIP_ROWS 32

/* Strips of input, decoded ahead of the filters.  Strip k covers output
 * rows [k * rows, (k + 1) * rows) and is held in buffer k % FEED_BUFFERS with
 * `halo` rows either side (fewer at the image's top and bottom).  Its first
 * rows are the last ones of strip k - 1, copied over rather than decoded
 * again.  On a machine with a core to spare a thread of its own decodes
 * while the caller filters and encodes the strip before: decoding and
 * encoding each take about as long as everything else together. */
#define FEED_BUFFERS 3

/* A worker's strip buffers, kept from one image to the next: freed, they
 * would go back to the kernel and be page-faulted in again for the next. */
typedef struct {
  StTensor *buffers[FEED_BUFFERS];
} StStripScratch;

void st_strip_scratch_clear (StStripScratch *s);

/* The rows of input around every output row that a strip must carry when p
 * can run on strips of an image of this shape, or -1 when p needs the
 * whole image. */
int st_strip_halo (StPipeline *p, StShape shape);

typedef struct {
  int rows;                    /* output rows a strip; 0: STRIP_ROWS, or taller for wide halos */
  int jpeg_quality;
  /* Polled before each strip: TRUE (with error set) abandons the image. */
  gboolean (*stop) (const StJob *job, GError **error);
  const StImageWriteOptions *write;   /* the input's metadata, lossless; NULL: none */
} StStripOptions;

/* Runs p on job's image a strip at a time, reading from reader (opened on
 * an image of width x height x channels, alpha last when info says so) and
 * writing job->output as rows come; halo from st_strip_halo. */
gboolean st_run_strips (StPipeline *p, StRunContext *ctx, StStripScratch *scratch, StJob *job,
                        StImageReader *reader, const StImageInfo *info, int width, int height,
                        int channels, int halo, const StStripOptions *opt, GError **error);

G_END_DECLS
