"""collector/store/migrations/versions."""
