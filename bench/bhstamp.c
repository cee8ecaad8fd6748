/* bhstamp: the workload program of holden's own benchmark (bench/holden_bench.py), built with
 * `cc -O2` into the scratch directory on every run.
 *
 *   bhstamp stamp FILE           append "<CLOCK_MONOTONIC ns>\n" to FILE and exit 0 at once
 *   bhstamp hold FILE            write "<ns> <pid>\n" to FILE, then sleep until killed
 *   bhstamp live MS FILE         append "S <ns>\n", sleep MS ms, append "E <ns>\n", exit 0
 *   bhstamp floor N FILE [MS]    the floor of a restart: N times fork + exec(self, stamp FILE)
 *                                + waitpid, one after the other, as bare as a supervisor could be;
 *                                with MS the children run `live MS FILE` instead
 *
 * CLOCK_MONOTONIC is the clock of Python's time.monotonic_ns(), so stamps compare with the
 * harness's own readings.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void append_stamp(const char *path, int with_pid) {
    char buf[64];
    int n = with_pid ? snprintf(buf, sizeof buf, "%lld %d\n", now_ns(), (int)getpid())
                     : snprintf(buf, sizeof buf, "%lld\n", now_ns());
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) { perror(path); _exit(2); }
    if (write(fd, buf, (size_t)n) != n) { perror("write"); _exit(2); }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "stamp") == 0) {
        append_stamp(argv[2], 0);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "hold") == 0) {
        append_stamp(argv[2], 1);
        for (;;) pause();
    }
    if (argc == 4 && strcmp(argv[1], "live") == 0) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "S %lld\n", now_ns());
        int fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, buf, (size_t)n) != n) { perror(argv[3]); return 2; }
        long ms = atol(argv[2]);
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        n = snprintf(buf, sizeof buf, "E %lld\n", now_ns());
        if (write(fd, buf, (size_t)n) != n) { perror(argv[3]); return 2; }
        return 0;
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "floor") == 0) {
        long n = atol(argv[2]);
        char *stamp_argv[] = { argv[0], "stamp", argv[3], NULL };
        char *live_argv[] = { argv[0], "live", argc == 5 ? argv[4] : "0", argv[3], NULL };
        char **child_argv = argc == 5 ? live_argv : stamp_argv;
        for (long i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid < 0) { perror("fork"); return 3; }
            if (pid == 0) {
                execv(argv[0], child_argv);   /* the harness runs us by absolute path */
                _exit(127);
            }
            int status;
            if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bhstamp floor: child %d failed (status %#x)\n", (int)pid, status);
                return 4;
            }
        }
        return 0;
    }
    fprintf(stderr, "usage: bhstamp stamp FILE | hold FILE | live MS FILE | floor N FILE [MS]\n");
    return 64;
}
