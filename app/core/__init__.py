"""The domain core: access requests, grants and their audit trail. Knows nothing of Slack."""
