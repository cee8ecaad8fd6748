/* v1_migration: what a respawn costs on a v1 or hybrid cgroup host, for each way of getting
 * the child into its cgroups (issue 13; docs/benchmarks.md, "Spawning (issue 13)").
 *
 *   cc -O2 -Wall -o /tmp/v1_migration bench/v1_migration.c
 *   /tmp/v1_migration MODE [RUNS [LIVE_MS]]        (root; defaults 10 runs of 1200 ms)
 *
 * A "program" (this file re-exec'd) stamps CLOCK_MONOTONIC when it starts, lives LIVE_MS, stamps
 * again and exits 0; a one-thread supervisor here waits for its pidfd and starts it again, RUNS
 * times. Printed: death-to-exec (the program's exit stamp to the next one's start stamp) and how
 * long the supervisor's thread was held per spawn, p50 / p90 / max in ms. No asserts.
 *
 * The program's cgroup is made in every v1 hierarchy of memory, cpu, cpuacct and pids, and in
 * the cgroup2 mount, as holden does on a hybrid host. MODE:
 *   off        no cgroups: the floor of this loop (clone3 CLONE_VFORK, exec)
 *   vfork      today's holden: clone3(CLONE_VFORK | CLONE_INTO_CGROUP), the child writes "0"
 *              to the v1 cgroup.procs then execs; the parent waits for the exec
 *   async      no CLONE_VFORK: the child writes every cgroup.procs (v2 too) and execs while the
 *              parent goes on; the parent is held for the clone only
 *   preplaced  the next run's child is made (and migrated) right after a program started, and
 *              waits on a pipe; at the death the parent writes one byte and the child execs
 * The host knobs are measured by running `vfork` again after changing them (and restoring them):
 *   mount -o remount,favordynmods /sys/fs/cgroup/<each>   (Linux 6.0+)
 *   echo 1 > /sys/kernel/rcu_expedited
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct stamp { long long tag, ns; };

static int program(long ms) {
    struct stamp s = { 'S', now_ns() };
    if (write(3, &s, sizeof s) != sizeof s) return 2;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    s.tag = 'E';
    s.ns = now_ns();
    if (write(3, &s, sizeof s) != sizeof s) return 2;
    return 0;
}

#define MAXH 8
static char dirs[MAXH][512];
static int ndirs, procs[MAXH], nprocs, v2dir = -1, v2procs = -1;
static char self[512], live[32];

/* The program's cgroup in each v1 hierarchy named and in the cgroup2 mount. */
static void make_cgroups(void) {
    FILE *m = fopen("/proc/self/mounts", "r");
    char dev[256], dir[256], type[64], opts[512];
    while (m && fscanf(m, "%255s %255s %63s %511s %*d %*d", dev, dir, type, opts) == 4) {
        int v1 = strcmp(type, "cgroup") == 0 &&
                 (strstr(opts, "memory") || strstr(opts, "cpu") || strstr(opts, "pids")) &&
                 !strstr(opts, "cpuset");
        int v2 = strcmp(type, "cgroup2") == 0;
        if ((!v1 && !v2) || ndirs == MAXH) continue;
        char *d = dirs[ndirs++], p[600];
        snprintf(d, sizeof dirs[0], "%s/holden-v1-migration-%d", dir, (int)getpid());
        if (mkdir(d, 0755) != 0 && errno != EEXIST) { perror(d); exit(1); }
        snprintf(p, sizeof p, "%s/cgroup.procs", d);
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0) { perror(p); exit(1); }
        if (v2) {
            v2procs = fd;
            v2dir = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        } else {
            procs[nprocs++] = fd;
        }
    }
    if (m) fclose(m);
}

static void remove_cgroups(void) {
    for (int i = 0; i < ndirs; i++)
        for (int tries = 0; rmdir(dirs[i]) != 0 && errno == EBUSY && tries < 100; tries++)
            usleep(10000);
}

/* clone3 without CLONE_VM: in the child it returns 0 on a copy of this stack, as fork does. */
static pid_t clone3_(int vfork, int into, int *pidfd) {
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_PIDFD | (vfork ? CLONE_VFORK : 0) | (into && v2dir >= 0 ? CLONE_INTO_CGROUP : 0);
    a.pidfd = (uint64_t)(uintptr_t)pidfd;
    a.exit_signal = SIGCHLD;
    a.cgroup = (uint64_t)(v2dir >= 0 ? v2dir : 0);
    return (pid_t)syscall(SYS_clone3, &a, sizeof a);
}

