"""collector/incidents."""
