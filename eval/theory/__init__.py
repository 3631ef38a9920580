"""Training-data theory of test-time scaling: the LSA model, its CoT as pseudo-Newton, error curves and bounds,
overthinking, task-mixture selection and the corpus-mixture advisor (formulas, test oracles and caveats: docs/theory.md)."""
