/* Baseline in C: a libmilter milter with the same steps as chatmail-milter (MAIL FROM,
 * RCPT TO and headers without reply, body, end of message) that accepts everything.
 * Built by bench_postfix.py --c-null-milter: gcc -O2 null_milter.c -lmilter -pthread
 * Usage: null_milter fd:3 | unix:PATH */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>

static sfsistat mail(SMFICTX *ctx, char **argv) { return SMFIS_CONTINUE; }
static sfsistat rcpt(SMFICTX *ctx, char **argv) { return SMFIS_NOREPLY; }
static sfsistat header(SMFICTX *ctx, char *name, char *value) { return SMFIS_NOREPLY; }
static sfsistat body(SMFICTX *ctx, unsigned char *chunk, size_t len) { return SMFIS_CONTINUE; }
static sfsistat eom(SMFICTX *ctx) { return SMFIS_ACCEPT; }

static sfsistat negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                          unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                          unsigned long *pf2, unsigned long *pf3) {
    *pf0 = f0;
    *pf1 = f1 & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NOEOH | SMFIP_NOUNKNOWN
                 | SMFIP_NR_RCPT | SMFIP_NR_HDR);
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    "null-milter-c", SMFI_VERSION, SMFIF_CHGFROM, NULL, NULL, mail, rcpt, header, NULL,
    body, eom, NULL, NULL, NULL, NULL, negotiate,
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s fd:3|unix:PATH\n", argv[0]);
        return 64;
    }
    if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(desc) == MI_FAILURE)
        return 1;
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
