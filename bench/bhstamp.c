/* bhstamp: the workload program of holden's own benchmark (bench/holden_bench.py), built with
 * `cc -O2` into the scratch directory on every run.
 *
 *   bhstamp stamp FILE           append "<CLOCK_MONOTONIC ns>\n" to FILE and exit 0 at once
 *   bhstamp hold FILE            write "<ns> <pid>\n" to FILE, then sleep until killed
 *   bhstamp floor N FILE         the floor of a restart: N times fork + exec(self, stamp FILE)
 *                                + waitpid, one after the other, as bare as a supervisor could be
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
    if (argc == 4 && strcmp(argv[1], "floor") == 0) {
        long n = atol(argv[2]);
        char *child_argv[] = { argv[0], "stamp", argv[3], NULL };
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
    fprintf(stderr, "usage: bhstamp stamp FILE | hold FILE | floor N FILE\n");
    return 64;
}
