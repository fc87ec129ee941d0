/* seccomp-probe: tries system calls a seccomp profile decides about and prints one line per
 * probe, "NAME RESULT", RESULT being "ok", an errno name (EPERM, ENOSYS...) or "signal:N"
 * when the call killed the process. Each probe runs in a forked child, so one that a filter
 * kills does not end the others. The tests build it with `cc -static -O2` and bind it into
 * containers (tests/tests/security.rs): the same binary under podman and cairn must print
 * the same lines.
 *
 *   seccomp-probe            every probe
 *   seccomp-probe keyread D  print the payload of the key "user" D found from the session or
 *                            the user keyring (exit 0), or the errno name of each failing
 *                            step (exit 1)
 *   seccomp-probe status     print the Seccomp: and NoNewPrivs: lines of /proc/self/status
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY_SPEC_USER_KEYRING (-4)
#define KEY_SPEC_PROCESS_KEYRING (-2)
#define KEY_SPEC_SESSION_KEYRING (-3)
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_READ 11
#define KEYCTL_SEARCH 10

static const char *errname(int e) {
    switch (e) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case ENOKEY: return "ENOKEY";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ESRCH: return "ESRCH";
    case ENOTTY: return "ENOTTY";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EBUSY: return "EBUSY";
    case ENOMEM: return "ENOMEM";
    case EROFS: return "EROFS";
    case EISDIR: return "EISDIR";
    case ENOTBLK: return "ENOTBLK";
    case ENOEXEC: return "ENOEXEC";
    case ECHILD: return "ECHILD";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno:%d", e);
        return buf;
    }
    }
}

static long r(long ret) { return ret < 0 ? errno : 0; }

static long p_add_key(void) {
    return r(syscall(SYS_add_key, "user", "cairn-probe", "v", 1, KEY_SPEC_PROCESS_KEYRING));
}
static long p_keyctl(void) {
    return r(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0));
}
static long p_request_key(void) {
    return r(syscall(SYS_request_key, "user", "cairn-probe-none", NULL, 0));
}
static long p_unshare_user(void) { return r(unshare(CLONE_NEWUSER)); }
static long p_unshare_mnt(void) { return r(unshare(CLONE_NEWNS)); }
static long p_unshare_net(void) { return r(unshare(CLONE_NEWNET)); }
static long p_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid < 0) return errno;
    waitpid(pid, NULL, 0);
    return 0;
}
static long p_mount(void) { return r(mount("none", "/tmp", "tmpfs", 0, NULL)); }
static long p_umount(void) { return r(umount2("/proc", MNT_DETACH)); }
static long p_personality_ok(void) { return r(personality(0xffffffff)); }
static long p_personality_bad(void) { return r(syscall(SYS_personality, 0x0040000 /* ADDR_COMPAT_LAYOUT */)); }
static long p_audit_socket(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}
static long p_route_socket(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}
static long p_bpf(void) { return r(syscall(SYS_bpf, 0, NULL, 0)); }
static long p_perf_event_open(void) { return r(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)); }
static long p_kexec_load(void) { return r(syscall(SYS_kexec_load, 0, 0, NULL, 0)); }
static long p_userfaultfd(void) { return r(syscall(SYS_userfaultfd, 0)); }
static long p_setns(void) { return r(syscall(SYS_setns, -1, 0)); }
static long p_chroot(void) { return r(chroot("/")); }
static long p_clock_settime(void) {
    struct timespec ts = {0, 0};
    return r(syscall(SYS_clock_settime, 99, &ts));
}
static long p_iopl(void) {
#ifdef SYS_iopl
    return r(syscall(SYS_iopl, 0));
#else
    return ENOSYS;
#endif
}
static long p_open_by_handle_at(void) { return r(syscall(SYS_open_by_handle_at, -1, NULL, 0)); }
static long p_acct(void) { return r(syscall(SYS_acct, NULL)); }
static long p_swapon(void) { return r(syscall(SYS_swapon, "/nonexistent", 0)); }
static long p_init_module(void) { return r(syscall(SYS_init_module, NULL, 0, "")); }
static long p_sethostname(void) { return r(sethostname("x", 1)); }
static long p_vhangup(void) { return r(syscall(SYS_vhangup)); }
static long p_kcmp(void) { return r(syscall(SYS_kcmp, getpid(), getpid(), 0, 0, 0)); }
static long p_ptrace(void) { return r(syscall(SYS_ptrace, 0x4206 /* PTRACE_SEIZE */, 1, 0, 0)); }
static long p_mkdir(void) {
    char d[64];
    snprintf(d, sizeof d, "/tmp/cairn-probe-%d", getpid());
    long e = r(mkdir(d, 0700));
    rmdir(d);
    return e;
}
static long p_getpid(void) { return r(getpid()); }
static long p_io_uring(void) {
#ifdef SYS_io_uring_setup
    return r(syscall(SYS_io_uring_setup, 0, NULL));
#else
    return ENOSYS;
#endif
}
static long p_syslog(void) { return r(syscall(SYS_syslog, 3, NULL, 0)); }
static long p_reboot(void) { return r(syscall(SYS_reboot, 0, 0, 0, NULL)); }
static long p_quotactl(void) { return r(syscall(SYS_quotactl, 0, NULL, 0, NULL)); }
static long p_name_to_handle_at(void) { return r(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0)); }
static long p_vmsplice(void) { return r(syscall(SYS_vmsplice, -1, NULL, 0, 0)); }
static long p_mbind(void) { return r(syscall(SYS_mbind, NULL, 0, 0, NULL, 0, 0)); }
static long p_clone3(void) {
#ifdef SYS_clone3
    return r(syscall(SYS_clone3, NULL, 0));
#else
    return ENOSYS;
#endif
}
static long p_pidfd_getfd(void) {
#ifdef SYS_pidfd_getfd
    return r(syscall(SYS_pidfd_getfd, -1, 0, 0));
#else
    return ENOSYS;
#endif
}
static long p_fsopen(void) {
#ifdef SYS_fsopen
    return r(syscall(SYS_fsopen, "tmpfs", 0));
#else
    return ENOSYS;
#endif
}
static long p_open_tree(void) {
#ifdef SYS_open_tree
    return r(syscall(SYS_open_tree, AT_FDCWD, "/", 0));
#else
    return ENOSYS;
#endif
}
#if defined(__x86_64__)
/* getpid through the 32-bit ABI (int $0x80, i386 number 20): the profile's
 * architectures decide whether that is filtered like the native call. */
