"""The Dovecot auth responder: dict protocol front end over a protocol-neutral account core."""
