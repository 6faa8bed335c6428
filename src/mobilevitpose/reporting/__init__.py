"""Tables and figures of the paper from model configs and finished runs."""
