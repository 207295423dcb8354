"""Non-LLM baselines on the same windows (SASRec)."""
