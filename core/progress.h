/* strata — a progress line for counted work (images run, batches trained):
 * a bar, the count, the rate and the time left, redrawn at most ten times
 * a second.  The library never writes it: the text goes to a callback
 * that the front end gives (a terminal's line, or nothing). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Shows line in place of the previous one; "" removes it (before other
 * output is written, or at the end).  line has no newline. */
typedef void (*StProgressFunc) (const char *line, gpointer user_data);

/* One line of a message (no newline) from long work to its front end:
 * a file skipped, a loop not followed. */
typedef void (*StMessageFunc) (const char *line, gpointer user_data);

typedef struct _StProgress StProgress;

/* Counts steps from 0 to total; the rate is in rate_unit per second ("img":
 * "12.5 img/s").  func NULL: everything is a no-op, so callers need not
 * check whether progress is shown.  The calls may come from any thread. */
StProgress *st_progress_new (guint64 total, const char *rate_unit, StProgressFunc func,
                             gpointer user_data);
void        st_progress_free (StProgress *progress);

/* A count that starts part-way (a resumed epoch): done steps are shown
 * in the count but left out of the rate and the time left. */
void        st_progress_start_at (StProgress *progress, guint64 done);
/* Text before the bar ("epoch 3/10"), or NULL for none. */
void        st_progress_set_prefix (StProgress *progress, const char *prefix);
/* done steps of total so far, units of the rate so far (images, where a
 * step is a batch), and note, shown after the count ("loss 0.2310"), or
 * NULL.  Drawn when the last drawing is 100 ms old. */
void        st_progress_update (StProgress *progress, guint64 done, guint64 units,
                                const char *note);
/* One step of one unit more. */
void        st_progress_step (StProgress *progress);
/* Removes the line, so that a message can be written; the next update
 * draws it again. */
void        st_progress_clear (StProgress *progress);
/* Draws the final count, then removes the line. */
void        st_progress_finish (StProgress *progress);

/* The line itself, for a given state: what st_progress_update draws. */
char       *st_progress_format (const char *prefix, guint64 done, guint64 total, double rate,
                                const char *rate_unit, double seconds_left, const char *note);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StProgress, st_progress_free)

G_END_DECLS
