"""collector/api."""
