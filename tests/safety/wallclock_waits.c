/* Timed waits on the wall clock, for tests/safety/test_wallclock_shim.py: each waits for a
 * deadline 200 ms after "now" on CLOCK_REALTIME (as a program computes one) and prints how long it
 * really waited on CLOCK_MONOTONIC, in ms. Run under wallclock_shim.so with an offset set, every
 * wait must still take about 200 ms, as after a real clock step.
 *
 * usage: wallclock_waits   (prints "<wait> <ms>" lines)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <time.h>

#define WAIT_NS 200000000LL

static struct timespec after(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec + WAIT_NS;
    ts.tv_sec = ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    return ts;
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report(const char *name, double t0) {
    printf("%s %.1f\n", name, mono_ms() - t0);
    fflush(stdout);
}

int main(void) {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER; /* the default clock: CLOCK_REALTIME */
    pthread_condattr_t attr;
    pthread_cond_t mono;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&mono, &attr);
    sem_t s;
    sem_init(&s, 0, 0);
    struct timespec d;
    double t0;

    pthread_mutex_lock(&m);
    d = after(CLOCK_REALTIME);
    t0 = mono_ms();
    while (pthread_cond_timedwait(&c, &m, &d) == 0) {
    }
    report("pthread_cond_timedwait", t0);

    d = after(CLOCK_MONOTONIC);
    t0 = mono_ms();
    while (pthread_cond_timedwait(&mono, &m, &d) == 0) {
    }
    report("pthread_cond_timedwait_monotonic", t0);

    d = after(CLOCK_REALTIME);
    t0 = mono_ms();
    while (pthread_cond_clockwait(&c, &m, CLOCK_REALTIME, &d) == 0) {
    }
    report("pthread_cond_clockwait", t0);
    pthread_mutex_unlock(&m);

    d = after(CLOCK_REALTIME);
    t0 = mono_ms();
    sem_timedwait(&s, &d);
    report("sem_timedwait", t0);

    d = after(CLOCK_REALTIME);
    t0 = mono_ms();
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &d, NULL) != 0) {
    }
    report("clock_nanosleep", t0);
    return 0;
}
