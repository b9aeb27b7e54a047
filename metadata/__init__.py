"""chatmail-metadata: Dovecot's IMAP METADATA dict (push device tokens, server keys)."""
