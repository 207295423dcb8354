"""``behaviorlm serve``: an online next-behavior API with exact candidate scoring and dynamic batching."""
