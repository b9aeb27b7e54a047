"""chatmail-services: the milter, auth responder and reaper of a chatmail relay."""

__version__ = "0.1.0"
