/* A minimal test harness: CHECK counts failures and prints where, the run exits non-zero. */
#ifndef FB_CHECK_H
#define FB_CHECK_H
#include <stdio.h>

static int fb_failures = 0;
static int fb_checks = 0;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        fb_checks++;                                                            \
        if (!(cond)) {                                                          \
            fb_failures++;                                                      \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#endif
