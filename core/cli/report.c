/* strata — how the command line presents training and evaluation. */
#include "report.h"
#include "jsontext.h"

#include <stdio.h>

static void
print_evaluation_json (const StEvaluation *ev)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "pipeline");
  json_builder_add_string_value (b, ev->pipeline);
  json_builder_set_member_name (b, "images");
  json_builder_add_int_value (b, (gint64) ev->images);
  json_builder_set_member_name (b, "accuracy");
  json_builder_add_double_value (b, ev->accuracy);
  json_builder_set_member_name (b, "loss");
  json_builder_add_double_value (b, ev->loss);
  json_builder_set_member_name (b, "classes");
  json_builder_begin_array (b);
  for (int c = 0; c < ev->n_classes; c++)
    {
      const StClassScore *score = &ev->classes[c];
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, score->name);
      json_builder_set_member_name (b, "precision");
      json_builder_add_double_value (b, score->precision);
      json_builder_set_member_name (b, "recall");
      json_builder_add_double_value (b, score->recall);
      json_builder_set_member_name (b, "images");
      json_builder_add_int_value (b, (gint64) score->images);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "confusion");
  json_builder_begin_array (b);
  int n = ev->n_classes;
  for (int t = 0; t < n; t++)
    {
      json_builder_begin_array (b);
      for (int q = 0; q < n; q++)
        json_builder_add_int_value (b, (gint64) ev->confusion[t * n + q]);
      json_builder_end_array (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autofree char *text = st_json_builder_to_text (b);
  printf ("%s\n", text);
}

static void
print_evaluation_text (const StEvaluation *ev)
{
  int n = ev->n_classes;
  printf ("accuracy %.2f%% (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT "), mean loss %.4f\n\n",
          100 * ev->accuracy, ev->correct, ev->images, ev->loss);
  printf ("%-20s %10s %10s %8s\n", "class", "precision", "recall", "images");
  for (int c = 0; c < n; c++)
    printf ("%-20s %9.1f%% %9.1f%% %8" G_GUINT64_FORMAT "\n", ev->classes[c].name,
            100 * ev->classes[c].precision, 100 * ev->classes[c].recall, ev->classes[c].images);
  printf ("\nconfusion matrix (rows: true class, columns: predicted class)\n%6s", "");
  for (int q = 0; q < n; q++)
    printf (" %6d", q);
  printf ("\n");
  for (int t = 0; t < n; t++)
    {
      printf ("%6d", t);
      for (int q = 0; q < n; q++)
        printf (" %6" G_GUINT64_FORMAT, ev->confusion[t * n + q]);
      printf ("  %s\n", ev->classes[t].name);
    }
}

void
print_evaluation (const StEvaluation *ev, gboolean json)
{
  if (json)
    print_evaluation_json (ev);
  else
    print_evaluation_text (ev);
}

static void
print_epoch (const StTrainReport *r)
{
  if (r->test_accuracy >= 0)
    fprintf (stderr, "epoch %d/%d  lr %g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1f s\n",
             r->epoch, r->epochs, r->lr, r->loss, 100 * r->accuracy, r->test_loss,
             100 * r->test_accuracy, r->seconds);
  else
    fprintf (stderr, "epoch %d/%d  lr %g  train loss %.4f acc %.2f%%  %.1f s\n",
             r->epoch, r->epochs, r->lr, r->loss, 100 * r->accuracy, r->seconds);
}

void
print_train_report (const StTrainReport *r, gpointer data)
{
  const TrainPrinter *printer = data;
  switch (r->event)
    {
    case ST_TRAIN_PROGRESS:
      /* Drawn by the progress line (StTrainOptions.progress). */
      break;
    case ST_TRAIN_EPOCH:
      if (!printer->quiet)
        print_epoch (r);
      break;
    case ST_TRAIN_INTERRUPTED:
      /* Said even when quiet: where to continue from. */
      if (r->checkpoint_error)
        fprintf (stderr, "strata: %s\n", r->checkpoint_error->message);
      else
        fprintf (stderr, "interrupted: checkpoint written to %s (continue with --resume %s)\n",
                 r->checkpoint, r->checkpoint);
      break;
    }
}
