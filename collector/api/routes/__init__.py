"""One module per resource; each exposes `router`, mounted by `collector.api.app`."""
