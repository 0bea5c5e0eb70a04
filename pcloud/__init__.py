"""pcloud: a personal cloud server (mail, calendars, contacts, files, chat) in one process."""

__version__ = "0.1.0"
