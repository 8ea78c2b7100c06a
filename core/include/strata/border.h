/* strata — what lies beyond an image's edge, shared by the stages that
 * read or make pixels there (pad, and any stage with a `border` key), so
 * that every one names and computes the modes alike.  Header-only: a
 * plugin includes it (through strata.h) without linking anything new.
 *
 *   zero    — 0
 *   edge    — the nearest edge pixel repeated (numpy 'edge', OpenCV
 *             BORDER_REPLICATE, PyTorch 'replicate')
 *   reflect — mirrored without repeating the edge pixel (numpy 'reflect',
 *             OpenCV BORDER_REFLECT_101, PyTorch 'reflect')
 *   wrap    — the opposite edge (numpy 'wrap', PyTorch 'circular')
 *
 * Every mode is periodic, so a distance wider than the image still has a
 * pixel to read. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  ST_BORDER_ZERO,
  ST_BORDER_EDGE,
  ST_BORDER_REFLECT,
  ST_BORDER_WRAP,
} StBorder;

/* Choices for an ST_PARAM_ENUM parameter whose index is an StBorder; a
 * kind with further modes lists these first and adds its own after. */
#define ST_BORDER_CHOICES \
  ((const char *const[]) { "zero", "edge", "reflect", "wrap", NULL })

/* The index of a line of n pixels that position i reads under border, or
 * -1 for a zero (only ST_BORDER_ZERO gives it, for i outside [0, n)). */
static inline int
st_border_index (gint64 i, int n, StBorder border)
{
  if (i >= 0 && i < n)
    return (int) i;
  switch (border)
    {
    case ST_BORDER_ZERO:
      return -1;
    case ST_BORDER_EDGE:
      return i < 0 ? 0 : n - 1;
    case ST_BORDER_REFLECT:
      {
        if (n == 1)
          return 0;
        gint64 period = 2 * (gint64) (n - 1);
        gint64 j = i % period;
        if (j < 0)
          j += period;
        return (int) (j < n ? j : period - j);
      }
    case ST_BORDER_WRAP:
      {
        gint64 j = i % n;
        return (int) (j < 0 ? j + n : j);
      }
    }
  return -1;
}

G_END_DECLS
