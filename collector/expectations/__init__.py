"""collector/expectations."""
