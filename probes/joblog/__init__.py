"""probes/joblog."""
