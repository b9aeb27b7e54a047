"""chatmail-status: the relay's health in a few lines (docs/operations.md)."""
