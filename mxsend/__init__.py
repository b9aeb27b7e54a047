"""chatmail-mxsend: Postfix's transport for remote mail, HTTPS (`/mxdeliv`) first, SMTP after."""
