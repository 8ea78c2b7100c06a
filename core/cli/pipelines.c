/* strata pipelines: the installed pipelines and what each does. */
#include "cli.h"
#include "registry.h"

#include <stdio.h>

int
cmd_pipelines (int argc, char **argv)
{
  g_autoptr (GOptionContext) octx = make_context (NULL,
    "Lists the installed pipelines (STRATA_PIPELINE_PATH, then the installed ones), which\n"
    "'strata run NAME ...' takes by name, with their descriptions.", NULL);
  if (!parse_options (octx, &argc, &argv))
    return EXIT_USAGE;
  if (argc > 1)
    {
      fprintf (stderr, "strata pipelines: expected no arguments, found '%s'\n", argv[1]);
      return EXIT_USAGE;
    }
  StRegistry *reg = st_registry_get_default ();
  g_autoptr (GPtrArray) names = st_pipeline_installed_names ();
  printf ("%-20s %s\n", "PIPELINE", "DESCRIPTION");
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      g_autofree char *path = st_pipeline_find_installed (name);
      g_autoptr (GError) error = NULL;
      StPipeline *p = path ? st_pipeline_load_file (reg, path, &error) : NULL;
      /* A pipeline that does not load is still listed, with the reason,
       * so that a broken install is seen here rather than at run time. */
      if (!p)
        printf ("%-20s (does not load: %s)\n", name, error ? error->message : "file gone");
      else
        printf ("%-20s %s\n", name, st_pipeline_description (p) ? st_pipeline_description (p)
                                                                : "(no description)");
      st_pipeline_free (p);
    }
  printf ("\n%u installed pipeline%s.\n", names->len, names->len == 1 ? "" : "s");
  return EXIT_OK;
}
