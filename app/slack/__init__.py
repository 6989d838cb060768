"""Slack: Block Kit builders, the notifier and directory over the Web API, and Bolt listeners."""
