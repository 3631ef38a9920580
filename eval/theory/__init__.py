"""Training-data theory of test-time scaling: the LSA model, its CoT as pseudo-Newton, error curves and bounds,
overthinking, task-mixture selection and the corpus-mixture advisor (spec: design/theory-training-data.md)."""
