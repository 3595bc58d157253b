"""Probes: the checks, shared by the agent and the collector's SSH poller.

This package imports neither `agent` nor `collector`, and nothing heavier than what a customer
host runs anyway (psutil, pydantic, pyyaml).
"""
