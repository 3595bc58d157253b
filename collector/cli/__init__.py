"""collector/cli."""
