/* An fsync that fails on demand, for fault tests: LD_PRELOAD it into a node.
 *
 * While the file named by UGEM_TEST_FSYNC_FAULT exists, fsync() and fdatasync()
 * return -1 with errno EIO (as a failing disk does); otherwise they are the
 * C library's own. Built by tests/support/fsync_fault.py with the system cc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
    const char *trigger = getenv("UGEM_TEST_FSYNC_FAULT");
    return trigger != NULL && access(trigger, F_OK) == 0;
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (failing()) {
        errno = EIO;
        return -1;
    }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
