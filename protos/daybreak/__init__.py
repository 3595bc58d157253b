"""Daybreak generated wire code (see protos/generate.py)."""