static long p_i386_getpid(void) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
    return ret < 0 ? -ret : 0;
}
/* x32 ABI getpid (__X32_SYSCALL_BIT | 39). */
static long p_x32_getpid(void) {
    long ret = syscall(0x40000000 | 39);
    return ret < 0 ? errno : 0;
}
#endif

struct probe {
    const char *name;
    long (*fn)(void);
};

static const struct probe PROBES[] = {
    {"add_key", p_add_key},
    {"keyctl", p_keyctl},
    {"request_key", p_request_key},
    {"unshare_user", p_unshare_user},
    {"unshare_mnt", p_unshare_mnt},
    {"unshare_net", p_unshare_net},
    {"clone_newuser", p_clone_newuser},
    {"mount", p_mount},
    {"umount", p_umount},
    {"personality_ok", p_personality_ok},
    {"personality_bad", p_personality_bad},
    {"audit_socket", p_audit_socket},
    {"route_socket", p_route_socket},
    {"bpf", p_bpf},
    {"perf_event_open", p_perf_event_open},
    {"kexec_load", p_kexec_load},
    {"userfaultfd", p_userfaultfd},
    {"setns", p_setns},
    {"chroot", p_chroot},
    {"clock_settime", p_clock_settime},
    {"iopl", p_iopl},
    {"open_by_handle_at", p_open_by_handle_at},
    {"acct", p_acct},
    {"swapon", p_swapon},
    {"init_module", p_init_module},
    {"sethostname", p_sethostname},
    {"vhangup", p_vhangup},
    {"kcmp", p_kcmp},
    {"ptrace", p_ptrace},
    {"mkdir", p_mkdir},
    {"getpid", p_getpid},
    {"io_uring_setup", p_io_uring},
    {"syslog", p_syslog},
    {"reboot", p_reboot},
    {"quotactl", p_quotactl},
    {"name_to_handle_at", p_name_to_handle_at},
    {"vmsplice", p_vmsplice},
    {"mbind", p_mbind},
    {"clone3", p_clone3},
    {"pidfd_getfd", p_pidfd_getfd},
    {"fsopen", p_fsopen},
    {"open_tree", p_open_tree},
#if defined(__x86_64__)
    {"i386_getpid", p_i386_getpid},
    {"x32_getpid", p_x32_getpid},
#endif
};

/* The key "user" DESC as a process finds it: searched (recursively) from the session keyring,
 * then from the user keyring; its payload printed when readable. */
static int keyread(const char *desc) {
    const long rings[] = {KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING};
    const char *names[] = {"session", "user"};
    for (int i = 0; i < 2; i++) {
        long key = syscall(SYS_keyctl, KEYCTL_SEARCH, rings[i], "user", desc, 0);
        if (key < 0) {
            printf("%s-search %s\n", names[i], errname(errno));
            continue;
        }
        char buf[256];
        long n = syscall(SYS_keyctl, KEYCTL_READ, key, buf, sizeof buf - 1);
        if (n < 0) {
            printf("%s-read %s\n", names[i], errname(errno));
            continue;
        }
        buf[n < (long)sizeof buf - 1 ? n : (long)sizeof buf - 1] = 0;
        printf("payload %s\n", buf);
        return 0;
    }
    return 1;
}

static int status(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        perror("/proc/self/status");
        return 1;
    }
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Seccomp:", 8) || !strncmp(line, "NoNewPrivs:", 11))
            fputs(line, stdout);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "keyread")) return keyread(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "status")) return status();
    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0]; i++) {
        int pipefd[2];
        if (pipe(pipefd) < 0) return 2;
        pid_t pid = fork();
        if (pid < 0) return 2;
        if (pid == 0) {
            close(pipefd[0]);
            errno = 0;
            long e = PROBES[i].fn();
            const char *s = errname((int)e);
            if (write(pipefd[1], s, strlen(s)) < 0) _exit(3);
            _exit(0);
        }
        close(pipefd[1]);
        char buf[64] = {0};
        ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
        close(pipefd[0]);
        int st;
        waitpid(pid, &st, 0);
        if (WIFSIGNALED(st))
            printf("%s signal:%d\n", PROBES[i].name, WTERMSIG(st));
        else
            printf("%s %s\n", PROBES[i].name, n > 0 ? buf : "no-result");
    }
    return 0;
}
