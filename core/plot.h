/* strata — pictures drawn with cairo: training curves. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Draws the loss and accuracy per epoch of a training log (the CSV that
 * `strata train` appends to) as a PNG, written atomically. */
gboolean st_plot_training_log (const char *csv_path, const char *png_path, GError **error);

G_END_DECLS
