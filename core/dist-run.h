/* strata — a folder run shared among MPI ranks (dist.h): rank 0 plans,
 * every rank runs the images dealt to it, rank 0 gathers the outcomes. */
#pragma once

#include "plan.h"

G_BEGIN_DECLS

/* st_plan_jobs on rank 0, the plan (or its error) then shared with every
 * rank; alone, st_plan_jobs.  Standard input and output are refused with
 * several ranks: only one of them could read or write it.  On the other
 * ranks an error of rank 0 comes back as one st_dist_error_echoed says
 * yes to, for the caller not to print it again. */
gboolean st_dist_plan_jobs (const char *const *inputs, const StRunOptions *opt,
                            gboolean classify, StJobPlan *plan, GError **error);
/* After the run: each job's outcome (and a classifier's probabilities,
 * n_classes each; 0 for none) as the rank that ran it left them, on
 * every rank.  The run's last collective call. */
void     st_dist_merge_jobs (GPtrArray *jobs, int n_classes);
/* Whether error is rank 0's error shared with this rank. */
gboolean st_dist_error_echoed (const GError *error);

G_END_DECLS
