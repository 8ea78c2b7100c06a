/* strata — the progress line of counted work. */
#include "progress.h"

/* Redraws a second: enough to look alive, few enough to cost nothing. */
#define REDRAW_US 100000
#define BAR_WIDTH 30

struct _StProgress {
  GMutex lock;
  StProgressFunc func;
  gpointer user_data;
  char *prefix;
  char *rate_unit;
  char *note;
  guint64 total, done, units;
  guint64 first_done;          /* done before the start: not in the rate */
  gint64 start_us, last_draw_us;
  gboolean shown;              /* a line is on screen */
};

StProgress *
st_progress_new (guint64 total, const char *rate_unit, StProgressFunc func, gpointer user_data)
{
  StProgress *p = g_new0 (StProgress, 1);
  g_mutex_init (&p->lock);
  p->func = func;
  p->user_data = user_data;
  p->total = total;
  p->rate_unit = g_strdup (rate_unit ? rate_unit : "");
  p->start_us = g_get_monotonic_time ();
  return p;
}

void
st_progress_free (StProgress *p)
{
  if (!p)
    return;
  g_mutex_clear (&p->lock);
  g_free (p->prefix);
  g_free (p->rate_unit);
  g_free (p->note);
  g_free (p);
}

void
st_progress_start_at (StProgress *p, guint64 done)
{
  g_mutex_lock (&p->lock);
  p->done = p->first_done = done;
  g_mutex_unlock (&p->lock);
}

void
st_progress_set_prefix (StProgress *p, const char *prefix)
{
  g_mutex_lock (&p->lock);
  g_free (p->prefix);
  p->prefix = g_strdup (prefix);
  g_mutex_unlock (&p->lock);
}

char *
st_progress_format (const char *prefix, guint64 done, guint64 total, double rate,
                    const char *rate_unit, double seconds_left, const char *note)
{
  int filled = total ? (int) ((double) BAR_WIDTH * MIN (done, total) / total) : 0;
  char bar[BAR_WIDTH + 1];
  for (int i = 0; i < BAR_WIDTH; i++)
    bar[i] = i < filled ? '#' : '-';
  bar[BAR_WIDTH] = '\0';
  int left = seconds_left > 0 && seconds_left < G_MAXINT ? (int) seconds_left : 0;
  GString *s = g_string_new (NULL);
  if (prefix && *prefix)
    g_string_append_printf (s, "%s ", prefix);
  g_string_append_printf (s, "[%s] %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT, bar, done, total);
  if (note && *note)
    g_string_append_printf (s, "  %s", note);
  g_string_append_printf (s, "  %.1f %s/s  %d:%02d left", rate, rate_unit, left / 60, left % 60);
  return g_string_free (s, FALSE);
}

/* With the lock held. */
static void
draw (StProgress *p, gboolean force)
{
  gint64 now = g_get_monotonic_time ();
  if (!p->func || (!force && now - p->last_draw_us < REDRAW_US))
    return;
  p->last_draw_us = now;
  double elapsed = (now - p->start_us) / 1e6;
  double rate = elapsed > 0 ? p->units / elapsed : 0;
  double steps_a_second = elapsed > 0 ? (p->done - MIN (p->first_done, p->done)) / elapsed : 0;
  double left = steps_a_second > 0 && p->total > p->done
                ? (p->total - p->done) / steps_a_second : 0;
  g_autofree char *line = st_progress_format (p->prefix, p->done, p->total, rate, p->rate_unit,
                                              left, p->note);
  p->func (line, p->user_data);
  p->shown = TRUE;
}

void
st_progress_update (StProgress *p, guint64 done, guint64 units, const char *note)
{
  g_mutex_lock (&p->lock);
  p->done = done;
  p->units = units;
  if (g_strcmp0 (note, p->note) != 0)
    {
      g_free (p->note);
      p->note = g_strdup (note);
    }
  draw (p, FALSE);
  g_mutex_unlock (&p->lock);
}

void
st_progress_step (StProgress *p)
{
  g_mutex_lock (&p->lock);
  p->done++;
  p->units++;
  draw (p, FALSE);
  g_mutex_unlock (&p->lock);
}

/* With the lock held. */
static void
clear (StProgress *p)
{
  if (p->func && p->shown)
    p->func ("", p->user_data);
  p->shown = FALSE;
}

void
st_progress_clear (StProgress *p)
{
  g_mutex_lock (&p->lock);
  clear (p);
  g_mutex_unlock (&p->lock);
}

void
st_progress_finish (StProgress *p)
{
  g_mutex_lock (&p->lock);
  draw (p, TRUE);
  clear (p);
  g_mutex_unlock (&p->lock);
}
