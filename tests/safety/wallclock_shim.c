/* A wall-clock step for one process tree, as an NTP step or an operator's `date -s` would make
 * it: LD_PRELOAD this library and put an offset in seconds (e.g. "3600" or "-3600") into the
 * file named by RAAS_WALLCLOCK_OFFSET_FILE. CLOCK_REALTIME (clock_gettime, gettimeofday, time)
 * moves by the offset; CLOCK_MONOTONIC and every sleep are untouched.
 *
 * Why not libfaketime: with FAKETIME_DONT_FAKE_MONOTONIC=1 (needed so the monotonic clock does
 * not jump too), libfaketime 0.9.10 makes clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) fail
 * with EINVAL, and Python's time.sleep uses exactly that call.
 *
 * Built by tests/safety/matrix_harness.py with: cc -shared -fPIC -O2 -o X.so wallclock_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static long long offset_ns;
static struct timespec seen_mtime;

/* Only this process steps its clock: its children (the simulated rig: other hardware) are
 * started without the shim. */
__attribute__((constructor)) static void not_inherited(void) { unsetenv("LD_PRELOAD"); }

static void refresh(void) {
    const char *path = getenv("RAAS_WALLCLOCK_OFFSET_FILE");
    struct stat st;
    if (path == NULL || stat(path, &st) != 0) {
        return;
    }
    if (st.st_mtim.tv_sec == seen_mtime.tv_sec && st.st_mtim.tv_nsec == seen_mtime.tv_nsec) {
        return;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    double seconds = 0;
    if (fscanf(f, "%lf", &seconds) == 1) {
        offset_ns = (long long)(seconds * 1e9);
        seen_mtime = st.st_mtim;
    }
    fclose(f);
}

static void shift(struct timespec *ts) {
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000LL;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (real_clock_gettime == NULL) {
        real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    }
    int rc = real_clock_gettime(clk, ts);
    if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE)) {
        refresh();
        shift(ts);
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv != NULL) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL) {
        *out = ts.tv_sec;
    }
    return ts.tv_sec;
}
