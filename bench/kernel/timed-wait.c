// What a timeout on epoll_wait costs the kernel, alone: two threads ping-pong one byte
// through two pipes, each waiting for its byte in epoll_wait, either with no timeout (-1,
// what a tokio worker passes when no timer is pending) or with one (what it passes when
// a timer is pending: the kernel then arms and cancels a high-resolution timer around
// every sleep). Rounds alternate the two, so that a drift of the machine hits both.
// Prints the CPU time (user + system, both threads, getrusage RUSAGE_THREAD) per round
// trip for each round, then the medians. Pin it to one CPU (taskset -c 0) to see the
// wait alone; on two CPUs each wake-up is also a wake-up of an idle CPU.
//
//   gcc -O2 -pthread bench/kernel/timed-wait.c -o /tmp/timed-wait
//   /tmp/timed-wait [ROUND_TRIPS (100000)] [ROUNDS (6)] [TIMEOUT_MS (20000)]
//   taskset -c 0 /tmp/timed-wait
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

static int trips, timeout_ms;

struct side {
    int in, out, first;
    double cpu;
};

static double thread_cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void *run(void *p) {
    struct side *s = p;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->in, &ev) < 0) exit(1);
    char c = 'x';
    double t0 = thread_cpu();
    if (s->first && write(s->out, &c, 1) != 1) exit(1);
    for (int i = 0; i < trips; i++) {
        struct epoll_event got;
        while (epoll_wait(ep, &got, 1, timeout_ms) < 1) {
        }
        if (read(s->in, &c, 1) != 1) exit(1);
        if (!(s->first && i == trips - 1) && write(s->out, &c, 1) != 1) exit(1);
    }
    s->cpu = thread_cpu() - t0;
    close(ep);
    return NULL;
}

// CPU microseconds per round trip, both threads.
static double round_trip(int timeout) {
    int ab[2], ba[2];
    if (pipe(ab) || pipe(ba)) exit(1);
    timeout_ms = timeout;
    struct side a = {ba[0], ab[1], 1, 0}, b = {ab[0], ba[1], 0, 0};
    pthread_t x, y;
    pthread_create(&x, NULL, run, &a);
    pthread_create(&y, NULL, run, &b);
    pthread_join(x, NULL);
    pthread_join(y, NULL);
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    return (a.cpu + b.cpu) / trips * 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    trips = argc > 1 ? atoi(argv[1]) : 100000;
    int rounds = argc > 2 ? atoi(argv[2]) : 6;
    int timed = argc > 3 ? atoi(argv[3]) : 20000;
    if (rounds < 1 || rounds > 100 || trips < 1) return 2;
    double none[100], with[100];
    for (int r = 0; r < rounds; r++) {
        none[r] = round_trip(-1);
        with[r] = round_trip(timed);
        printf("round %d: no timeout %.2f us, timeout %d ms %.2f us CPU per round trip\n", r + 1, none[r], timed,
               with[r]);
    }
    qsort(none, rounds, sizeof(double), cmp);
    qsort(with, rounds, sizeof(double), cmp);
    double a = none[rounds / 2], b = with[rounds / 2];
    printf("median: no timeout %.2f us, with a timeout %.2f us: %+.2f us per round trip (two waits)\n", a, b, b - a);
    return 0;
}
