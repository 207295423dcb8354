"""Events -> samples -> prompts -> datasets.

Loaders, simulator, windows, prompts, the A-Tuning mix, prepare, and the one reader of a prepared dataset.
"""
