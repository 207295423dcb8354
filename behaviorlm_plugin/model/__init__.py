"""The embedded default model and the exact candidate scorer."""
