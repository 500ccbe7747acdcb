"""Training recipes and synthetic data generators for the xnn model zoo (need the [train] extra)."""
