/* strata plugins: the stage kinds found, or one kind's parameters. */
#include "cli.h"
#include "param.h"
#include "registry.h"

#include <stdio.h>

static const char *
category_name (StCategory c)
{
  switch (c)
    {
    case ST_CATEGORY_FILTER: return "filter";
    case ST_CATEGORY_LAYER: return "layer";
    case ST_CATEGORY_PLUMBING: return "plumbing";
    }
  return "?";
}

static void
print_kind (const StKindEntry *entry, GPtrArray *providers)
{
  const StKind *k = entry->kind;
  printf ("%s — %s\n\n", k->name, k->summary ? k->summary : "");
  printf ("  Category     %s\n", category_name (k->category));
  printf ("  File         %s\n", entry->path);
  if (providers->len > 1)
    printf ("  Rank         %d, overriding the other file%s below\n", k->rank,
            providers->len > 2 ? "s" : "");
  else
    printf ("  Rank         %d\n", k->rank);
  printf ("  ABI version  %u\n", k->abi_version);
  if (k->max_inputs < 0)
    printf ("  Inputs       %d or more\n", k->min_inputs);
  else if (k->min_inputs == k->max_inputs)
    printf ("  Inputs       %d\n", k->min_inputs);
  else
    printf ("  Inputs       %d to %d\n", k->min_inputs, k->max_inputs);
  printf ("  Trainable    %s\n", k->backward ? "yes (has backward)" : "no (inference only)");
  if (st_kind_flags (k) & ST_KIND_RANDOM)
    printf ("  Random       yes: draws anew for every sample in every training epoch\n");
  for (guint i = 1; i < providers->len; i++)
    {
      const StKindEntry *other = providers->pdata[i];
      printf ("  Also in      %s (rank %d), overridden: %s\n", other->path, other->kind->rank,
              other->kind->rank < k->rank ? "the higher rank is used"
                                          : "of equal ranks, the first found is used");
    }
  printf ("\nParameters:\n");
  if (k->n_params == 0)
    printf ("  (none)\n");
  for (int i = 0; i < k->n_params; i++)
    {
      const StParamSpec *s = &k->params[i];
      g_autofree char *range = st_param_describe_range (s);
      printf ("\n  %-14s %s%s\n", s->name, st_param_type_name (s->type),
              s->flags & ST_PARAM_REQUIRED ? ", required" : "");
      if (s->help)
        printf ("    %s\n", s->help);
      if (s->default_value)
        printf ("    default: %s\n", s->default_value);
      if (range)
        printf ("    %s: %s\n", s->type == ST_PARAM_ENUM ? "choices" : "range", range);
    }
}

int
cmd_plugins (int argc, char **argv)
{
  g_autoptr (GOptionContext) octx = make_context ("[NAME]",
    "Lists the stage kinds of every plugin found, or every parameter of one kind.", NULL);
  if (!parse_options (octx, &argc, &argv))
    return EXIT_USAGE;
  StRegistry *reg = st_registry_get_default ();
  if (argc > 2)
    {
      fprintf (stderr, "strata plugins: expected at most one NAME\n");
      return EXIT_USAGE;
    }
  if (argc == 2)
    {
      const StKindEntry *entry = st_registry_lookup (reg, argv[1]);
      const char *refusal = entry ? NULL : st_registry_refusal (reg, argv[1]);
      if (refusal)
        {
          fprintf (stderr, "strata: stage kind '%s' is provided only by a plugin that was not "
                   "loaded: %s\n", argv[1], refusal);
          return EXIT_USAGE;
        }
      if (!entry)
        {
          g_autofree char *near = st_registry_suggest (reg, argv[1]);
          fprintf (stderr, "strata: no stage kind named '%s'%s%s%s\n", argv[1],
                   near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
          return EXIT_USAGE;
        }
      g_autoptr (GPtrArray) providers = st_registry_providers (reg, argv[1]);
      print_kind (entry, providers);
      return EXIT_OK;
    }
  g_autoptr (GPtrArray) names = st_registry_kind_names (reg);
  printf ("%-14s %-9s %s\n", "KIND", "CATEGORY", "SUMMARY");
  guint overridden = 0;
  for (guint i = 0; i < names->len; i++)
    {
      const StKindEntry *e = st_registry_lookup (reg, names->pdata[i]);
      g_autoptr (GPtrArray) providers = st_registry_providers (reg, names->pdata[i]);
      printf ("%-14s %-9s %s\n", e->kind->name, category_name (e->kind->category),
              e->kind->summary ? e->kind->summary : "");
      if (providers->len == 1)
        {
          printf ("%-14s %-9s   from %s\n", "", "", e->path);
          continue;
        }
      /* A kind provided twice is worth seeing: the winner changes what
       * every pipeline using the kind does. */
      overridden++;
      printf ("%-14s %-9s   from %s (rank %d, used)\n", "", "", e->path, e->kind->rank);
      for (guint k = 1; k < providers->len; k++)
        {
          const StKindEntry *other = providers->pdata[k];
          printf ("%-14s %-9s   also %s (rank %d, overridden)\n", "", "", other->path,
                  other->kind->rank);
        }
    }
  printf ("\n%u stage kinds, plugin ABI version %d.\n", names->len, ST_ABI_VERSION);
  if (overridden)
    printf ("%u kind%s more than one file: the highest rank is used, then the first "
            "found on the search path.\n", overridden,
            overridden == 1 ? " is provided by" : "s are provided by");
  GPtrArray *errors = st_registry_load_errors (reg);
  if (errors->len)
    {
      printf ("\nNot loaded:\n");
      for (guint i = 0; i < errors->len; i++)
        printf ("  %s\n", (char *) errors->pdata[i]);
    }
  return EXIT_OK;
}

