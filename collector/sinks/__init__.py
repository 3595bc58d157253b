"""Where incidents go besides the store and the API: webhooks, e-mail, ticketing systems.

Every notification goes through the durable outbox (`collector/outbox.py`): the incident change
and its notifications are committed together, and `delivery.py` sends them later, retrying, so a
sink that is down delays a notification and never loses it. docs/sinks.md is the operator's view.
"""
