"""Pure parsers of command output, shared by a probe's local run and its SSH form.

Each module parses one command's output (ps, ss, systemctl, /proc files) into plain data and
never runs anything: gathering the text is the probe's job, locally or over SSH.
"""
