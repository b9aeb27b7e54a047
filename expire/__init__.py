"""The timer-driven Maildir reaper."""
