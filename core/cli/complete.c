/* strata — what the shell completion and the manual page are made from:
 * the same option tables and command list that --help and usage show, so
 * neither can drift from the program. */
#include "config.h"
#include "cli.h"
#include "options.h"
#include "registry.h"

#include <stdio.h>
#include <string.h>

const CliCommand cli_commands[] = {
  { "run", "PIPELINE INPUT... -o OUT", "run a pipeline on image files and folders" },
  { "train", "PIPELINE --data DIR -o WEIGHTS", "train a classifier" },
  { "eval", "PIPELINE --data DIR", "accuracy, precision, recall, confusion matrix" },
  { "inspect", "PIPELINE [IMAGE -o PNG]",
    "stages, shapes, parameters, multiply-adds; with IMAGE, a picture of each stage's "
    "feature maps" },
  { "plugins", "[NAME]", "list stage kinds, or one kind's parameters" },
  { "pipelines", "", "list installed pipelines and what they do" },
  { "version", "", "strata's version (also --version)" },
  { NULL }
};

/* Long and short names, one a line; with_value: only those taking a value. */
static void
print_option_names (const char *command, gboolean with_value)
{
  OptionTable tables[4];
  int n = cli_command_tables (command, tables, G_N_ELEMENTS (tables));
  for (int t = 0; t < n; t++)
    for (int k = 0; k < tables[t].n_options; k++)
      {
        const StOptionSpec *o = &tables[t].options[k];
        if (with_value && !o->arg_name)
          continue;
        printf ("--%s\n", o->spec.name);
        if (o->short_name)
          printf ("-%c\n", o->short_name);
      }
  for (const GOptionEntry *e = cli_common_entries (); e->long_name; e++)
    if (!with_value || e->arg != G_OPTION_ARG_NONE)
      printf ("--%s\n", e->long_name);
  if (!with_value)
    printf ("--help\n-h\n");
}

/* strata complete commands | options CMD | value-options CMD | pipelines | kinds:
 * words for the bash completion, one a line. */
int
cmd_complete (int argc, char **argv)
{
  const char *what = argc > 1 ? argv[1] : "";
  if (strcmp (what, "commands") == 0)
    for (const CliCommand *c = cli_commands; c->name; c++)
      printf ("%s\n", c->name);
  else if ((strcmp (what, "options") == 0 || strcmp (what, "value-options") == 0) && argc > 2)
    print_option_names (argv[2], what[0] == 'v');
  else if (strcmp (what, "pipelines") == 0)
    {
      g_autoptr (GPtrArray) names = st_pipeline_installed_names ();
      for (guint i = 0; i < names->len; i++)
        printf ("%s\n", (char *) names->pdata[i]);
    }
  else if (strcmp (what, "kinds") == 0)
    {
      g_autoptr (GPtrArray) names = st_registry_kind_names (st_registry_get_default ());
      for (guint i = 0; i < names->len; i++)
        printf ("%s\n", (char *) names->pdata[i]);
    }
  else
    {
      fprintf (stderr, "strata complete: expected commands, options COMMAND, "
               "value-options COMMAND, pipelines or kinds\n");
      return EXIT_USAGE;
    }
  return EXIT_OK;
}

/* Text as roff reads it: backslashes and hyphens escaped, no line starting
 * with a control character. */
static void
put_roff (const char *text)
{
  if (*text == '.' || *text == '\'')
    fputs ("\\&", stdout);
  for (const char *c = text; *c; c++)
    if (*c == '\\')
      fputs ("\\e", stdout);
    else if (*c == '-')
      fputs ("\\-", stdout);
    else if (*c == '\n')
      fputs (" ", stdout);
    else
      putchar (*c);
}

static void
man_option (const char *long_name, char short_name, const char *arg_name, const char *help)
{
  printf (".TP\n.B ");
  if (short_name)
    printf ("\\-%c, ", short_name);
  printf ("\\-\\-");
  put_roff (long_name);
  if (arg_name)
    {
      printf (" \\fI");
      put_roff (arg_name);
      printf ("\\fR");
    }
  printf ("\n");
  put_roff (help ? help : "");
  printf ("\n");
}

/* strata --man: the manual page, in roff. */
int
cli_print_manual (void)
{
  printf (".TH STRATA 1 \"\" \"strata %s\" \"User Commands\"\n", ST_VERSION);
  printf (".SH NAME\nstrata \\- image\\-processing pipelines: run, train, evaluate, inspect\n");
  printf (".SH SYNOPSIS\n.B strata\n.I COMMAND\n[\\fIOPTIONS\\fR...]\n");
  printf (".SH DESCRIPTION\nstrata runs pipelines of image filters and neural network layers "
          "over image files and folders, trains classifiers and measures them.  PIPELINE is a "
          "pipeline file, an installed pipeline's name (\\fBstrata pipelines\\fR lists them) or "
          "an inline chain such as 'grayscale ! kernel preset=emboss'.\n");
  printf (".SH COMMANDS\n");
  for (const CliCommand *c = cli_commands; c->name; c++)
    {
      printf (".TP\n.B strata %s", c->name);
      if (*c->synopsis)
        {
          printf (" ");
          put_roff (c->synopsis);
        }
      printf ("\n");
      put_roff (c->summary);
      printf ("\n");
    }
  printf (".SH OPTIONS\n");
  for (const CliCommand *c = cli_commands; c->name; c++)
    {
      OptionTable tables[4];
      int n = cli_command_tables (c->name, tables, G_N_ELEMENTS (tables));
      if (n == 0)
        continue;
      printf (".SS strata %s\n", c->name);
      for (int t = 0; t < n; t++)
        for (int k = 0; k < tables[t].n_options; k++)
          {
            const StOptionSpec *o = &tables[t].options[k];
            g_autofree char *help = st_option_help (o);
            man_option (o->spec.name, o->short_name, o->arg_name, help);
          }
    }
  printf (".SS Every command\n");
  for (const GOptionEntry *e = cli_common_entries (); e->long_name; e++)
    man_option (e->long_name, e->short_name, e->arg_description, e->description);
  man_option ("help", 'h', NULL, "The command's options, with their ranges and defaults");
  printf (".SH STAGE KINDS\nThe stage kinds of the plugins installed with strata; "
          "\\fBstrata plugins\\fR \\fIKIND\\fR lists a kind's parameters.\n");
  g_autoptr (GPtrArray) names = st_registry_kind_names (st_registry_get_default ());
  for (guint i = 0; i < names->len; i++)
    {
      const StKindEntry *e = st_registry_lookup (st_registry_get_default (), names->pdata[i]);
      printf (".TP\n.B ");
      put_roff (e->kind->name);
      printf ("\n");
      put_roff (e->kind->summary ? e->kind->summary : "");
      printf ("\n");
    }
  printf (".SH ENVIRONMENT\n.TP\n.B STRATA_PLUGIN_PATH\nMore folders of plugins, "
          "separated by ':'.\n.TP\n.B STRATA_PIPELINE_PATH\nFolders of pipelines "
          "(\\fINAME\\fR.ini) found by name before the installed ones.\n");
  printf (".SH EXIT STATUS\n0 all done, 1 some images failed, 2 nothing run (usage, "
          "pipeline or output problem), 130 interrupted.\n");
  return EXIT_OK;
}
