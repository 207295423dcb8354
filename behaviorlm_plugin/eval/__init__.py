"""Prediction and evaluation: predict (+ torchrun), the prediction-row schema, metrics, evaluate, plots."""
