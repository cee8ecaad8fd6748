/* lines: the writer of bench/log_throughput, built with `cc -O2` into the scratch directory
 * on every run.
 *
 *   lines MODE MIB STAMPS
 *
 * writes MIB MiB of 128-byte lines to its stdout as fast as it can, then writes
 * "START END\n" to the file STAMPS: CLOCK_REALTIME nanoseconds just before its first byte and
 * just after its last one was taken by write(2). MODE is how it writes, as the programs
 * supervisors run do:
 *
 *   line    one write(2) per line: Rust's println!, Go's fmt.Println, Java's println,
 *           Python with -u or flush=True
 *   stdio   fputs into stdout with C stdio's default buffering: full buffering in blocks of
 *           st_blksize bytes (4 KiB on a pipe and on ext4), as any C program, awk, grep...
 *   block   64 KiB write(2)s: a program with its own large output buffer
 *
 * The same writer runs with stdout opened on a file (the reference) and captured by holden.
 *
 *   lines relay MODE MIB STAMPS OUT
 *
 * the floor of any capture through a pipe: runs `lines MODE MIB STAMPS` with its stdout on a
 * 1 MiB pipe and moves the pipe into the file OUT as holden's splice path does (a read of up
 * to 64 KiB and a pwrite; when the read came back full, splice into a second pipe and from
 * there into the file), in a bare blocking loop: no event loop, no rotation, no bookkeeping.
 * Appends " RELAY_END" (CLOCK_REALTIME ns after its last byte reached the file) to STAMPS.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE 128
#define BLOCK (64 * 1024)

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            perror("lines: write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int relay(char **argv) {
    int out = open(argv[5], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int p[2], st[2];
    if (out < 0 || pipe2(p, O_CLOEXEC) || pipe2(st, O_CLOEXEC)) die("lines relay: setup");
    fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
    fcntl(st[0], F_SETPIPE_SZ, 1 << 20);
    pid_t child = fork();
    if (child < 0) die("lines relay: fork");
    if (child == 0) {
        dup2(p[1], 1);
        execl("/proc/self/exe", "lines", argv[2], argv[3], argv[4], (char *)NULL);
        die("lines relay: exec");
    }
    close(p[1]);
    static char buf[64 * 1024];
    loff_t off = 0;
    for (;;) {
        ssize_t n = read(p[0], buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) die("lines relay: read");
        if (pwrite(out, buf, (size_t)n, off) != n) die("lines relay: pwrite");
        off += n;
        if (n < (ssize_t)sizeof buf) continue;
        for (;;) {
            ssize_t m = splice(p[0], NULL, st[1], NULL, 1 << 20, SPLICE_F_NONBLOCK);
            if (m <= 0) break;
            while (m > 0) {
                ssize_t k = splice(st[0], NULL, out, &off, (size_t)m, 0);
                if (k <= 0) die("lines relay: splice to the file");
                m -= k;
            }
        }
    }
    long long end = now_ns();
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "lines relay: the writer failed\n");
        return 1;
    }
    FILE *f = fopen(argv[4], "a");
    if (!f || fprintf(f, " %lld\n", end) < 0 || fclose(f) != 0) die(argv[4]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "relay") == 0)
        return relay(argv);
    if (argc != 4) {
        fprintf(stderr, "usage: lines line|stdio|block MIB STAMPS\n"
                        "       lines relay line|stdio|block MIB STAMPS OUT\n");
        return 2;
    }
    const char *mode = argv[1];
    long long total = atoll(argv[2]) * 1024 * 1024;
    static char block[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        block[i] = (i % LINE == LINE - 1) ? '\n' : 'a' + (i % LINE) % 26;
    char line[LINE + 1];
    memcpy(line, block, LINE);
    line[LINE] = '\0';

    long long start = now_ns();
    if (strcmp(mode, "line") == 0) {
        for (long long done = 0; done < total; done += LINE)
            write_all(line, LINE);
    } else if (strcmp(mode, "stdio") == 0) {
        for (long long done = 0; done < total; done += LINE)
            if (fputs(line, stdout) == EOF) {
                perror("lines: fputs");
                return 1;
            }
        if (fflush(stdout) == EOF) {
            perror("lines: fflush");
            return 1;
        }
    } else if (strcmp(mode, "block") == 0) {
        for (long long done = 0; done < total; done += BLOCK)
            write_all(block, BLOCK);
    } else {
        fprintf(stderr, "lines: unknown mode %s\n", mode);
        return 2;
    }
    long long end = now_ns();

    FILE *f = fopen(argv[3], "w");
    if (!f || fprintf(f, "%lld %lld", start, end) < 0 || fclose(f) != 0) {
        perror(argv[3]);
        return 1;
    }
    return 0;
}
