"""A-Tuning and B-Tuning through LLaMA-Factory (launcher, LoRA stage), selection (strategy registry), export."""
