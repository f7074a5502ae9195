/* fuzz-memfd.h: the fuzz input as a file, for the targets whose reader takes
 * a descriptor or a path (included by them; not a library).  A memfd lives
 * in memory and has no name to clean up. */
#ifndef AGN_FUZZ_MEMFD_H
#define AGN_FUZZ_MEMFD_H

#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* DATA[0..SIZE) in a memfd, rewound, and with PATH (N bytes) set to
 * /proc/self/fd/FD when not NULL; -1 when the kernel refuses (the input is
 * then skipped). */
static int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t n)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) return -1;
    if (agn_write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        return -1;
    }
    if (path) snprintf(path, n, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
