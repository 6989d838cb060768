"""accessbot: just-in-time privileged access from Slack, approval policies as Python code."""
