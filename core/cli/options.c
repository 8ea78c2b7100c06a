/* strata — GOption entries made from StOptionSpec tables. */
#include "options.h"
#include "cli.h"

#include <stdio.h>

#include <string.h>

typedef struct {
  const StOptionSpec *option;
  void *target;
  char *text;                  /* a value as given; NULL: not given */
  gboolean flag;               /* a flag given */
} Slot;

struct _CliOptions {
  Slot *slots;
  int n_slots;
  GOptionEntry *entries;       /* n_slots + 1, the last zeroed */
  char **help;                 /* n_slots */
};

CliOptions *
cli_options_new (const OptionTable *tables, int n_tables)
{
  CliOptions *o = g_new0 (CliOptions, 1);
  for (int t = 0; t < n_tables; t++)
    o->n_slots += tables[t].n_options;
  o->slots = g_new0 (Slot, o->n_slots);
  o->entries = g_new0 (GOptionEntry, o->n_slots + 1);
  o->help = g_new0 (char *, o->n_slots);
  int i = 0;
  for (int t = 0; t < n_tables; t++)
    {
      st_options_set_defaults (tables[t].options, tables[t].n_options, tables[t].target);
      for (int k = 0; k < tables[t].n_options; k++, i++)
        {
          const StOptionSpec *option = &tables[t].options[k];
          o->slots[i] = (Slot) { option, tables[t].target, NULL, FALSE };
          o->help[i] = st_option_help (option);
          gboolean path = option->spec.type == ST_PARAM_STRING;
          o->entries[i] = (GOptionEntry) {
            option->spec.name, option->short_name, 0,
            !option->arg_name ? G_OPTION_ARG_NONE : path ? G_OPTION_ARG_FILENAME : G_OPTION_ARG_STRING,
            option->arg_name ? (gpointer) &o->slots[i].text : (gpointer) &o->slots[i].flag,
            o->help[i], option->arg_name,
          };
        }
    }
  return o;
}

void
cli_options_free (CliOptions *o)
{
  for (int i = 0; i < o->n_slots; i++)
    {
      g_free (o->slots[i].text);
      g_free (o->help[i]);
    }
  g_free (o->slots);
  g_free (o->entries);
  g_free (o->help);
  g_free (o);
}

const GOptionEntry *
cli_options_entries (const CliOptions *o)
{
  return o->entries;
}

gboolean
cli_options_apply (CliOptions *o, GError **error)
{
  for (int i = 0; i < o->n_slots; i++)
    {
      Slot *slot = &o->slots[i];
      if ((slot->text || slot->flag)
          && !st_option_parse (slot->option, slot->text, slot->target, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
cli_options_given (const CliOptions *o, const char *name)
{
  for (int i = 0; i < o->n_slots; i++)
    if (strcmp (o->slots[i].option->spec.name, name) == 0)
      return o->slots[i].text || o->slots[i].flag;
  return FALSE;
}

/* Parses the command line into the tables' structs; FALSE once said why. */
gboolean
cli_parse_table_options (const char *command, const char *params, const char *summary,
                         const OptionTable *tables, int n_tables, int *argc, char ***argv)
{
  g_autoptr (CliOptions) options = cli_options_new (tables, n_tables);
  g_autoptr (GOptionContext) octx = make_context (params, summary, cli_options_entries (options));
  if (!parse_options (octx, argc, argv))
    return FALSE;
  g_autoptr (GError) error = NULL;
  if (!cli_options_apply (options, &error))
    {
      fprintf (stderr, "strata %s: %s\n", command, error->message);
      return FALSE;
    }
  return TRUE;
}
