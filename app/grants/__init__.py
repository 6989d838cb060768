"""Grant strategies: how access is actually given and taken back."""
