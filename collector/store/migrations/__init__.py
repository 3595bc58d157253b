"""collector/store/migrations."""
