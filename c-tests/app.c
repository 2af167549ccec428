/* An ordinary Spread program, written as any Spread 5 application is: connect to the daemon
 * named by argv[1], join a group, multicast to it and receive until the message comes back.
 * tests/install.rs builds it against an installed prefix with pkg-config. */

#include <stdio.h>
#include <string.h>
#include <sp.h>

#define MAX_GROUPS 16

int main(int argc, char *argv[])
{
    const char *daemon = argc > 1 ? argv[1] : "4803";
    const char *group = "app";
    const char *text = "hello from app.c";
    char private_group[MAX_GROUP_NAME];
    mailbox mbox;
    int ret, i;

    ret = SP_connect(daemon, "app", 0, 1, &mbox, private_group);
    if (ret != ACCEPT_SESSION) {
        SP_error(ret);
        return 1;
    }
    ret = SP_join(mbox, group);
    if (ret >= 0)
        ret = SP_multicast(mbox, AGREED_MESS, group, 0, (int)strlen(text), text);
    /* The join's membership notice comes first; a few messages are plenty. */
    for (i = 0; ret >= 0 && i < 10; i++) {
        service service_type = 0;
        char sender[MAX_GROUP_NAME];
        char groups[MAX_GROUPS][MAX_GROUP_NAME];
        char message[256];
        int num_groups, endian_mismatch;
        int16 mess_type;

        ret = SP_receive(mbox, &service_type, sender, MAX_GROUPS, &num_groups, groups,
                         &mess_type, &endian_mismatch, sizeof(message) - 1, message);
        if (ret >= 0 && Is_regular_mess(service_type)) {
            message[ret] = '\0';
            if (strcmp(sender, private_group) == 0 && strcmp(message, text) == 0) {
                printf("%s received its own message: %s\n", private_group, message);
                SP_disconnect(mbox);
                return 0;
            }
        }
    }
    if (ret < 0)
        SP_error(ret);
    else
        fprintf(stderr, "app: own message not received\n");
    SP_disconnect(mbox);
    return 1;
}
