"""What chains the steps: the one-command pipeline (stage table + manifest) and the benchmark harness."""
