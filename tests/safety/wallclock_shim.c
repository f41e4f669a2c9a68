/* A wall-clock step for one process tree, as an NTP step or an operator's `date -s` would make
 * it: LD_PRELOAD this library and put an offset in seconds (e.g. "3600" or "-3600") into the
 * file named by RAAS_WALLCLOCK_OFFSET_FILE. CLOCK_REALTIME (clock_gettime, gettimeofday, time)
 * moves by the offset; CLOCK_MONOTONIC and every sleep are untouched.
 *
 * Why not libfaketime: with FAKETIME_DONT_FAKE_MONOTONIC=1 (needed so the monotonic clock does
 * not jump too), libfaketime 0.9.10 makes clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) fail
 * with EINVAL, and Python's time.sleep uses exactly that call.
 *
 * Timed waits on the wall clock. The kernel's CLOCK_REALTIME does not move here, only what the
 * process reads from it. A real step moves both, so an absolute deadline the process computes
 * after the step ("now + 5 s") means 5 s to the kernel too. Here the process would hand the
 * kernel a deadline shifted by the offset: 1 h in the past after a step back (every wait times
 * out at once, and a thread that waits in a loop spins a whole CPU) or 1 h in the future after a
 * step forward (the wait hangs). That is an artifact no real step makes, and it did happen:
 * a thread of onnxruntime 1.32 (in every daemon; it looks up Microsoft's telemetry host) waits
 * with pthread_cond_timedwait on CLOCK_REALTIME and, seconds after the shim's step back,
 * busy-spun a whole CPU; on a loaded 2-CPU machine that is the likely cause of the rare failure
 * of the fault matrix's clock_jump_back-step cell (a loop read of the hand's pty blocked behind
 * the starved tty worker, the firmware's 500 ms watchdog latched; docs/safety.md). So the shim
 * also takes the offset back out of every absolute CLOCK_REALTIME deadline that glibc's waits
 * pass to the kernel:
 * pthread_cond_timedwait (on a condition variable with the default clock; glibc keeps the clock
 * in bit 1 of __wrefs, __PTHREAD_COND_CLOCK_MONOTONIC_MASK), pthread_cond_clockwait,
 * sem_timedwait, sem_clockwait, pthread_mutex_timedlock, pthread_mutex_clocklock,
 * pthread_rwlock_timed{rd,wr}lock, pthread_rwlock_clock{rd,wr}lock, pthread_timedjoin_np and
 * clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME). A wait that started before the step keeps the
 * deadline it was given (a real step would lengthen or shorten it); a caller that loops until
 * its own deadline (libstdc++'s wait_until does) sees it as a real step makes it.
 *
 * Still on the true wall clock, as no userspace shim can move them: raw futex/timerfd/timer_*
 * deadlines and the kernel's own stamps (SO_TIMESTAMPNS on a socket, file times). The sim's
 * mocap driver maps a datagram's kernel stamp with the process's wall clock and keeps the
 * earlier of that and its monotonic read time: after a step back it uses the read time, after a
 * step forward every mapped arrival is an hour early (a real step does that to the datagrams
 * received before it and read after it only).
 *
 * Cost: one stat() of the offset file per CLOCK_REALTIME read (about 1 us; the daemon reads the
 * wall clock ~40 times a second).
 *
 * Built by tests/safety/matrix_harness.py with: cc -shared -fPIC -O2 -o X.so wallclock_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#define COND_CLOCK_MONOTONIC_MASK 2u /* glibc's __PTHREAD_COND_CLOCK_MONOTONIC_MASK */

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static long long offset_ns;
static struct timespec seen_mtime;

/* Only this process steps its clock: its children (the simulated rig: other hardware) are
 * started without the shim. */
__attribute__((constructor)) static void not_inherited(void) { unsetenv("LD_PRELOAD"); }

static void *next(const char *name) { return dlsym(RTLD_NEXT, name); }

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
        __atomic_store_n(&offset_ns, (long long)(seconds * 1e9), __ATOMIC_RELAXED);
        seen_mtime = st.st_mtim;
    }
    fclose(f);
}

static void shift_by(struct timespec *ts, long long by_ns) {
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + by_ns;
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000LL;
        ts->tv_sec -= 1;
    }
}

