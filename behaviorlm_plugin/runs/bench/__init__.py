"""``behaviorlm bench``: suites of variants over seeds, a content-addressed step cache, one report.

runner (the variant loop and parts), context (what the steps read), cached_steps (the step layer under the
step cache), variants (the kind registry), model_free (oracle, prior-correction rows, frontier), lr_search,
sasrec_steps (the SASRec rows), cache (the step cache), parts (part files, merge, time model), evidence
(the paired bootstrap), results (summaries and verdicts), report and plots.
"""
