"""``behaviorlm bench``: suites of variants over seeds, a content-addressed step cache, one report.

runner (steps and the variant loop), variants (the kind registry), cache (step cache),
sasrec_steps (the SASRec rows), results (summaries and verdicts), report and plots.
"""