/* A deadline on the process's (shifted) wall clock, as the kernel's wall clock reads it. */
static const struct timespec *unshift(const struct timespec *abstime, struct timespec *out) {
    if (abstime == NULL) {
        return NULL;
    }
    refresh();
    *out = *abstime;
    shift_by(out, -__atomic_load_n(&offset_ns, __ATOMIC_RELAXED));
    return out;
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (real_clock_gettime == NULL) {
        real_clock_gettime = (clock_gettime_fn)next("clock_gettime");
    }
    int rc = real_clock_gettime(clk, ts);
    if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE)) {
        refresh();
        shift_by(ts, __atomic_load_n(&offset_ns, __ATOMIC_RELAXED));
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

/* ------------------------------------------------------------------ timed waits */
int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t) {
    static int (*real)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_cond_timedwait");
    }
    unsigned int flags = __atomic_load_n(&c->__data.__wrefs, __ATOMIC_RELAXED);
    if (flags & COND_CLOCK_MONOTONIC_MASK) { /* a monotonic condvar (CPython's GIL, its locks) */
        return real(c, m, t);
    }
    struct timespec k;
    return real(c, m, unshift(t, &k));
}

int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clk,
                           const struct timespec *t) {
    static int (*real)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_cond_clockwait");
    }
    struct timespec k;
    return real(c, m, clk, clk == CLOCK_REALTIME ? unshift(t, &k) : t);
}

int sem_timedwait(sem_t *s, const struct timespec *t) {
    static int (*real)(sem_t *, const struct timespec *);
    if (real == NULL) {
        real = next("sem_timedwait");
    }
    struct timespec k;
    return real(s, unshift(t, &k));
}

int sem_clockwait(sem_t *s, clockid_t clk, const struct timespec *t) {
    static int (*real)(sem_t *, clockid_t, const struct timespec *);
    if (real == NULL) {
        real = next("sem_clockwait");
    }
    struct timespec k;
    return real(s, clk, clk == CLOCK_REALTIME ? unshift(t, &k) : t);
}

int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *t) {
    static int (*real)(pthread_mutex_t *, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_mutex_timedlock");
    }
    struct timespec k;
    return real(m, unshift(t, &k));
}

int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clk, const struct timespec *t) {
    static int (*real)(pthread_mutex_t *, clockid_t, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_mutex_clocklock");
    }
    struct timespec k;
    return real(m, clk, clk == CLOCK_REALTIME ? unshift(t, &k) : t);
}

int pthread_rwlock_timedrdlock(pthread_rwlock_t *l, const struct timespec *t) {
    static int (*real)(pthread_rwlock_t *, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_rwlock_timedrdlock");
    }
    struct timespec k;
    return real(l, unshift(t, &k));
}

int pthread_rwlock_timedwrlock(pthread_rwlock_t *l, const struct timespec *t) {
    static int (*real)(pthread_rwlock_t *, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_rwlock_timedwrlock");
    }
    struct timespec k;
    return real(l, unshift(t, &k));
}

int pthread_rwlock_clockrdlock(pthread_rwlock_t *l, clockid_t clk, const struct timespec *t) {
    static int (*real)(pthread_rwlock_t *, clockid_t, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_rwlock_clockrdlock");
    }
    struct timespec k;
    return real(l, clk, clk == CLOCK_REALTIME ? unshift(t, &k) : t);
}

int pthread_rwlock_clockwrlock(pthread_rwlock_t *l, clockid_t clk, const struct timespec *t) {
    static int (*real)(pthread_rwlock_t *, clockid_t, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_rwlock_clockwrlock");
    }
    struct timespec k;
    return real(l, clk, clk == CLOCK_REALTIME ? unshift(t, &k) : t);
}

int pthread_timedjoin_np(pthread_t th, void **ret, const struct timespec *t) {
    static int (*real)(pthread_t, void **, const struct timespec *);
    if (real == NULL) {
        real = next("pthread_timedjoin_np");
    }
    struct timespec k;
    return real(th, ret, unshift(t, &k));
}

int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem) {
    static int (*real)(clockid_t, int, const struct timespec *, struct timespec *);
    if (real == NULL) {
        real = next("clock_nanosleep");
    }
    struct timespec k;
    int shifted = clk == CLOCK_REALTIME && (flags & TIMER_ABSTIME);
    return real(clk, flags, shifted ? unshift(req, &k) : req, rem);
}
