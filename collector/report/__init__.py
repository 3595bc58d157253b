"""The morning report: what the night brought, per customer (docs/report.md).

`morning.py` builds it from the store, `shapes.py` is its JSON, `window.py` reads `--since`,
`display.py` words values for people, `render_text.py` and `render_html.py` print it.
"""
