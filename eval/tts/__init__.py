"""Compute-optimal test-time scaling: strategies on stored samples, difficulty bins, the per-bin policy, search."""
