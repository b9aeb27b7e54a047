"""chatmail-web: account creation over HTTP (`/new`, behind nginx) and the relay's pages."""
