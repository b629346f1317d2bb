/* An LD_PRELOAD shim that steps a process's wall clock, for tests: CLOCK_REALTIME (and
 * gettimeofday, time) read the real clock plus the whole seconds written in the file named by
 * WALLCLOCK_OFFSET_FILE, reread at every call; every other clock is left alone, as an NTP step
 * leaves the monotonic clock. libfaketime does the same but deadlocks in jemalloc's start-up
 * (libfaketime issue 130), and Debian's redis-server uses jemalloc; this shim calls the kernel
 * directly and allocates nothing, so it is safe that early. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long offset_seconds(void) {
    const char *path = getenv("WALLCLOCK_OFFSET_FILE");
    if (path == NULL) return 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
    if (fd < 0) return 0;
    char text[32];
    long n = syscall(SYS_read, fd, text, sizeof text - 1);
    syscall(SYS_close, fd);
    if (n <= 0) return 0;
    text[n] = 0;
    return strtoll(text, NULL, 10);
}

int clock_gettime(clockid_t clock, struct timespec *now) {
    int result = (int)syscall(SYS_clock_gettime, clock, now);
    if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
        now->tv_sec += offset_seconds();
    }
    return result;
}

int gettimeofday(struct timeval *now, void *zone) {
    (void)zone;
    struct timespec precise;
    int result = clock_gettime(CLOCK_REALTIME, &precise);
    if (result == 0 && now != NULL) {
        now->tv_sec = precise.tv_sec;
        now->tv_usec = precise.tv_nsec / 1000;
    }
    return result;
}

time_t time(time_t *out) {
    struct timespec precise;
    clock_gettime(CLOCK_REALTIME, &precise);
    if (out != NULL) *out = precise.tv_sec;
    return precise.tv_sec;
}
