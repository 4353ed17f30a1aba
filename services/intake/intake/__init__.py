"""Intake (受理): a citizen's matter is taken in once, whatever the channel."""
