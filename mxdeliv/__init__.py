"""chatmail-mxdeliv: mail other relays deliver over HTTPS (`POST /mxdeliv` behind nginx)."""