/* In the child: join the cgroups by writing, wait for `go` if given, exec the program. */
static void child(int stamps, int write_v2, int go) {
    for (int i = 0; i < nprocs; i++)
        if (write(procs[i], "0", 1) != 1) _exit(120);
    if (write_v2 && v2procs >= 0 && write(v2procs, "0", 1) != 1) _exit(121);
    if (go >= 0) {
        char b;
        if (read(go, &b, 1) != 1) _exit(0);
    }
    dup2(stamps, 3);
    char *argv[] = { self, "program", live, NULL };
    execv(self, argv);
    _exit(127);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    printf("  %-22s p50 %8.3f  p90 %8.3f  max %8.3f ms  (n=%d)\n", what, v[n / 2], v[(n * 9) / 10], v[n - 1], n);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "program") == 0) return program(atol(argv[2]));
    if (argc < 2) {
        fprintf(stderr, "usage: v1_migration off|vfork|async|preplaced [RUNS [LIVE_MS]]\n");
        return 64;
    }
    const char *mode = argv[1];
    int runs = argc > 2 ? atoi(argv[2]) : 10;
    snprintf(live, sizeof live, "%s", argc > 3 ? argv[3] : "1200");
    if (readlink("/proc/self/exe", self, sizeof self - 1) < 0) { perror("exe"); return 1; }
    int off = strcmp(mode, "off") == 0, vfork = strcmp(mode, "vfork") == 0;
    int async = strcmp(mode, "async") == 0, pre = strcmp(mode, "preplaced") == 0;
    if (!off && !vfork && !async && !pre) { fprintf(stderr, "unknown mode %s\n", mode); return 64; }
    if (!off) make_cgroups();

    int sp[2];
    if (pipe2(sp, O_CLOEXEC) != 0) return 1;
    fcntl(sp[0], F_SETFL, O_NONBLOCK);
    double *d2e = calloc((size_t)runs, sizeof(double)), *held = calloc((size_t)runs, sizeof(double));
    double *place = calloc((size_t)runs, sizeof(double));
    struct stamp *st = calloc((size_t)runs * 2 + 2, sizeof *st);
    int nst = 0, nheld = 0, nplace = 0, go = -1, next_go = -1, next_pidfd = -1;
    pid_t next_pid = 0;

    for (int r = 0; r < runs; r++) {
        int pidfd = -1;
        long long t0 = now_ns();
        if (pre && next_go >= 0) {
            if (write(next_go, "g", 1) != 1) return 1;
            close(next_go);
            pidfd = next_pidfd;
            next_go = -1;
        } else {
            int gp[2] = { -1, -1 };
            if (pre && pipe2(gp, O_CLOEXEC) != 0) return 1;
            pid_t pid = clone3_(vfork || off, vfork, &pidfd);
            if (pid < 0) { perror("clone3"); return 1; }
            if (pid == 0) child(sp[1], async || pre, gp[0]);
            if (pre) {
                close(gp[0]);
                if (write(gp[1], "g", 1) != 1) return 1;
                close(gp[1]);
            }
        }
        held[nheld++] = (double)(now_ns() - t0) / 1e6;
        /* Wait for its start stamp; then (preplaced) make the next run's child now. */
        struct pollfd p = { sp[0], POLLIN, 0 };
        while (nst < 2 * r + 1) {
            poll(&p, 1, -1);
            while (read(sp[0], &st[nst], sizeof st[0]) == sizeof st[0]) nst++;
        }
        if (pre && r + 1 < runs) {
            int gp[2];
            if (pipe2(gp, O_CLOEXEC) != 0) return 1;
            long long t1 = now_ns();
            next_pid = clone3_(0, 0, &next_pidfd);
            if (next_pid < 0) { perror("clone3"); return 1; }
            if (next_pid == 0) child(sp[1], 1, gp[0]);
            place[nplace++] = (double)(now_ns() - t1) / 1e6;
            close(gp[0]);
            next_go = gp[1];
        }
        struct pollfd w = { pidfd, POLLIN, 0 };
        poll(&w, 1, -1);
        siginfo_t si;
        if (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) != 0 || si.si_status != 0) {
            fprintf(stderr, "run %d: the program failed (status %d)\n", r, si.si_status);
            return 1;
        }
        close(pidfd);
    }
    (void)go;
    (void)next_pid;
    while (read(sp[0], &st[nst], sizeof st[0]) == sizeof st[0]) nst++;
    int n = 0;
    for (int i = 1; i + 1 < nst; i += 2)
        if (st[i].tag == 'E' && st[i + 1].tag == 'S') d2e[n++] = (double)(st[i + 1].ns - st[i].ns) / 1e6;
    printf("%s (%d runs of %s ms, %d v1 hierarchies%s)\n", mode, runs, live, nprocs, v2dir >= 0 ? " + cgroup2" : "");
    if (n > 0) report("death to exec", d2e, n);
    report("thread held per spawn", held, nheld);
    if (nplace > 0) report("held per pre-placing", place, nplace);
    remove_cgroups();
    return 0;
}
